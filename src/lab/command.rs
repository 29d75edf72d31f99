//! Every lab verb as a [`LabCommand`], and [`ACTIONS`]: the one table of keys that drives key
//! dispatch, the key bar and the help overlay. Adding a verb = one variant, one row, one arm in
//! the engine. Verbs follow raft.github.io (kill = stop, restart, time out, request) plus
//! partition, heal, pause, transfer, and membership changes (add, promote, remove).

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabCommand {
    Kill(usize),
    Restart(usize),
    /// Make the node start an election now.
    TimeOut(usize),
    /// Hand leadership to the node.
    Transfer(usize),
    /// Cut the node off from every other node.
    Isolate(usize),
    /// Cut every link between the groups.
    Partition(Vec<Vec<u64>>),
    /// Cut one direction of one link.
    Cut {
        from: u64,
        to: u64,
    },
    Heal,
    Pause,
    Resume,
    /// Client request: append `value` to `key`, sent to node `via`.
    Request {
        via: usize,
        key: String,
        value: String,
    },
    SetPreVote(bool),
    /// "slow" or "normal".
    SetTiming(String),
    /// Start a new server and add it to the cluster as a learner.
    AddNode,
    /// Make the learner a voter.
    Promote(usize),
    /// Take the server out of the cluster (it stops for good; its id is never reused).
    Remove(usize),
}

/// What a key does, given the selected node and the current pause/pre-vote/timing state.
#[derive(Clone, Copy)]
pub enum KeyAction {
    Command(fn(&Context) -> LabCommand),
    SelectNext,
    SelectPrev,
    Help,
    Quit,
}

/// What a key needs to know to build its command.
pub struct Context {
    pub selected: usize,
    pub nodes: usize,
    pub paused: bool,
    pub pre_vote: bool,
    pub slow: bool,
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
        help: "select the previous node (also h)",
        action: KeyAction::SelectPrev,
    },
    Action {
        key: '→',
        label: "",
        help: "select the next node (also l, or a digit)",
        action: KeyAction::SelectNext,
    },
    Action {
        key: 'k',
        label: "kill",
        help: "kill the selected node (crash: its ports close, its data stays)",
        action: KeyAction::Command(|c| LabCommand::Kill(c.selected)),
    },
    Action {
        key: 'r',
        label: "restart",
        help: "restart the selected node from its data directory",
        action: KeyAction::Command(|c| LabCommand::Restart(c.selected)),
    },
    Action {
        key: 't',
        label: "time out",
        help: "the selected node's election timer fires now: it starts an election",
        action: KeyAction::Command(|c| LabCommand::TimeOut(c.selected)),
    },
    Action {
        key: 'L',
        label: "transfer",
        help: "transfer leadership to the selected node",
        action: KeyAction::Command(|c| LabCommand::Transfer(c.selected)),
    },
    Action {
        key: 'i',
        label: "isolate",
        help: "partition: cut the selected node off from all others",
        action: KeyAction::Command(|c| LabCommand::Isolate(c.selected)),
    },
    Action {
        key: 's',
        label: "split",
        help: "partition into {0,1,2} | {3,4,…} (the assignment's two computers)",
        action: KeyAction::Command(|c| {
            LabCommand::Partition(vec![(0..3).collect(), (3..c.nodes as u64).collect()])
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
        help: "pause / resume the whole cluster (timers and messages freeze)",
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
            via: c.selected,
            key: "log".into(),
            value: format!("v{}", c.requests + 1),
        }),
    },
    Action {
        key: 'n',
        label: "add node",
        help: "start a new server and add it as a learner (it catches up, votes once promoted)",
        action: KeyAction::Command(|_| LabCommand::AddNode),
    },
    Action {
        key: 'v',
        label: "promote",
        help: "promote the selected learner to voter",
        action: KeyAction::Command(|c| LabCommand::Promote(c.selected)),
    },
    Action {
        key: 'x',
        label: "remove",
        help: "remove the selected node from the cluster (a leader hands over first)",
        action: KeyAction::Command(|c| LabCommand::Remove(c.selected)),
    },
    Action {
        key: 'p',
        label: "pre-vote",
        help: "turn pre-vote on / off on every node",
        action: KeyAction::Command(|c| LabCommand::SetPreVote(!c.pre_vote)),
    },
    Action {
        key: 'T',
        label: "timing",
        help: "switch timing: slow (elections over seconds) / normal (restarts the nodes)",
        action: KeyAction::Command(|c| {
            LabCommand::SetTiming(if c.slow { "normal" } else { "slow" }.into())
        }),
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
        help: "quit (the data stays in the data directory)",
        action: KeyAction::Quit,
    },
];

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
            slow: false,
            requests: 4,
        };
        let run = |k| match action_for(k) {
            Some(KeyAction::Command(f)) => f(&ctx),
            _ => panic!("{k} is not a command"),
        };
        assert_eq!(run('k'), LabCommand::Kill(3));
        assert_eq!(run(' '), LabCommand::Resume);
        assert_eq!(
            run('s'),
            LabCommand::Partition(vec![vec![0, 1, 2], vec![3, 4]])
        );
        assert_eq!(run('o'), LabCommand::Cut { from: 3, to: 4 });
        assert_eq!(
            run('a'),
            LabCommand::Request {
                via: 3,
                key: "log".into(),
                value: "v5".into()
            }
        );
        assert_eq!(run('p'), LabCommand::SetPreVote(false));
        assert!(matches!(action_for('h'), Some(KeyAction::SelectPrev)));
    }
}
