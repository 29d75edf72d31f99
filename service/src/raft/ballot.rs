//! The paper's `votedFor` (Figure 2): the candidate this server granted its vote to, and in which
//! term. openraft does not keep it. Its own vote (`RaftMetrics::vote`) is the highest (term,
//! node) this server has accepted from anyone: the candidate it voted for, but also the leader
//! whose AppendEntries it accepted without having voted (a server that was down during the
//! election), or the term a candidate adopted from a peer that refused it. Shown as `voted_for`,
//! that made restarted servers claim votes they never cast, so raftkv records grants where they
//! happen: `net::server` after openraft answers a RequestVote with `vote_granted` (pre-votes
//! are not votes), and `net::client` when a candidate sends its RequestVotes (its vote for
//! itself; until the first one leaves, it is read from openraft's vote, [`voted_for`]).
//!
//! Safety does not rest on this record: openraft's vote, fsynced before it is answered, is what
//! keeps a server to one vote per term. The ballot is an observation kept across restarts so the
//! status can say what the paper means; a crash between openraft's fsync and ours loses the
//! record of that one grant (the status then shows no vote for that term, never a wrong one).

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::store::write_atomically_async;

const FILE: &str = "ballot.json";

/// A vote this server granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub term: u64,
    pub candidate: u64,
}

/// The last vote this server granted, to another candidate or itself, kept in the node's data dir.
pub struct Ballot {
    dir: PathBuf,
    last: Mutex<Option<Grant>>,
    /// One save at a time, each writing the newest grant: two grants answered on two connections
    /// cannot leave the older one on disk.
    saving: tokio::sync::Mutex<()>,
    /// Grants being recorded ([`Ballot::saves_in_flight`]).
    in_flight: AtomicU64,
}

/// Counts one grant as being recorded while it lives, so a dropped future cannot leak a count.
struct Saving<'a>(&'a AtomicU64);

impl Drop for Saving<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ballot {
    /// Reads the last grant from `dir` (none if the file is missing or unreadable: the record is
    /// an observation, and an unreadable one must not stop the node).
    pub fn open(dir: PathBuf) -> Ballot {
        let last = std::fs::read(dir.join(FILE))
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok());
        Ballot {
            dir,
            last: Mutex::new(last),
            saving: Default::default(),
            in_flight: AtomicU64::new(0),
        }
    }

    pub fn last(&self) -> Option<Grant> {
        *self.last.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Grants being recorded now. Each holds back a message until its record is fsynced (a
    /// candidate's first vote request, a voter's reply), so while one is, the node owes a
    /// reaction nothing outside it can see yet; a stepped cluster waits for 0, as it does for
    /// the log's writes in flight. On a slow disk the candidate's first request left one whole
    /// atomic write (two fsyncs) after the other three, and a step ended without it.
    pub fn saves_in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::SeqCst)
    }

    /// Records that this server granted its vote in `term` to `candidate`. Called before the
    /// grant is sent, so no status read after the candidate counted it can miss it.
    pub async fn granted(&self, term: u64, candidate: u64) {
        // Counted from before the record changes until it is on disk: the message this grant
        // holds back (a vote request, or a vote reply) leaves only then.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let _counted = Saving(&self.in_flight);
        let grant = Grant { term, candidate };
        {
            let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            // Older than what is recorded, or already recorded (a candidate asks every peer).
            if last.is_some_and(|l| l.term > term || l == grant) {
                return;
            }
            *last = Some(grant);
        }
        let _saving = self.saving.lock().await;
        let Ok(bytes) = serde_json::to_vec(&self.last()) else {
            return;
        };
        // FSYNC (inside): elections are rare; a few milliseconds once per grant.
        if let Err(e) = write_atomically_async(&self.dir, FILE, bytes).await {
            tracing::warn!("could not save the vote granted in term {term}: {e}");
        }
    }
}

/// The paper's `votedFor` in `current_term`: the candidate this server granted its vote to in
/// that term, itself if it stood as candidate (recorded, or still openraft's vote), or none.
pub fn voted_for(
    me: u64,
    current_term: u64,
    vote: Option<(u64, u64)>,
    ballot: Option<Grant>,
) -> Option<u64> {
    if let Some((term, node)) = vote
        && term == current_term
        && node == me
    {
        return Some(me);
    }
    ballot
        .filter(|g| g.term == current_term)
        .map(|g| g.candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vote_held_from_a_leader_is_not_a_vote_cast() {
        // Down during the election of term 3, then caught up by n0's AppendEntries: openraft
        // holds (3, n0), but this server voted for nobody in term 3.
        assert_eq!(
            voted_for(
                2,
                3,
                Some((3, 0)),
                Some(Grant {
                    term: 2,
                    candidate: 4
                })
            ),
            None
        );
        // It granted n0 its vote in term 3.
        assert_eq!(
            voted_for(
                2,
                3,
                Some((3, 0)),
                Some(Grant {
                    term: 3,
                    candidate: 0
                })
            ),
            Some(0)
        );
        // It stood for election in term 3 itself.
        assert_eq!(voted_for(2, 3, Some((3, 2)), None), Some(2));
        assert_eq!(voted_for(2, 0, None, None), None);
    }

    #[tokio::test]
    async fn a_grant_survives_a_restart_and_an_older_one_does_not_replace_it() {
        let dir = tempfile::tempdir().unwrap();
        let ballot = Ballot::open(dir.path().into());
        ballot.granted(5, 1).await;
        ballot.granted(4, 3).await;
        let again = Ballot::open(dir.path().into());
        assert_eq!(
            again.last(),
            Some(Grant {
                term: 5,
                candidate: 1
            })
        );
    }
}
