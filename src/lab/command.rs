//! Every lab verb as a [`LabCommand`], and [`ACTIONS`]: the one table of keys that drives key
//! dispatch, the key bar and the help overlay. Adding a verb = one variant, one row, one arm in
//! the engine. Verbs follow raft.github.io (kill = stop, restart, time out, request) plus
//! partition, heal, pause, transfer, and membership changes (add, promote, remove).

use std::fmt;

use serde::{Deserialize, Serialize};

/// One lab verb. Its JSON form is what the control API takes: `{"verb": "partition", "groups":
/// [[0,1,2],[3,4]]}`; `POST /lab/{verb}` with the other fields as the body (and
/// `POST /lab/nodes/{id}/{verb}` for the verbs about one node) is that same object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "kebab-case")]
pub enum LabCommand {
    /// Crash the node: its Raft stops and its ports close; its data stays.
    Kill {
        id: usize,
    },
    /// Start the node again from its data directory.
    Restart {
        id: usize,
    },
    /// Make the node start an election now.
    #[serde(rename = "timeout")]
    TimeOut {
        id: usize,
    },
    /// Hand leadership to the node.
    Transfer {
        id: usize,
    },
    /// Cut the node off from every other node.
    Isolate {
        id: usize,
    },
    /// Cut every link between the groups.
    Partition {
        groups: Vec<Vec<u64>>,
    },
    /// Cut one direction of one link.
    Cut {
        from: u64,
        to: u64,
    },
    Heal,
    Pause,
    Resume,
    /// Client request: append `value` to `key`, sent to node `via` (default: the first running).
    Request {
        #[serde(default)]
        via: Option<usize>,
        key: String,
        value: String,
    },
    #[serde(rename = "pre-vote")]
    SetPreVote {
        enabled: bool,
    },
    /// Run the cluster `factor` times slower than real time (1 to 50): every timer, heartbeat,
    /// lease and deadline stretches alike, at once, without a restart.
    Speed {
        factor: u32,
    },
    /// While paused: deliver held message `message` (its reply is held in turn).
    Deliver {
        message: u64,
    },
    /// While paused: lose held message `message`, as a network may.
    Drop {
        message: u64,
    },
    /// While paused: deliver the oldest held message.
    Step,
    /// Start a new server and add it to the cluster as a learner.
    AddNode,
    /// Make the learner a voter.
    Promote {
        id: usize,
    },
    /// Take the server out of the cluster (it stops for good; its id is never reused).
    Remove {
        id: usize,
    },
}

impl LabCommand {
    /// The held message a verb is about (`/lab/messages/{id}/{verb}`).
    pub fn message(&self) -> Option<u64> {
        match self {
            LabCommand::Deliver { message } | LabCommand::Drop { message } => Some(*message),
            _ => None,
        }
    }

    /// The node a verb is about, for the verbs about one node (`/lab/nodes/{id}/{verb}`).
    pub fn node(&self) -> Option<usize> {
        match self {
            LabCommand::Kill { id }
            | LabCommand::Restart { id }
            | LabCommand::TimeOut { id }
            | LabCommand::Transfer { id }
            | LabCommand::Isolate { id }
            | LabCommand::Promote { id }
            | LabCommand::Remove { id } => Some(*id),
            LabCommand::Partition { .. }
            | LabCommand::Cut { .. }
            | LabCommand::Heal
            | LabCommand::Pause
            | LabCommand::Resume
            | LabCommand::Request { .. }
            | LabCommand::SetPreVote { .. }
            | LabCommand::Speed { .. }
            | LabCommand::Deliver { .. }
            | LabCommand::Drop { .. }
            | LabCommand::Step
            | LabCommand::AddNode => None,
        }
    }
}

/// How the timeline names a verb (a refused one, for instance): in the lab's words, not Rust's.
impl fmt::Display for LabCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LabCommand::Kill { id } => write!(f, "kill n{id}"),
            LabCommand::Restart { id } => write!(f, "restart n{id}"),
            LabCommand::TimeOut { id } => write!(f, "time out n{id}"),
            LabCommand::Transfer { id } => write!(f, "transfer leadership to n{id}"),
            LabCommand::Isolate { id } => write!(f, "isolate n{id}"),
            LabCommand::Partition { groups } => write!(f, "partition {}", groups_text(groups)),
            LabCommand::Cut { from, to } => write!(f, "cut n{from} → n{to}"),
            LabCommand::Heal => f.write_str("heal"),
            LabCommand::Pause => f.write_str("pause"),
            LabCommand::Resume => f.write_str("resume"),
            LabCommand::Request { via, key, value } => {
                write!(f, "request APPEND {key} {value}")?;
                via.map_or(Ok(()), |n| write!(f, " via n{n}"))
            }
            LabCommand::SetPreVote { enabled } => {
                write!(f, "pre-vote {}", if *enabled { "on" } else { "off" })
            }
            LabCommand::Speed { factor } => write!(f, "speed ×{factor}"),
            LabCommand::Deliver { message } => write!(f, "deliver #{message}"),
            LabCommand::Drop { message } => write!(f, "drop #{message}"),
            LabCommand::Step => f.write_str("step"),
            LabCommand::AddNode => f.write_str("add a node"),
            LabCommand::Promote { id } => write!(f, "promote n{id}"),
            LabCommand::Remove { id } => write!(f, "remove n{id}"),
        }
    }
}

/// Partition groups as the lab writes them: `n0 n1 n2 | n3 n4`.
pub fn groups_text(groups: &[Vec<u64>]) -> String {
    let groups: Vec<String> = groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|n| format!("n{n}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    groups.join(" | ")
}

/// What a key does, given the selected node and the current pause/pre-vote/speed state.
#[derive(Clone, Copy)]
pub enum KeyAction {
    Command(fn(&Context) -> LabCommand),
    SelectNext,
    SelectPrev,
    /// Show the messages pane instead of the timeline, or back.
    Messages,
    /// Open the selected node's detail pane, or close it.
    Detail,
    /// Scroll the timeline a page back (PgDn, Home and End do the rest).
    ScrollBack,
    /// Show only the timeline lines about the selected node, or all.
    OnlySelected,
    /// Choose the next held message (`[`: the previous one).
    NextHeld,
    /// Show the next kind of message only in the messages pane (after the last: all kinds).
    NextKind,
    /// Show the safety pane instead of the timeline, or back.
    Safety,
    Help,
    Quit,
}

/// What a key needs to know to build its command.
pub struct Context {
    pub selected: usize,
    pub nodes: usize,
    pub paused: bool,
    pub pre_vote: bool,
    /// How many times slower than real time the cluster runs.
    pub slowdown: u32,
    /// The held message the learner has chosen (the held list's cursor), if any.
    pub held: Option<u64>,
    /// A counter, so that successive client requests append distinct values.
    pub requests: u64,
}

pub struct Action {
    pub key: char,
    /// Short label for the key bar.
    pub label: &'static str,
    /// One line for the help overlay.
    pub help: &'static str,
    pub action: KeyAction,
}

pub const ACTIONS: &[Action] = &[
    Action {
        key: '←',
        label: "select",
        help: "select the previous node",
        action: KeyAction::SelectPrev,
    },
    Action {
        key: '→',
        label: "",
        help: "select the next node (a digit selects that node)",
        action: KeyAction::SelectNext,
    },
    Action {
        key: 'k',
        label: "kill",
        help: "kill the selected node: its Raft stops and its ports close, its data stays",
        action: KeyAction::Command(|c| LabCommand::Kill { id: c.selected }),
    },
    Action {
        key: 'r',
        label: "restart",
        help: "restart the selected node from its data directory",
        action: KeyAction::Command(|c| LabCommand::Restart { id: c.selected }),
    },
    Action {
        key: 't',
        label: "time out",
        help: "the selected node's election timer fires now: it starts an election",
        action: KeyAction::Command(|c| LabCommand::TimeOut { id: c.selected }),
    },
    Action {
        key: 'L',
        label: "transfer",
        help: "transfer leadership to the selected node",
        action: KeyAction::Command(|c| LabCommand::Transfer { id: c.selected }),
    },
    Action {
        key: 'i',
        label: "isolate",
        help: "partition: cut the selected node off from all others",
        action: KeyAction::Command(|c| LabCommand::Isolate { id: c.selected }),
    },
    Action {
        key: 's',
        label: "split",
        help: "partition into {0,1,2} | {3,4,…} (the assignment's two computers)",
        action: KeyAction::Command(|c| LabCommand::Partition {
            groups: vec![(0..3).collect(), (3..c.nodes as u64).collect()],
        }),
    },
    Action {
        key: 'o',
        label: "one-way",
        help: "cut the link from the selected node to the next one, one direction only",
        action: KeyAction::Command(|c| LabCommand::Cut {
            from: c.selected as u64,
            to: ((c.selected + 1) % c.nodes) as u64,
        }),
    },
    Action {
        key: 'H',
        label: "heal",
        help: "heal every partition and cut link",
        action: KeyAction::Command(|_| LabCommand::Heal),
    },
    Action {
        key: ' ',
        label: "pause",
        help: "pause / resume: the clock stops, every message is held until stepped (. d D) or resumed",
        action: KeyAction::Command(|c| {
            if c.paused {
                LabCommand::Resume
            } else {
                LabCommand::Pause
            }
        }),
    },
    Action {
        key: 'a',
        label: "request",
        help: "client request: APPEND a new value to key \"log\" via the selected node",
        action: KeyAction::Command(|c| LabCommand::Request {
            via: Some(c.selected),
            key: "log".into(),
            value: format!("v{}", c.requests + 1),
        }),
    },
    Action {
        key: 'n',
        label: "add node",
        help: "add a node: a new server joins as a learner (catches up, votes once promoted)",
        action: KeyAction::Command(|_| LabCommand::AddNode),
    },
    Action {
        key: 'v',
        label: "promote",
        help: "promote the selected learner to voter",
        action: KeyAction::Command(|c| LabCommand::Promote { id: c.selected }),
    },
    Action {
        key: 'x',
        label: "remove",
        help: "remove the selected node (a leader hands over first); it stops for good",
        action: KeyAction::Command(|c| LabCommand::Remove { id: c.selected }),
    },
    Action {
        key: 'p',
        label: "pre-vote",
        help: "pre-vote on / off on every node (try: isolate a follower with it off, heal)",
        action: KeyAction::Command(|c| LabCommand::SetPreVote {
            enabled: !c.pre_vote,
        }),
    },
    Action {
        key: '+',
        label: "slower",
        help: "run slower: ×1 → ×2 → ×5 → ×10 → ×20 → ×50 (timers, leases, deadlines alike)",
        action: KeyAction::Command(|c| LabCommand::Speed {
            factor: slower(c.slowdown),
        }),
    },
    Action {
        key: '-',
        label: "faster",
        help: "run faster, back towards real time (×1)",
        action: KeyAction::Command(|c| LabCommand::Speed {
            factor: faster(c.slowdown),
        }),
    },
    Action {
        key: '.',
        label: "step",
        help: "while paused: deliver the oldest held message (its reply is held in turn)",
        action: KeyAction::Command(|_| LabCommand::Step),
    },
    Action {
        key: ']',
        label: "",
        help: "while paused: choose the next held message ([ the previous one)",
        action: KeyAction::NextHeld,
    },
    Action {
        key: 'd',
        label: "deliver",
        help: "while paused: deliver the chosen held message",
        action: KeyAction::Command(|c| match c.held {
            Some(message) => LabCommand::Deliver { message },
            None => LabCommand::Step,
        }),
    },
    Action {
        key: 'D',
        label: "drop",
        help: "while paused: drop the chosen held message (lost, as a network may lose it)",
        action: KeyAction::Command(|c| LabCommand::Drop {
            message: c.held.unwrap_or(0),
        }),
    },
    Action {
        key: '⏎',
        label: "detail",
        help: "the selected node in detail: its whole status, its messages, curl lines",
        action: KeyAction::Detail,
    },
    Action {
        key: '⇞',
        label: "",
        help: "timeline a page back; PgDn forward, Home the oldest, End follow the newest",
        action: KeyAction::ScrollBack,
    },
    Action {
        key: 'f',
        label: "filter",
        help: "timeline and messages: only those about the selected node / all",
        action: KeyAction::OnlySelected,
    },
    Action {
        key: 'y',
        label: "kind",
        help: "messages pane: only one kind (Vote, PreVote, Append, Heartbeat, …), cycling / all",
        action: KeyAction::NextKind,
    },
    Action {
        key: 'm',
        label: "messages",
        help: "messages between nodes (fields and fates) instead of the timeline / back",
        action: KeyAction::Messages,
    },
    Action {
        key: 'S',
        label: "safety",
        help: "safety pane: Raft's five properties with their evidence, and each client request",
        action: KeyAction::Safety,
    },
    Action {
        key: '?',
        label: "help",
        help: "show / hide this help",
        action: KeyAction::Help,
    },
    Action {
        key: 'q',
        label: "quit",
        help: "quit (also Ctrl-C); the data stays in the data directory",
        action: KeyAction::Quit,
    },
];

impl Action {
    /// How the key is written on the key bar, in the help overlay and in README's key table.
    pub fn key_name(&self) -> String {
        match self.key {
            ' ' => "space".into(),
            '⏎' => "Enter".into(),
            '⇞' => "PgUp".into(),
            key => key.to_string(),
        }
    }
}

/// The speed steps of `+` and `-`, as slowdown factors.
const SPEEDS: [u32; 6] = [1, 2, 5, 10, 20, 50];

fn slower(now: u32) -> u32 {
    SPEEDS.into_iter().find(|s| *s > now).unwrap_or(50)
}

fn faster(now: u32) -> u32 {
    SPEEDS.into_iter().rev().find(|s| *s < now).unwrap_or(1)
}

/// README's key table, made from [`ACTIONS`] (a unit test holds README to it).
pub fn key_table_markdown() -> String {
    let mut table = String::from("| key | what it does |\n|---|---|\n");
    for a in ACTIONS {
        let key = match a.key {
            '←' => "← (h)".into(),
            '→' => "→ (l), 0–9".into(),
            ']' => "] [".into(),
            _ => a.key_name(),
        };
        let help = a.help.replace('|', "\\|");
        table.push_str(&format!("| {key} | {help} |\n"));
    }
    table
}

/// The action bound to a key character (arrows are mapped to '←'/'→' by the caller).
pub fn action_for(key: char) -> Option<KeyAction> {
    let key = match key {
        'h' => '←',
        'l' => '→',
        other => other,
    };
    ACTIONS.iter().find(|a| a.key == key).map(|a| a.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_key_table_is_the_actions_table() {
        let readme = include_str!("../../README.md");
        let table = key_table_markdown();
        assert!(
            readme.contains(&table),
            "README.md's key table differs from ACTIONS; it should read:\n{table}"
        );
    }

    #[test]
    fn a_verb_is_named_in_the_labs_words() {
        assert_eq!(LabCommand::Restart { id: 0 }.to_string(), "restart n0");
        assert_eq!(LabCommand::TimeOut { id: 2 }.to_string(), "time out n2");
        let split = LabCommand::Partition {
            groups: vec![vec![0, 1, 2], vec![3, 4]],
        };
        assert_eq!(split.to_string(), "partition n0 n1 n2 | n3 n4");
        let request = LabCommand::Request {
            via: Some(1),
            key: "x".into(),
            value: "1".into(),
        };
        assert_eq!(request.to_string(), "request APPEND x 1 via n1");
    }

    #[test]
    fn every_key_is_bound_once() {
        let mut keys: Vec<char> = ACTIONS.iter().map(|a| a.key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), ACTIONS.len());
    }

    #[test]
    fn keys_build_commands_for_the_selected_node() {
        let ctx = Context {
            selected: 3,
            nodes: 5,
            paused: true,
            pre_vote: true,
            slowdown: 1,
            held: None,
            requests: 4,
        };
        let run = |k| match action_for(k) {
            Some(KeyAction::Command(f)) => f(&ctx),
            _ => panic!("{k} is not a command"),
        };
        assert_eq!(run('k'), LabCommand::Kill { id: 3 });
        assert_eq!(run(' '), LabCommand::Resume);
        assert_eq!(
            run('s'),
            LabCommand::Partition {
                groups: vec![vec![0, 1, 2], vec![3, 4]]
            }
        );
        assert_eq!(run('o'), LabCommand::Cut { from: 3, to: 4 });
        assert_eq!(
            run('a'),
            LabCommand::Request {
                via: Some(3),
                key: "log".into(),
                value: "v5".into()
            }
        );
        assert_eq!(run('p'), LabCommand::SetPreVote { enabled: false });
        assert!(matches!(action_for('h'), Some(KeyAction::SelectPrev)));
        assert_eq!(run('+'), LabCommand::Speed { factor: 2 });
        assert_eq!(run('-'), LabCommand::Speed { factor: 1 });
        assert_eq!(run('d'), LabCommand::Step, "nothing chosen: the oldest");
        assert_eq!(
            (slower(10), slower(50), faster(10), faster(3)),
            (20, 50, 5, 2)
        );
    }
}
