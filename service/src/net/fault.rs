//! Injected network faults, shared by every node of an in-process cluster: cut directed links
//! (partitions are sets of cuts) and a global pause. Checked on the sending side before a message
//! leaves and on the receiving side before it is handed to Raft, and again before the reply goes
//! back, so a one-way cut behaves like a real one. A pause *holds* messages until resume instead of
//! dropping them. In per-process mode the table stays empty.

use std::collections::BTreeSet;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;

/// A snapshot of the table, for display.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    pub paused: bool,
    /// Directed links (from, to) that drop every message.
    pub cut: BTreeSet<(u64, u64)>,
}

pub struct FaultTable {
    cut: Mutex<BTreeSet<(u64, u64)>>,
    paused: watch::Sender<bool>,
}

impl Default for FaultTable {
    fn default() -> Self {
        FaultTable {
            cut: Mutex::new(BTreeSet::new()),
            paused: watch::channel(false).0,
        }
    }
}

impl FaultTable {
    fn cuts(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u64, u64)>> {
        self.cut.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.cuts().contains(&(from, to))
    }

    /// Waits while the cluster is paused, then says whether `from → to` delivers.
    pub async fn pass(&self, from: u64, to: u64) -> bool {
        let mut paused = self.paused.subscribe();
        // `wait_for` returns at once when not paused; the sender lives as long as `self`.
        let _ = paused.wait_for(|p| !*p).await;
        !self.is_cut(from, to)
    }

    /// Cuts both directions between every pair of nodes in different groups. Nodes in no group
    /// keep their links.
    pub fn partition(&self, groups: &[Vec<u64>]) {
        let mut cut = self.cuts();
        for (i, a) in groups.iter().enumerate() {
            for b in groups.iter().skip(i + 1) {
                for x in a {
                    for y in b {
                        cut.insert((*x, *y));
                        cut.insert((*y, *x));
                    }
                }
            }
        }
    }

    /// Cuts one direction only.
    pub fn cut(&self, from: u64, to: u64) {
        self.cuts().insert((from, to));
    }

    pub fn heal(&self) {
        self.cuts().clear();
    }

    pub fn pause(&self, paused: bool) {
        self.paused.send_replace(paused);
    }

    pub fn snapshot(&self) -> Faults {
        Faults {
            paused: *self.paused.borrow(),
            cut: self.cuts().clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_cuts_across_groups_only_and_heal_restores() {
        let t = FaultTable::default();
        t.partition(&[vec![0, 1, 2], vec![3, 4]]);
        assert!(t.is_cut(0, 3) && t.is_cut(4, 2));
        assert!(!t.is_cut(0, 1) && !t.is_cut(3, 4));
        assert_eq!(t.snapshot().cut.len(), 12);
        t.heal();
        assert!(t.snapshot().cut.is_empty());
        t.cut(1, 2);
        assert!(t.is_cut(1, 2) && !t.is_cut(2, 1));
    }

    #[tokio::test]
    async fn a_pause_holds_messages_until_resume() {
        let t = std::sync::Arc::new(FaultTable::default());
        t.pause(true);
        let held = tokio::spawn({
            let t = t.clone();
            async move { t.pass(0, 1).await }
        });
        let waited =
            tokio::time::timeout(std::time::Duration::from_millis(100), t.pass(2, 3)).await;
        assert!(waited.is_err(), "a paused link must hold the message");
        assert!(!held.is_finished());
        t.pause(false);
        assert!(held.await.unwrap(), "released and delivered on resume");
    }
}
