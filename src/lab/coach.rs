//! Runs an [`Exercise`] over a running lab, through the same commands as the control API: shows
//! each step, asks for a prediction, does what reveals it and checks the outcome. Headless it
//! prints everything and answers for the learner (the exit code says whether every check held);
//! under the dashboard it publishes a [`CoachView`] and waits for the learner's keys.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::exercise::{self, Action, Check, Exercise};
use super::{Lab, LabCommand};

/// How long a step's checks (and an `until`) may take to hold.
const CHECK_BOUND: Duration = Duration::from_secs(20);
/// A `step all` delivers at most this many messages.
const STEP_BOUND: usize = 300;

/// What the learner does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Learner {
    /// Chose answer N (from 1).
    Choose(usize),
    /// Go on to the next step.
    Next,
}

/// What the dashboard's exercise pane shows.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CoachView {
    pub title: String,
    /// The step shown (from 1) and how many there are.
    pub step: usize,
    pub steps: usize,
    pub say: String,
    pub predict: Option<String>,
    pub choices: Vec<String>,
    pub chosen: Option<usize>,
    pub answer: Option<usize>,
    pub explain: Option<String>,
    /// What the step's actions answered.
    pub log: Vec<String>,
    /// Each check: its text, whether it held, what it saw.
    pub checks: Vec<(String, bool, String)>,
    pub waiting: Waiting,
    /// Set at the end: whether every check of every step held.
    pub passed: Option<bool>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Waiting {
    /// For a choice (digits).
    Answer,
    /// For the learner to go on (Enter).
    Next,
    #[default]
    Working,
    Done,
}

pub struct Coach {
    lab: Lab,
    exercise: Exercise,
    reads: Value,
    saved: Value,
    http: reqwest::Client,
    view: watch::Sender<CoachView>,
    /// None when headless: nobody answers, the coach prints.
    input: Option<mpsc::Receiver<Learner>>,
}

impl Coach {
    pub fn new(
        lab: Lab,
        exercise: Exercise,
        input: Option<mpsc::Receiver<Learner>>,
    ) -> (Coach, watch::Receiver<CoachView>) {
        let (view, rx) = watch::channel(CoachView {
            title: exercise.title.clone(),
            steps: exercise.steps.len(),
            ..CoachView::default()
        });
        let coach = Coach {
            lab,
            exercise,
            reads: serde_json::json!({}),
            saved: serde_json::json!({}),
            http: reqwest::Client::new(),
            view,
            input,
        };
        (coach, rx)
    }

    fn say(&self, text: &str) {
        if self.input.is_none() {
            println!("{text}");
        }
    }

    fn show(&self, change: impl FnOnce(&mut CoachView)) {
        self.view.send_modify(change);
    }

    async fn wait_for(&mut self, want: impl Fn(Learner) -> bool) {
        if let Some(input) = &mut self.input {
            while let Some(got) = input.recv().await {
                if want(got) {
                    return;
                }
            }
        }
    }

    /// Runs every step; whether every check held.
    pub async fn run(mut self) -> bool {
        let exercise = self.exercise.clone();
        self.say(&format!("# {}\n{}\n", exercise.title, exercise.summary));
        for (i, step) in exercise.steps.iter().enumerate() {
            self.show(|v| {
                *v = CoachView {
                    title: v.title.clone(),
                    step: i + 1,
                    steps: v.steps,
                    say: step.say.trim().to_string(),
                    predict: step.predict.clone(),
                    choices: step.choices.clone(),
                    answer: step.answer,
                    ..CoachView::default()
                }
            });
            self.say(&format!(
                "## Step {} of {}\n{}",
                i + 1,
                exercise.steps.len(),
                step.say.trim()
            ));
            if let Some(question) = &step.predict {
                self.say(&format!("Predict: {question}"));
                for (n, choice) in step.choices.iter().enumerate() {
                    self.say(&format!("  {}. {choice}", n + 1));
                }
                if self.input.is_some() && !step.choices.is_empty() {
                    self.show(|v| v.waiting = Waiting::Answer);
                    let count = step.choices.len();
                    let mut chosen = None;
                    if let Some(input) = &mut self.input {
                        while let Some(got) = input.recv().await {
                            if let Learner::Choose(n) = got
                                && (1..=count).contains(&n)
                            {
                                chosen = Some(n);
                                break;
                            }
                        }
                    }
                    self.show(|v| {
                        v.chosen = chosen;
                        v.waiting = Waiting::Working;
                    });
                }
                if let Some(answer) = step.answer {
                    self.say(&format!("(the answer: {answer})"));
                }
            }
            let ok = self.act(&step.actions).await && self.check(&step.expect).await;
            if let Some(explain) = &step.explain {
                self.say(&format!("Why: {}", explain.trim()));
            }
            self.show(|v| v.explain = step.explain.clone());
            if !ok {
                self.say("\nThe exercise did not turn out as written (see above).");
                self.show(|v| {
                    v.passed = Some(false);
                    v.waiting = Waiting::Done;
                });
                return false;
            }
            self.say("");
            if i + 1 < exercise.steps.len() {
                self.show(|v| v.waiting = Waiting::Next);
                self.wait_for(|l| l == Learner::Next).await;
            }
        }
        self.say("Every check held.");
        self.show(|v| {
            v.passed = Some(true);
            v.waiting = Waiting::Done;
        });
        true
    }

    /// Does a step's actions in order; false (said why) when one could not be done.
    async fn act(&mut self, actions: &[String]) -> bool {
        for line in actions {
            let outcome = match Action::parse(line) {
                Ok(action) => self.perform(action).await,
                Err(e) => Err(e),
            };
            let text = match &outcome {
                Ok(said) => format!("> {line}: {said}"),
                Err(e) => format!("> {line}: FAILED {e}"),
            };
            self.say(&text);
            self.show(|v| v.log.push(text.clone()));
            if outcome.is_err() {
                return false;
            }
        }
        true
    }

    async fn perform(&mut self, action: Action) -> Result<String, String> {
        match action {
            Action::Lab(command) => self.lab.run(command).await,
            Action::Release { deliver, which } => {
                let mut said = Vec::new();
                for id in self.pick(&which)? {
                    let command = if deliver {
                        LabCommand::Deliver { message: id }
                    } else {
                        LabCommand::Drop { message: id }
                    };
                    said.push(self.lab.run(command).await?);
                }
                Ok(said.join("; "))
            }
            Action::StepAll => {
                let mut n = 0;
                while !self.lab.state().held.is_empty() && n < STEP_BOUND {
                    self.lab.run(LabCommand::Step).await?;
                    n += 1;
                }
                Ok(format!("delivered {n} messages, one at a time"))
            }
            Action::Request {
                via,
                key,
                value,
                wait,
            } => {
                let command = LabCommand::Request { via, key, value };
                if wait {
                    return self.lab.run(command).await;
                }
                let lab = self.lab.clone();
                tokio::spawn(async move { lab.run(command).await });
                Ok("sent (not waiting for the answer)".into())
            }
            Action::Read {
                via,
                key,
                local,
                name,
            } => {
                let state = self.lab.state();
                let addr = state
                    .nodes
                    .get(via)
                    .and_then(|n| n.status.as_ref())
                    .map(|s| s.http_addr.clone())
                    .ok_or(format!("n{via} does not answer"))?;
                let query = if local { "?consistency=local" } else { "" };
                let url = format!("http://{addr}/keys/{key}{query}");
                let response = self
                    .http
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                // 200 carries the list itself; anything else says why, in words.
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let value = match status {
                    200 => serde_json::from_str(&text).unwrap_or(Value::Null),
                    _ => Value::Null,
                };
                let said = format!(
                    "{status} {}",
                    if status == 200 {
                        value.to_string()
                    } else {
                        text.clone()
                    }
                );
                self.reads[&name] =
                    serde_json::json!({"status": status, "value": value, "text": text});
                Ok(said)
            }
            Action::Remember { name, path } => {
                let context = exercise::context(&self.lab.state(), &self.reads, &self.saved);
                let value = exercise::lookup(&context, &path);
                self.saved[&name] = value.clone();
                Ok(format!("{name} = {value}"))
            }
            Action::Until(check) => {
                let (ok, seen) = self.wait_until(std::slice::from_ref(&check)).await?;
                match ok {
                    true => Ok(seen.join("; ")),
                    false => Err(format!("not within {CHECK_BOUND:?}: {}", seen.join("; "))),
                }
            }
            Action::Wait(time) => {
                tokio::time::sleep(time).await;
                Ok(format!("{:.1}s passed", time.as_secs_f64()))
            }
        }
    }

    /// The held messages `which` names (links `2-0`, `from=2`, `all`), as the golden scripts do.
    fn pick(&self, which: &[String]) -> Result<Vec<u64>, String> {
        let held = self.lab.state().held;
        let mut by_link: Vec<_> = held.iter().collect();
        by_link.sort_by_key(|h| (h.from, h.to, h.id));
        let mut ids = Vec::new();
        for word in which {
            if word == "all" {
                ids.extend(by_link.iter().map(|h| h.id));
            } else if let Some(from) = word.strip_prefix("from=") {
                let from: u64 = from.parse().map_err(|_| format!("from=N, not {word}"))?;
                ids.extend(by_link.iter().filter(|h| h.from == from).map(|h| h.id));
            } else {
                let (from, to) = word
                    .split_once('-')
                    .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
                    .ok_or(format!("a link is FROM-TO, not {word:?}"))?;
                let oldest = held
                    .iter()
                    .find(|h| (h.from, h.to) == (from, to) && !ids.contains(&h.id))
                    .ok_or(format!("nothing is held on {word}"))?;
                ids.push(oldest.id);
            }
        }
        Ok(ids)
    }

    /// Polls the state until every check holds, at most [`CHECK_BOUND`].
    async fn wait_until(&self, checks: &[Check]) -> Result<(bool, Vec<String>), String> {
        let deadline = Instant::now() + CHECK_BOUND;
        loop {
            let context = exercise::context(&self.lab.state(), &self.reads, &self.saved);
            let mut all = true;
            let mut seen = Vec::new();
            for check in checks {
                let (ok, saw) = check.holds(&context)?;
                all &= ok;
                seen.push(saw);
            }
            if all || Instant::now() >= deadline {
                return Ok((all, seen));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn check(&mut self, expect: &[String]) -> bool {
        let checks: Vec<Check> = expect.iter().filter_map(|c| Check::parse(c).ok()).collect();
        let (_, _) = match self.wait_until(&checks).await {
            Ok(result) => result,
            Err(e) => {
                self.say(&format!("✗ {e}"));
                return false;
            }
        };
        // Report each check as it stands now.
        let context = exercise::context(&self.lab.state(), &self.reads, &self.saved);
        let mut all = true;
        for check in &checks {
            let (ok, seen) = check.holds(&context).unwrap_or((false, String::new()));
            all &= ok;
            self.say(&format!(
                "{} {}   ({seen})",
                if ok { "✓" } else { "✗" },
                check.text
            ));
            self.show(|v| v.checks.push((check.text.clone(), ok, seen.clone())));
        }
        all
    }
}
