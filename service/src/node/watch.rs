//! Logs what an operator greps for, one info line each, as openraft's metrics report it: a role
//! change (an election started shows as `candidate`), a new term, a new leader, a membership
//! change. Runs until the node's Raft stops. Counts elections and leader changes for /metrics.

use std::sync::Arc;

use openraft::async_runtime::WatchReceiver;

use crate::metrics::Metrics;
use crate::raft::status::Role;
use crate::raft::typ::Raft;

pub async fn log_changes(raft: Raft, id: u64, metrics: Arc<Metrics>) {
    let mut watched = raft.metrics();
    let (mut role, mut term, mut leader, mut membership) = (None, None, None, None);
    loop {
        {
            let m = watched.borrow_watched();
            let now_role = Role::from(m.state);
            if term != Some(m.current_term) {
                tracing::info!(node = id, term = m.current_term, "term changed");
                term = Some(m.current_term);
            }
            if role.as_ref() != Some(&now_role) {
                if now_role == Role::Candidate {
                    metrics.elections.inc();
                    tracing::info!(node = id, term = m.current_term, "election started");
                } else {
                    tracing::info!(node = id, term = m.current_term, role = %now_role, "role changed");
                }
                role = Some(now_role);
            }
            if leader != Some(m.current_leader) {
                match m.current_leader {
                    Some(l) => {
                        metrics.leader_changes.inc();
                        tracing::info!(
                            node = id,
                            term = m.current_term,
                            leader = l,
                            "leader elected"
                        )
                    }
                    None => tracing::info!(node = id, term = m.current_term, "no leader known"),
                }
                leader = Some(m.current_leader);
            }
            let config = describe(m.membership_config.membership());
            if membership.as_ref() != Some(&config) {
                tracing::info!(node = id, membership = %config, "membership");
                membership = Some(config);
            }
        }
        if watched.changed().await.is_err() {
            return;
        }
    }
}

/// A membership as ids: `voters {0,1,2} learners {5}`; during a change (joint consensus) both
/// voter sets, `voters {0,1,2} + {0,1,2,5}`.
fn describe(m: &openraft::Membership<u64, openraft::BasicNode>) -> String {
    let ids = |set: &std::collections::BTreeSet<u64>| {
        let ids: Vec<String> = set.iter().map(u64::to_string).collect();
        format!("{{{}}}", ids.join(","))
    };
    let voters: Vec<String> = m.get_joint_config().iter().map(ids).collect();
    let learners: std::collections::BTreeSet<u64> = m.learner_ids().collect();
    let voters = if voters.is_empty() {
        "{}".to_owned()
    } else {
        voters.join(" + ")
    };
    format!("voters {voters} learners {}", ids(&learners))
}
