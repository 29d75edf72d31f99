//! Whether this server is still a member of the cluster, as far as it can know. Raft leaves a
//! removed server running with its last configuration, in which it is still a voter: the leader
//! stops sending it anything and it campaigns in vain (measured: a removed follower and a removed
//! leader both kept "follower" and their old member lists for as long as we watched). raftkv
//! lets it find out two ways:
//! - its own log holds a configuration without it, newer than one it was in (the leader sent the
//!   change before it stopped replicating to it);
//! - a peer it asks for a (pre-)vote answers [`Reply::Removed`](crate::net::frame::Reply): its
//!   *committed* configuration, at a log index above every configuration the asker has, does not
//!   have the asker. Ids are never reused, so that configuration cannot be undone.
//!
//! A lagging peer (one whose committed configuration is older than ours) cannot fool us: its
//! index is not above ours and its answer is ignored. Once a server knows, it stops campaigning,
//! its status says `removed`, and it refuses client requests at once.

use std::sync::{Arc, Mutex};

use openraft::async_runtime::WatchReceiver;
use tokio::sync::Notify;

use super::typ::{Raft, RaftMetrics};

#[derive(Default)]
pub struct Removal {
    state: Mutex<State>,
    told: Notify,
}

#[derive(Default)]
struct State {
    /// The latest configuration (its log index) that had this server.
    member_at: Option<u64>,
    /// The highest log index of a peer's committed configuration without this server.
    told: Option<u64>,
    /// Why this server knows it was removed, once it does.
    known: Option<String>,
}

impl Removal {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A peer answered that its committed configuration at `config_index` does not have us.
    pub fn told(&self, config_index: u64) {
        let mut state = self.state();
        state.told = state.told.max(Some(config_index));
        drop(state);
        self.told.notify_one();
    }

    /// Why this server was removed, if it knows it was.
    pub fn known(&self) -> Option<String> {
        self.state().known.clone()
    }

    /// Updates what this server knows from its metrics and its peers' answers; true when it has
    /// just learned that it was removed.
    pub fn check(&self, me: u64, m: &RaftMetrics) -> bool {
        let stored = &m.membership_config;
        let index = stored.log_id().as_ref().map(|l| l.index);
        let member = stored.membership().get_node(&me).is_some();
        let mut state = self.state();
        if state.known.is_some() {
            return false;
        }
        if member {
            state.member_at = state.member_at.max(Some(index.unwrap_or(0)));
        }
        let Some(was) = state.member_at else {
            // Never a member yet (a new server catching up reads older configurations first).
            return false;
        };
        let newest = index.unwrap_or(0).max(was);
        let reason = match (index, state.told) {
            (Some(i), _) if !member && i > was => {
                format!("the configuration at log index {i} no longer has it")
            }
            (_, Some(t)) if t > newest => {
                format!("a peer's committed configuration at log index {t} no longer has it")
            }
            _ => return false,
        };
        state.known = Some(reason);
        true
    }
}

/// On the receiving side of a (pre-)vote request: the log index of this server's committed
/// configuration if it does not have `peer` (the asker was removed, or never was a member).
pub async fn not_a_member(raft: &Raft, peer: u64) -> Option<u64> {
    let committed = raft
        .with_raft_state(|s| s.membership_state.committed().clone())
        .await
        .ok()?;
    let index = committed.log_id().as_ref()?.index;
    committed
        .membership()
        .get_node(&peer)
        .is_none()
        .then_some(index)
}

/// Watches this server's metrics and its peers' answers until Raft stops; when it learns that it
/// was removed, it stops campaigning and says so in its log once.
pub async fn watch(raft: Raft, me: u64, removal: Arc<Removal>) {
    let mut metrics = raft.metrics();
    loop {
        let learned = {
            let m = metrics.borrow_watched().clone();
            removal.check(me, &m)
        };
        if learned {
            // A removed server must not disturb the cluster it left: no more elections.
            raft.runtime_config().elect(false);
            let why = removal.known().unwrap_or_default();
            tracing::warn!(
                node = me,
                "removed from the cluster: {why}; it no longer serves"
            );
            return;
        }
        tokio::select! {
            changed = metrics.changed() => if changed.is_err() { return },
            _ = removal.told.notified() => {}
        }
    }
}
