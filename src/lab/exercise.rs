//! Guided exercises: the format a teacher writes (TOML, no Rust) and the two small languages in
//! it. An exercise is a list of steps; each step says something, may ask the learner to predict
//! what happens (choices, the right one, why), then does what reveals it and checks the outcome.
//!
//! **Actions** (`do`), one line each, the lab's own commands as the golden scripts spell them:
//! `timeout 2`, `kill 2`, `restart 2`, `isolate 2`, `cut 0-1`, `heal`, `pause`, `resume`,
//! `deliver 2-0` (the oldest message held on link n2 → n0; several links may follow),
//! `deliver from=2`, `deliver all`, `drop …` likewise, `step all` (deliver until nothing is held,
//! replies included), `pre-vote on|off`, `request via=1 key=k value=v` (waits for the answer;
//! `request … async` does not), `read via=4 key=k [local] as NAME` (an HTTP GET on that node,
//! its status code and value saved as NAME), `remember NAME = PATH`, `until CHECK` (waits for
//! the check to hold, at most 20 s), `wait 3s` (lets time pass, for "nothing happens" steps),
//! `add-node`, `promote 5`, `transfer 2`.
//!
//! **Checks** (`expect`, and `until`): `PATH OP VALUE`. PATH reads the lab's state as
//! `GET /lab/state` shows it (`nodes.2.status.term`, `kv.k`) plus `leader` and `leader_term` (the
//! leader with a quorum), `max_term`, `max_commit`, `held` (each held message as `"PreVote 2→0"`), `reads.NAME`
//! and `saved.NAME`. OP is one of `==` `!=` `>` `>=` `<` `<=` `contains` `lacks`; VALUE is JSON
//! (`2`, `"leader"`, `null`, `["a"]`) or `$NAME` / `$NAME+3` (a remembered number).

use serde::Deserialize;
use serde_json::Value;

use super::state::LabState;

/// An exercise as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exercise {
    /// Its name on the command line: `--exercise NAME`.
    pub name: String,
    pub title: String,
    /// One line for `--list-exercises`.
    pub summary: String,
    /// Start the cluster paused, before any election (its first candidacies dropped).
    #[serde(default)]
    pub paused: bool,
    #[serde(default = "yes")]
    pub pre_vote: bool,
    pub steps: Vec<Step>,
}

fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// What the learner reads first.
    pub say: String,
    /// A question to answer before the step is revealed.
    #[serde(default)]
    pub predict: Option<String>,
    #[serde(default)]
    pub choices: Vec<String>,
    /// The right choice, from 1.
    #[serde(default)]
    pub answer: Option<usize>,
    /// Shown once the step ran: why it turned out as it did.
    #[serde(default)]
    pub explain: Option<String>,
    #[serde(default, rename = "do")]
    pub actions: Vec<String>,
    #[serde(default)]
    pub expect: Vec<String>,
}

/// The exercises that come with raftkv.
const BUILT_IN: [&str; 7] = [
    include_str!("exercises/startup-election.toml"),
    include_str!("exercises/split-vote.toml"),
    include_str!("exercises/leader-crash.toml"),
    include_str!("exercises/pre-vote.toml"),
    include_str!("exercises/figure-8.toml"),
    include_str!("exercises/stale-read.toml"),
    include_str!("exercises/learner.toml"),
];

impl Exercise {
    pub fn parse(text: &str) -> Result<Exercise, String> {
        let exercise: Exercise = toml::from_str(text).map_err(|e| e.to_string())?;
        exercise.validate()?;
        Ok(exercise)
    }

    /// Every step's actions and checks parse, and a question has its answer among its choices.
    fn validate(&self) -> Result<(), String> {
        for (i, step) in self.steps.iter().enumerate() {
            let at = |e: String| format!("step {}: {e}", i + 1);
            for action in &step.actions {
                Action::parse(action).map_err(at)?;
            }
            for check in &step.expect {
                Check::parse(check).map_err(at)?;
            }
            if let Some(answer) = step.answer
                && (answer == 0 || answer > step.choices.len())
            {
                return Err(at(format!(
                    "answer {answer} is not one of the {} choices",
                    step.choices.len()
                )));
            }
        }
        Ok(())
    }

    pub fn built_in() -> Vec<Exercise> {
        BUILT_IN
            .iter()
            .map(|text| Exercise::parse(text).expect("a built-in exercise parses"))
            .collect()
    }

    /// A built-in exercise by name, or a file a teacher wrote.
    pub fn find(name_or_path: &str) -> Result<Exercise, String> {
        if let Some(found) = Exercise::built_in()
            .into_iter()
            .find(|e| e.name == name_or_path)
        {
            return Ok(found);
        }
        let path = std::path::Path::new(name_or_path);
        if path.exists() {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{name_or_path}: {e}"))?;
            return Exercise::parse(&text).map_err(|e| format!("{name_or_path}: {e}"));
        }
        let names: Vec<String> = Exercise::built_in().into_iter().map(|e| e.name).collect();
        Err(format!(
            "no exercise {name_or_path:?}: the built-in ones are {} (or give a .toml file)",
            names.join(", ")
        ))
    }
}

/// One line of `do`.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    /// A lab command, as the control API takes it.
    Lab(super::LabCommand),
    /// Deliver or drop held messages: links `2-0`, `from=2`, or `all`.
    Release {
        deliver: bool,
        which: Vec<String>,
    },
    /// Deliver until nothing is held.
    StepAll,
    Request {
        via: Option<usize>,
        key: String,
        value: String,
        wait: bool,
    },
    Read {
        via: usize,
        key: String,
        local: bool,
        name: String,
    },
    Remember {
        name: String,
        path: String,
    },
    Until(Check),
    Wait(std::time::Duration),
}

impl Action {
    pub fn parse(line: &str) -> Result<Action, String> {
        use super::LabCommand as C;
        let words: Vec<&str> = line.split_whitespace().collect();
        let (&verb, rest) = words.split_first().ok_or("an empty action")?;
        let id = || -> Result<usize, String> {
            rest.first()
                .and_then(|w| w.parse().ok())
                .ok_or(format!("{verb} needs a node id: {line:?}"))
        };
        let key = |k: &str| {
            rest.iter()
                .find_map(|w| w.strip_prefix(&format!("{k}=")).map(str::to_string))
        };
        Ok(match verb {
            "timeout" => Action::Lab(C::TimeOut { id: id()? }),
            "kill" => Action::Lab(C::Kill { id: id()? }),
            "restart" => Action::Lab(C::Restart { id: id()? }),
            "isolate" => Action::Lab(C::Isolate { id: id()? }),
            "transfer" => Action::Lab(C::Transfer { id: id()? }),
            "promote" => Action::Lab(C::Promote { id: id()? }),
            "add-node" => Action::Lab(C::AddNode),
            "heal" => Action::Lab(C::Heal),
            "pause" => Action::Lab(C::Pause),
            "resume" => Action::Lab(C::Resume),
            "pre-vote" => Action::Lab(C::SetPreVote {
                enabled: match rest.first() {
                    Some(&"on") => true,
                    Some(&"off") => false,
                    _ => return Err(format!("pre-vote on|off: {line:?}")),
                },
            }),
            "cut" => {
                let link = rest.first().and_then(|l| l.split_once('-'));
                let parse = |s: &str| s.parse::<u64>().map_err(|e| format!("{line:?}: {e}"));
                let (from, to) = link.ok_or(format!("cut FROM-TO: {line:?}"))?;
                Action::Lab(C::Cut {
                    from: parse(from)?,
                    to: parse(to)?,
                })
            }
            "deliver" | "drop" if !rest.is_empty() => Action::Release {
                deliver: verb == "deliver",
                which: rest.iter().map(|w| w.to_string()).collect(),
            },
            "step" if rest == ["all"] => Action::StepAll,
            "request" => Action::Request {
                via: key("via")
                    .map(|v| v.parse())
                    .transpose()
                    .map_err(|e| format!("{e}"))?,
                key: key("key").ok_or(format!("request needs key=: {line:?}"))?,
                value: key("value").ok_or(format!("request needs value=: {line:?}"))?,
                wait: !rest.contains(&"async"),
            },
            "read" => Action::Read {
                via: key("via")
                    .and_then(|v| v.parse().ok())
                    .ok_or(format!("read needs via=N: {line:?}"))?,
                key: key("key").ok_or(format!("read needs key=: {line:?}"))?,
                local: rest.contains(&"local"),
                name: match rest.iter().position(|w| *w == "as") {
                    Some(i) => rest.get(i + 1).ok_or("read … as NAME")?.to_string(),
                    None => return Err(format!("read … as NAME: {line:?}")),
                },
            },
            "remember" => match rest {
                [name, "=", path] => Action::Remember {
                    name: name.to_string(),
                    path: path.to_string(),
                },
                _ => return Err(format!("remember NAME = PATH: {line:?}")),
            },
            "until" => Action::Until(Check::parse(&rest.join(" "))?),
            "wait" => {
                let secs = rest
                    .first()
                    .and_then(|w| w.strip_suffix('s'))
                    .and_then(|w| w.parse::<f64>().ok())
                    .filter(|s| *s > 0.0 && *s <= 30.0)
                    .ok_or(format!("wait Ns (at most 30): {line:?}"))?;
                Action::Wait(std::time::Duration::from_secs_f64(secs))
            }
            _ => return Err(format!("unknown action {line:?}")),
        })
    }
}

/// One line of `expect`: `PATH OP VALUE`.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub text: String,
    path: String,
    op: String,
    value: String,
}

const OPS: [&str; 8] = ["==", "!=", ">=", "<=", ">", "<", "contains", "lacks"];

impl Check {
    pub fn parse(line: &str) -> Result<Check, String> {
        let mut parts = line.trim().splitn(3, ' ');
        let (path, op, value) = (parts.next(), parts.next(), parts.next());
        match (path, op, value) {
            (Some(path), Some(op), Some(value)) if OPS.contains(&op) => Ok(Check {
                text: line.trim().to_string(),
                path: path.to_string(),
                op: op.to_string(),
                value: value.trim().to_string(),
            }),
            _ => Err(format!(
                "a check is PATH OP VALUE with OP one of {}: {line:?}",
                OPS.join(" ")
            )),
        }
    }

    /// Whether the check holds in `context` (see [`context`]); what it saw, in words.
    pub fn holds(&self, context: &Value) -> Result<(bool, String), String> {
        let seen = lookup(context, &self.path);
        let want = self.expected(context)?;
        let number = |v: &Value| v.as_f64();
        // Numbers compare by value (3 and 3.0 are equal), everything else as JSON.
        let same = match (number(&seen), number(&want)) {
            (Some(a), Some(b)) => a == b,
            _ => seen == want,
        };
        let ok = match self.op.as_str() {
            "==" => same,
            "!=" => !same,
            "contains" | "lacks" => {
                let has = match (&seen, &want) {
                    (Value::Array(items), w) => items.contains(w),
                    (Value::String(s), Value::String(w)) => s.contains(w.as_str()),
                    _ => false,
                };
                has == (self.op == "contains")
            }
            op => match (number(&seen), number(&want)) {
                (Some(a), Some(b)) => match op {
                    ">" => a > b,
                    ">=" => a >= b,
                    "<" => a < b,
                    _ => a <= b,
                },
                _ => false,
            },
        };
        Ok((ok, format!("{} is {seen}", self.path)))
    }

    fn expected(&self, context: &Value) -> Result<Value, String> {
        let Some(name) = self.value.strip_prefix('$') else {
            return serde_json::from_str(&self.value)
                .map_err(|e| format!("{}: the value is not JSON ({e})", self.text));
        };
        let (name, add) = match name.split_once(['+', '-']) {
            Some((n, k)) => {
                let k: f64 = k
                    .parse()
                    .map_err(|_| format!("{}: bad number", self.text))?;
                (n, if name.contains('-') { -k } else { k })
            }
            None => (name, 0.0),
        };
        let base = lookup(context, &format!("saved.{name}"));
        let base = base.as_f64().ok_or(format!(
            "{}: ${name} was not remembered as a number",
            self.text
        ))?;
        Ok(serde_json::json!(base + add))
    }
}

/// A value at a dotted path (`nodes.2.status.term`); null when absent.
pub fn lookup(value: &Value, path: &str) -> Value {
    let mut at = value;
    for part in path.split('.') {
        at = match at {
            Value::Array(items) => match part.parse::<usize>() {
                Ok(i) if i < items.len() => &items[i],
                _ => return Value::Null,
            },
            Value::Object(map) => match map.get(part) {
                Some(v) => v,
                None => return Value::Null,
            },
            _ => return Value::Null,
        };
    }
    at.clone()
}

/// What checks read: the state as `GET /lab/state` shows it, with the leader, terms, the
/// contents as a map, the held messages in words, the saved reads and remembered values.
pub fn context(state: &LabState, reads: &Value, saved: &Value) -> Value {
    let mut context = serde_json::to_value(state).unwrap_or_default();
    let leader = state.leader();
    let max_term = state
        .nodes
        .iter()
        .filter_map(|n| n.status.as_ref().map(|s| s.term))
        .max();
    let max_commit = state
        .nodes
        .iter()
        .filter_map(|n| n.status.as_ref().and_then(|s| s.commit_index))
        .max();
    let kv: serde_json::Map<String, Value> = state
        .kv
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::json!(v)))
        .collect();
    let held: Vec<String> = state
        .held
        .iter()
        .map(|h| format!("{:?} {}→{}", h.rpc, h.from, h.to))
        .collect();
    if let Value::Object(map) = &mut context {
        map.insert("leader".into(), serde_json::json!(leader.map(|s| s.id)));
        map.insert(
            "leader_term".into(),
            serde_json::json!(leader.map(|s| s.term)),
        );
        map.insert("max_term".into(), serde_json::json!(max_term));
        map.insert("max_commit".into(), serde_json::json!(max_commit));
        map.insert("kv".into(), Value::Object(kv));
        map.insert("held".into(), serde_json::json!(held));
        map.insert("reads".into(), reads.clone());
        map.insert("saved".into(), saved.clone());
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_exercise_parses_and_the_seven_topics_are_there() {
        let names: Vec<String> = Exercise::built_in().into_iter().map(|e| e.name).collect();
        assert_eq!(names.len(), 7);
        for e in Exercise::built_in() {
            assert!(!e.steps.is_empty(), "{}", e.name);
            assert!(
                e.steps.iter().any(|s| !s.expect.is_empty()),
                "{} checks something",
                e.name
            );
        }
    }

    #[test]
    fn checks_read_paths_compare_and_use_remembered_numbers() {
        let context = serde_json::json!({
            "leader": 2, "kv": {"k": ["a"]}, "nodes": [{"status": {"term": 4}}],
            "saved": {"t0": 2}, "held": ["PreVote 2→0"]
        });
        let holds = |c: &str| Check::parse(c).unwrap().holds(&context).unwrap().0;
        assert!(holds("leader == 2"));
        assert!(!holds("leader != 2"));
        assert!(holds("nodes.0.status.term > $t0+1"));
        assert!(!holds("nodes.0.status.term > $t0+2"));
        assert!(holds("kv.k contains \"a\""));
        assert!(holds("kv.k lacks \"b\""));
        assert!(holds("held contains \"PreVote 2→0\""));
        assert!(holds("nodes.7.status == null"), "absent is null");
        assert!(Check::parse("leader is 2").is_err());
        assert!(
            Check::parse("leader == $nope")
                .unwrap()
                .holds(&context)
                .is_err()
        );
    }

    #[test]
    fn actions_parse_or_say_what_is_wrong() {
        assert_eq!(
            Action::parse("timeout 2").unwrap(),
            Action::Lab(crate::lab::LabCommand::TimeOut { id: 2 })
        );
        assert_eq!(Action::parse("step all").unwrap(), Action::StepAll);
        assert!(matches!(
            Action::parse("request via=1 key=k value=v async").unwrap(),
            Action::Request { wait: false, .. }
        ));
        assert!(Action::parse("timeout").unwrap_err().contains("node id"));
        assert!(
            Action::parse("fly 2")
                .unwrap_err()
                .contains("unknown action")
        );
        assert!(Action::parse("wait 100s").is_err());
        let bad = "name = \"x\"\ntitle = \"x\"\nsummary = \"x\"\n[[steps]]\nsay = \"x\"\n\
                   do = [\"timeout\"]\n";
        assert!(Exercise::parse(bad).unwrap_err().contains("step 1"));
    }
}
