//! Election Safety (Raft §5.2, Figure 3): at most one leader can be elected in a given term.
//! Checked from the wire while a nemesis runs. Only a leader sends AppendEntries (heartbeats
//! included) and InstallSnapshot, and each carries its term, so every (term, sender) pair the
//! transport reports names a node that led in that term; two senders for one term are two
//! leaders in it. A node elected and killed before sending anything is not seen, so the check
//! can miss a violation but never invents one.

use std::collections::{BTreeMap, BTreeSet};

use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::cluster::Cluster;
use crate::observe::{Event, Rpc};

/// Who sent leader-only messages in which term.
#[derive(Debug, Default)]
pub struct Leaders {
    by_term: BTreeMap<u64, BTreeSet<u64>>,
    /// Events the watch fell too far behind to see (the transport never waits for it).
    pub missed: u64,
}

impl Leaders {
    fn record(&mut self, event: &Event) {
        if matches!(event.rpc, Rpc::Append | Rpc::Heartbeat | Rpc::Snapshot) {
            self.by_term
                .entry(event.term)
                .or_default()
                .insert(event.from);
        }
    }

    /// Terms in which some node acted as leader.
    pub fn terms(&self) -> usize {
        self.by_term.len()
    }

    /// One line per term with more than one leader.
    pub fn violations(&self) -> Vec<String> {
        self.by_term
            .iter()
            .filter(|(_, nodes)| nodes.len() > 1)
            .map(|(term, nodes)| format!("two leaders in term {term}: nodes {nodes:?}"))
            .collect()
    }
}

/// Follows the cluster's transport events from `start` until `finish`.
pub struct Watch {
    stop: oneshot::Sender<()>,
    task: JoinHandle<Leaders>,
}

impl Watch {
    pub fn start(cluster: &Cluster) -> Watch {
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(follow(cluster.events(), stopped));
        Watch { stop, task }
    }

    /// Stops following (after the events already sent) and returns what was seen.
    pub async fn finish(self) -> anyhow::Result<Leaders> {
        let _ = self.stop.send(());
        Ok(self.task.await?)
    }
}

async fn follow(
    mut events: broadcast::Receiver<Event>,
    mut stop: oneshot::Receiver<()>,
) -> Leaders {
    let mut seen = Leaders::default();
    loop {
        tokio::select! {
            // Events first: a stop takes effect once nothing sent before it is left unread.
            biased;
            got = events.recv() => match got {
                Ok(event) => seen.record(&event),
                Err(RecvError::Lagged(n)) => seen.missed += n,
                Err(RecvError::Closed) => break,
            },
            _ = &mut stop => break,
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::Fate;

    fn sent(from: u64, term: u64, rpc: Rpc) -> Event {
        Event {
            from,
            to: (from + 1) % 5,
            rpc,
            term,
            entries: 0,
            fate: Fate::Dropped,
            fields: None,
            reply: None,
            legs: None,
        }
    }

    #[test]
    fn two_senders_of_leader_messages_in_one_term_are_two_leaders() {
        let mut seen = Leaders::default();
        for event in [
            sent(1, 2, Rpc::Heartbeat),
            sent(1, 2, Rpc::Append),
            // Candidates asking for votes in the same term are not leaders.
            sent(3, 2, Rpc::Vote),
            sent(4, 2, Rpc::PreVote),
            sent(3, 3, Rpc::Append),
        ] {
            seen.record(&event);
        }
        assert_eq!(seen.terms(), 2);
        assert!(seen.violations().is_empty());
        seen.record(&sent(0, 3, Rpc::Snapshot));
        assert_eq!(
            seen.violations(),
            vec!["two leaders in term 3: nodes {0, 3}".to_string()]
        );
    }
}
