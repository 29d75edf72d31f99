//! Injected network faults, shared by every node of an in-process cluster: cut directed links
//! (partitions are sets of cuts) and a pause. A cut is checked on the sending side before a
//! message leaves and on the receiving side before it is handed to Raft and before the reply goes
//! back, so a one-way cut behaves like a real one. A pause *holds* every message, request or
//! reply, on the sending side: each held message is listed with its fields and waits until a
//! learner delivers or drops it, or the pause ends (everything still held is then delivered, in
//! the order it was held). In per-process mode the table stays empty.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

#[cfg(test)]
use crate::observe::Rpc;
pub use crate::observe::{Held, Leg};

/// A snapshot of the table, for display.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Faults {
    pub paused: bool,
    /// Directed links (from, to) that drop every message.
    pub cut: BTreeSet<(u64, u64)>,
    /// Messages held by the pause, oldest first.
    #[serde(default)]
    pub held: Vec<Held>,
}

/// What became of a message at the fault table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Passage {
    Go,
    /// The link is cut.
    Cut,
    /// A learner dropped it while it was held.
    Dropped,
}

#[derive(Default)]
struct Hold {
    paused: bool,
    last_id: u64,
    held: BTreeMap<u64, (Held, oneshot::Sender<bool>)>,
    /// Held messages whose sender stopped waiting (its deadline passed after a learner moved the
    /// clock, or the node stopped), not yet reported.
    abandoned: Vec<Held>,
}

pub struct FaultTable {
    cut: Mutex<BTreeSet<(u64, u64)>>,
    hold: Mutex<Hold>,
    /// Bumped whenever a message is held or leaves the hold, for waiters.
    changes: watch::Sender<u64>,
    /// Exchanges on their way between the hold and the receiver's reply ([`Moving`]).
    moving: AtomicUsize,
}

/// Counts one exchange as moving while it lives: sent, and its reply not yet back to the hold.
pub struct Moving<'a>(&'a AtomicUsize);

impl Drop for Moving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Default for FaultTable {
    fn default() -> Self {
        FaultTable {
            cut: Mutex::new(BTreeSet::new()),
            hold: Mutex::new(Hold::default()),
            changes: watch::channel(0).0,
            moving: AtomicUsize::new(0),
        }
    }
}

/// Takes a held message out of the table if its sender stops waiting for it.
struct Waiting<'a> {
    table: &'a FaultTable,
    id: Option<u64>,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id {
            let mut hold = self.table.holds();
            if let Some((held, _)) = hold.held.remove(&id) {
                hold.abandoned.push(held);
            }
            drop(hold);
            self.table.changes.send_modify(|n| *n += 1);
        }
    }
}

impl FaultTable {
    fn cuts(&self) -> std::sync::MutexGuard<'_, BTreeSet<(u64, u64)>> {
        self.cut.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn holds(&self) -> std::sync::MutexGuard<'_, Hold> {
        self.hold.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.cuts().contains(&(from, to))
    }

    pub fn is_paused(&self) -> bool {
        self.holds().paused
    }

    /// Says whether a message from → to goes on. While paused it is held first (`describe` tells
    /// what it is; its id is filled in here) until delivered, dropped or resumed.
    pub async fn pass(&self, from: u64, to: u64, describe: impl FnOnce() -> Held) -> Passage {
        if self.is_cut(from, to) {
            return Passage::Cut;
        }
        let verdict = {
            let mut hold = self.holds();
            if !hold.paused {
                return Passage::Go;
            }
            hold.last_id += 1;
            let id = hold.last_id;
            let (tx, rx) = oneshot::channel();
            hold.held.insert(id, (Held { id, ..describe() }, tx));
            (id, rx)
        };
        self.changes.send_modify(|n| *n += 1);
        let mut waiting = Waiting {
            table: self,
            id: Some(verdict.0),
        };
        let delivered = verdict.1.await.unwrap_or(true);
        waiting.id = None;
        match delivered {
            // A link cut while the message was held loses it, as a real one would.
            true if self.is_cut(from, to) => Passage::Cut,
            true => Passage::Go,
            false => Passage::Dropped,
        }
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

    /// Starts holding messages, or stops: then everything still held goes on, oldest first.
    pub fn pause(&self, paused: bool) {
        let released: Vec<_> = {
            let mut hold = self.holds();
            hold.paused = paused;
            if paused {
                Vec::new()
            } else {
                std::mem::take(&mut hold.held).into_values().collect()
            }
        };
        for (_, go) in released {
            let _ = go.send(true);
        }
        self.changes.send_modify(|n| *n += 1);
    }

    /// Lets held message `id` go on (`deliver`) or loses it; returns it.
    pub fn release(&self, id: u64, deliver: bool) -> Result<Held, String> {
        let (held, go) = {
            let mut hold = self.holds();
            if !hold.paused {
                return Err("nothing is held: messages are held only while paused".into());
            }
            hold.held.remove(&id).ok_or_else(|| {
                format!("no held message {id} (see the held list: it may have been delivered, dropped or given up)")
            })?
        };
        // A sender that gave up in the meantime has dropped its receiver; nothing is lost then.
        let _ = go.send(deliver);
        self.changes.send_modify(|n| *n += 1);
        Ok(held)
    }

    /// The oldest held message, if any.
    pub fn oldest(&self) -> Option<u64> {
        self.holds().held.keys().next().copied()
    }

    /// Held messages whose senders gave up on them since the last call.
    pub fn take_abandoned(&self) -> Vec<Held> {
        std::mem::take(&mut self.holds().abandoned)
    }

    /// Counts an exchange as moving until the returned guard is dropped.
    pub fn start_moving(&self) -> Moving<'_> {
        self.moving.fetch_add(1, Ordering::SeqCst);
        Moving(&self.moving)
    }

    /// How many exchanges are between the hold and their reply.
    pub fn moving(&self) -> usize {
        self.moving.load(Ordering::SeqCst)
    }

    /// A receiver that changes whenever a message is held or leaves the hold.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    pub fn snapshot(&self) -> Faults {
        let hold = self.holds();
        Faults {
            paused: hold.paused,
            cut: self.cuts().clone(),
            held: hold.held.values().map(|(h, _)| h.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    fn vote(from: u64, to: u64) -> impl FnOnce() -> Held {
        move || Held {
            id: 0,
            from,
            to,
            rpc: Rpc::Vote,
            leg: Leg::Request,
            term: 1,
            entries: 0,
            fields: None,
            reply: None,
        }
    }

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

    /// Sends a vote from → to through `t` in a task of its own (it may be held).
    fn send(t: &Arc<FaultTable>, from: u64, to: u64) -> tokio::task::JoinHandle<Passage> {
        let t = t.clone();
        tokio::spawn(async move { t.pass(from, to, vote(from, to)).await })
    }

    async fn until_held(t: &FaultTable, n: usize) {
        let mut changes = t.changes();
        tokio::time::timeout(
            Duration::from_secs(5),
            changes.wait_for(|_| t.snapshot().held.len() >= n),
        )
        .await
        .expect("held in time")
        .unwrap();
    }

    #[tokio::test]
    async fn a_pause_holds_messages_which_are_delivered_dropped_or_released_on_resume() {
        let t = Arc::new(FaultTable::default());
        assert_eq!(t.pass(0, 1, vote(0, 1)).await, Passage::Go);
        t.pause(true);
        let (a, b, c) = (send(&t, 0, 1), send(&t, 2, 3), send(&t, 4, 0));
        until_held(&t, 3).await;
        let held = t.snapshot().held;
        assert_eq!(held.iter().map(|h| h.id).collect::<Vec<_>>(), [1, 2, 3]);
        let first = held.iter().find(|h| h.from == 2).unwrap().id;
        assert_eq!(t.release(first, true).unwrap().to, 3);
        assert_eq!(b.await.unwrap(), Passage::Go);
        let dropped = t.snapshot().held.iter().find(|h| h.from == 4).unwrap().id;
        t.release(dropped, false).unwrap();
        assert_eq!(c.await.unwrap(), Passage::Dropped);
        assert!(
            t.release(dropped, true)
                .unwrap_err()
                .contains("no held message")
        );
        assert!(!a.is_finished(), "still held");
        t.pause(false);
        assert_eq!(a.await.unwrap(), Passage::Go, "released on resume");
        assert!(
            t.release(1, true)
                .unwrap_err()
                .contains("only while paused")
        );
    }

    #[tokio::test]
    async fn a_sender_that_gives_up_leaves_the_hold_and_is_reported() {
        let t = Arc::new(FaultTable::default());
        t.pause(true);
        let waiting = send(&t, 1, 2);
        until_held(&t, 1).await;
        waiting.abort();
        let _ = waiting.await;
        assert!(t.snapshot().held.is_empty());
        assert_eq!(t.take_abandoned().len(), 1);
        assert!(t.take_abandoned().is_empty());
    }

    #[tokio::test]
    async fn a_link_cut_while_a_message_is_held_loses_it() {
        let t = Arc::new(FaultTable::default());
        t.pause(true);
        let waiting = send(&t, 1, 2);
        until_held(&t, 1).await;
        t.cut(1, 2);
        t.release(1, true).unwrap();
        assert_eq!(waiting.await.unwrap(), Passage::Cut);
        assert_eq!(t.pass(1, 2, vote(1, 2)).await, Passage::Cut);
    }
}
