//! Where a client request enters the cluster: [`Gateway`] serves it with this node's Raft if this
//! node leads, otherwise forwards it over the transport to the node it believes leads, and retries
//! until the request deadline. One loop ([`Gateway::at_leader`]) does this for every verb — a
//! write, a membership change, a read index — each verb saying only how it is served here, how it
//! is asked of the leader, and what its outcome means ([`LeaderVerb`]).
//!
//! Every attempt of one write carries the same request id, so the state machine applies it at most
//! once however many times a leader change or a lost reply makes us resend it.
//!
//! The deadline runs on the node's clock (`crate::clock`): real time in per-process mode, the
//! lab's clock in a lab, so a request sent to a paused lab waits while time stands still, as
//! the Raft timers do, instead of failing after five real seconds of a learner's stepping.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use openraft::async_runtime::WatchReceiver;
use tokio::time::Instant;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::kv::{self, Request, RequestId};
use crate::net::client::Peers;
use crate::net::frame::{self, Reply};
use crate::raft::batch::Proposer;
use crate::raft::leader::{self, ReadOutcome, WriteOutcome};
use crate::raft::members::{self, MemberChange, MemberOutcome};
use crate::raft::removal::Removal;
use crate::raft::typ::Raft;

/// A node's entry point for client requests: the HTTP handlers, the lab and `cluster::Cluster`
/// all send requests through it.
#[derive(Clone)]
pub struct Gateway {
    pub raft: Raft,
    /// This node's batcher: how a write is proposed when this node leads.
    pub proposer: Proposer,
    pub peers: Peers,
    pub id: u64,
    /// Deadline for one client request, all retries included.
    pub timeout: Duration,
    /// Whether this node knows it was removed from the cluster: it then serves nothing.
    pub removal: Arc<Removal>,
    /// The lab's clock the node runs on, if any: `timeout` is measured on it.
    pub clock: Option<Arc<Clock>>,
}

/// What one attempt at the leader came to.
enum Step<T> {
    /// Finished, with the caller's answer.
    Done(Result<T>),
    /// Not finished: try again after a pause. `maybe_applied`: this attempt may have taken effect
    /// (reached a leader's log), so giving up must not claim it certainly failed.
    Retry { why: String, maybe_applied: bool },
}

impl<T> Step<T> {
    fn retry(why: impl Into<String>) -> Self {
        Step::Retry {
            why: why.into(),
            maybe_applied: false,
        }
    }

    /// The same step, marked as one that may have taken effect.
    fn maybe_applied(self) -> Self {
        match self {
            Step::Retry { why, .. } => Step::Retry {
                why,
                maybe_applied: true,
            },
            done => done,
        }
    }

    /// A leader that refused because it does not lead (any more).
    fn not_leader(leader: Option<u64>, me: u64) -> Self {
        match leader {
            Some(l) if l != me => Step::retry(format!("leadership moved to node {l}")),
            _ => Step::retry("no leader is known (election in progress or no quorum)"),
        }
    }
}

/// One verb that only the leader can serve.
trait LeaderVerb: Sync {
    type Answer: Send;
    /// How the deadline message starts: "{UNFINISHED} within 5s; last: …".
    const UNFINISHED: &'static str;
    /// Serves the verb on this node, which believes it leads, within `remaining`.
    fn here(
        &self,
        g: &Gateway,
        remaining: Duration,
    ) -> impl Future<Output = Step<Self::Answer>> + Send;
    /// The frame that asks the leader.
    fn frame(&self) -> frame::Request;
    /// What the leader's reply means.
    fn reply(&self, reply: Reply, me: u64) -> Step<Self::Answer>;
    /// The error for a request given up on.
    fn give_up(&self, maybe_applied: bool, why: String) -> Error;
}

/// `outcome unknown` if an attempt may have reached a leader's log (it may still commit),
/// `unavailable` if certainly nothing was appended.
fn given_up(maybe_applied: bool, why: String) -> Error {
    if maybe_applied {
        Error::Unknown(why)
    } else {
        Error::Unavailable(why)
    }
}

fn unexpected<T>(reply: Reply) -> Step<T> {
    Step::retry(format!("unexpected reply {reply:?}"))
}

/// A client write.
struct Write(Request);

impl Write {
    fn step(outcome: WriteOutcome, me: u64) -> Step<kv::Response> {
        match outcome {
            WriteOutcome::Applied { response, .. } => Step::Done(Ok(response)),
            WriteOutcome::NotLeader { leader } => Step::not_leader(leader, me),
            WriteOutcome::NoQuorum(why) => Step::retry(why),
            // Certainly not appended, and no other node could take it: answer at once.
            WriteOutcome::DiskFull(why) => Step::Done(Err(Error::Unavailable(why))),
            // Retrying is safe (same request id); it may learn the outcome.
            WriteOutcome::Unknown(why) => Step::Retry {
                why,
                maybe_applied: true,
            },
        }
    }
}

impl LeaderVerb for Write {
    type Answer = kv::Response;
    const UNFINISHED: &'static str = "no quorum committed the write";

    async fn here(&self, g: &Gateway, remaining: Duration) -> Step<kv::Response> {
        match g
            .within(remaining, g.proposer.propose(self.0.clone()))
            .await
        {
            Some(outcome) => Write::step(outcome, g.id),
            // Proposed and not answered in time: it may still commit.
            None => Step::Retry {
                why: "the leader did not commit it in time".into(),
                maybe_applied: true,
            },
        }
    }
    fn frame(&self) -> frame::Request {
        frame::Request::Write(self.0.clone())
    }
    fn reply(&self, reply: Reply, me: u64) -> Step<kv::Response> {
        match reply {
            Reply::Write(outcome) => Write::step(outcome, me),
            other => Step::Retry {
                why: format!("unexpected reply {other:?}"),
                maybe_applied: true,
            },
        }
    }
    fn give_up(&self, maybe_applied: bool, why: String) -> Error {
        given_up(maybe_applied, why)
    }
}

/// A membership change. Every change is idempotent (`raft::members`), so any failed attempt may be
/// retried; one that reached the leader may have been applied.
struct Member(MemberChange);

impl Member {
    /// An outcome from a node asked to make the change: whatever it says short of done, the
    /// change may have been proposed there.
    fn step(outcome: MemberOutcome, me: u64) -> Step<u64> {
        match outcome {
            MemberOutcome::Done { id } => Step::Done(Ok(id)),
            MemberOutcome::Refused(why) => Step::Done(Err(Error::Refused(why))),
            MemberOutcome::NotLeader { leader } => Step::not_leader(leader, me).maybe_applied(),
            MemberOutcome::Busy(why) => Step::retry(why).maybe_applied(),
        }
    }
}

impl LeaderVerb for Member {
    type Answer = u64;
    const UNFINISHED: &'static str = "the membership change did not complete";

    async fn here(&self, g: &Gateway, remaining: Duration) -> Step<u64> {
        let change = members::change(&g.raft, self.0.clone());
        let outcome = g
            .within(remaining, change)
            .await
            .unwrap_or_else(|| MemberOutcome::Busy("the change timed out".into()));
        Member::step(outcome, g.id)
    }
    fn frame(&self) -> frame::Request {
        frame::Request::Member(self.0.clone())
    }
    fn reply(&self, reply: Reply, me: u64) -> Step<u64> {
        match reply {
            Reply::Member(outcome) => Member::step(outcome, me),
            other => unexpected(other),
        }
    }
    fn give_up(&self, maybe_applied: bool, why: String) -> Error {
        if maybe_applied {
            Error::Unknown(format!(
                "{why} (retrying is safe: membership changes are idempotent)"
            ))
        } else {
            Error::Unavailable(why)
        }
    }
}

/// A read index: the leader confirms with a quorum that it still leads. A read changes nothing, so
/// giving up is always "unavailable".
struct ReadIndex;

impl ReadIndex {
    fn step(outcome: ReadOutcome, me: u64) -> Step<u64> {
        match outcome {
            ReadOutcome::Ready { index } => Step::Done(Ok(index)),
            ReadOutcome::NotLeader { leader } => Step::not_leader(leader, me),
            ReadOutcome::NoQuorum(why) | ReadOutcome::Failed(why) => Step::retry(why),
        }
    }
}

impl LeaderVerb for ReadIndex {
    type Answer = u64;
    const UNFINISHED: &'static str = "could not confirm a leader with a quorum";

    async fn here(&self, g: &Gateway, remaining: Duration) -> Step<u64> {
        let outcome = g
            .within(remaining, leader::read_index(&g.raft))
            .await
            .unwrap_or_else(|| ReadOutcome::NoQuorum("leadership check timed out".into()));
        ReadIndex::step(outcome, g.id)
    }
    fn frame(&self) -> frame::Request {
        frame::Request::ReadIndex
    }
    fn reply(&self, reply: Reply, me: u64) -> Step<u64> {
        match reply {
            Reply::ReadIndex(outcome) => ReadIndex::step(outcome, me),
            other => unexpected(other),
        }
    }
    fn give_up(&self, _maybe_applied: bool, why: String) -> Error {
        Error::Unavailable(why)
    }
}

/// In a lab, how long a forwarded call may wait in real time: longer than any pause.
const LAB_TRANSPORT_BOUND: Duration = Duration::from_secs(24 * 3600);

/// Waits between attempts while there is no usable leader, doubling up to a few heartbeats.
/// Real time: on a frozen lab clock the attempts go on (each held by the pause like any message).
struct Backoff(Duration);

impl Backoff {
    async fn wait(&mut self, g: &Gateway, deadline: Instant) {
        tokio::select! {
            () = tokio::time::sleep(self.0) => {}
            () = g.sleep_until(deadline) => {}
        }
        self.0 = (self.0 * 2).min(Duration::from_millis(200));
    }
}

impl Gateway {
    /// The time on this node's clock.
    fn now(&self) -> Instant {
        crate::clock::now_on(self.clock.as_deref())
    }

    async fn sleep_until(&self, deadline: Instant) {
        crate::clock::sleep_until_on(self.clock.clone(), deadline).await
    }

    /// `future`'s output, or None if `limit` passes first on this node's clock.
    async fn within<F: Future>(&self, limit: Duration, future: F) -> Option<F::Output> {
        let deadline = self.now() + limit;
        tokio::select! {
            out = future => Some(out),
            () = self.sleep_until(deadline) => None,
        }
    }

    /// The transport's own (real-time) bound on a forwarded call that may take `ttl` on this
    /// node's clock: `ttl` itself on real time. In a lab the call is bounded by the lab's clock instead (`within`): a
    /// learner may take as long as they like to step a forwarded write through the leader, and a
    /// real-time bound there made the follower resend it after 5 s of stepping (a second Forward
    /// in the held list, the first one's reply abandoned).
    fn transport_bound(&self, ttl: Duration) -> Duration {
        match &self.clock {
            Some(_) => LAB_TRANSPORT_BOUND,
            None => ttl,
        }
    }

    /// Replicates `command`; returns once a quorum committed it and the leader applied it.
    pub async fn write(&self, command: kv::Command) -> Result<kv::Response> {
        let request = Request {
            id: RequestId::random(),
            command,
        };
        let deadline = self.now() + self.timeout;
        self.at_leader(&Write(request), deadline).await
    }

    /// The error every request gets once this node knows it was removed from the cluster.
    pub fn removed(&self) -> Option<Error> {
        self.removal.known().map(|why| {
            Error::Unavailable(format!(
                "n{} was removed from the cluster ({why}); it serves no requests: use a member",
                self.id
            ))
        })
    }

    /// Makes a membership change through the leader; returns the id of the node it concerns.
    pub async fn change_members(&self, change: MemberChange) -> Result<u64> {
        let deadline = self.now() + self.timeout;
        self.at_leader(&Member(change), deadline).await
    }

    /// Waits until reading this node's state is linearizable: the leader confirmed with a quorum,
    /// after this call began, that it still leads, and this node applied up to its commit index.
    /// Returns the index the read reflects at least.
    pub async fn linearize(&self) -> Result<u64> {
        let deadline = self.now() + self.timeout;
        let index = self.at_leader(&ReadIndex, deadline).await?;
        let remaining = deadline.saturating_duration_since(self.now());
        // No timeout of openraft's (it would run on real time): `within` bounds the wait.
        let applied = self.raft.wait(None);
        let applied = applied.applied_index_at_least(Some(index), "linearizable read");
        // openraft's error carries its whole metrics struct: keep ours to one line.
        let why = match self.within(remaining, applied).await {
            Some(Ok(_)) => return Ok(index),
            Some(Err(openraft::metrics::WaitError::ShuttingDown)) => "it is shutting down",
            Some(Err(openraft::metrics::WaitError::Timeout(..))) | None => "timed out",
        };
        Err(Error::Unavailable(format!(
            "this node did not apply index {index} in time for a linearizable read ({why})"
        )))
    }

    /// The one leader-or-forward loop: each attempt goes to this node's Raft if it believes it
    /// leads, to the leader it knows of otherwise, and waits for news of a leader when it knows
    /// none. Gives up at `deadline`, or at once if this node's Raft stopped.
    async fn at_leader<V: LeaderVerb>(&self, verb: &V, deadline: Instant) -> Result<V::Answer> {
        if let Some(removed) = self.removed() {
            return Err(removed);
        }
        let mut backoff = Backoff(Duration::from_millis(10));
        // Once an attempt may have taken effect somewhere, failing with "unavailable" would be a
        // lie: a write might still commit. The verb then reports "outcome unknown" instead.
        let mut maybe_applied = false;
        let mut last_reason = String::from("no leader is known");
        while self.now() < deadline {
            let remaining = deadline - self.now();
            let asked = self.raft.current_leader().await;
            let step = match asked {
                Some(leader) if leader == self.id => verb.here(self, remaining).await,
                Some(leader) => {
                    let frame = verb.frame();
                    let call = self
                        .peers
                        .call(leader, &frame, self.transport_bound(remaining));
                    match self.within(remaining, call).await {
                        Some(Ok(reply)) => verb.reply(reply, self.id),
                        Some(Err(e)) => Step::Retry {
                            why: format!("leader {leader} unreachable: {e}"),
                            // Unless we never got through, the request may have reached the
                            // leader before the connection broke.
                            maybe_applied: !crate::net::never_delivered(&e),
                        },
                        None => Step::Retry {
                            why: format!("leader {leader} did not answer in time"),
                            maybe_applied: true,
                        },
                    }
                }
                None => Step::not_leader(None, self.id),
            };
            match step {
                Step::Done(answer) => return answer,
                Step::Retry {
                    why,
                    maybe_applied: m,
                } => {
                    last_reason = why;
                    maybe_applied |= m;
                }
            }
            if let Some(why) = self.stopped(&last_reason) {
                return Err(verb.give_up(maybe_applied, why));
            }
            self.pause(&mut backoff, deadline, asked).await;
        }
        let why = format!(
            "{} within {:?}; last: {last_reason}",
            V::UNFINISHED,
            self.timeout
        );
        Err(verb.give_up(maybe_applied, why))
    }

    /// If this node's Raft has stopped (the node was killed or is shutting down), the reason to
    /// give up now: every further attempt would meet the stopped Raft again, once per backoff
    /// until the deadline. RaftCore publishes `running_state: Err` as it stops and drops the
    /// metrics sender when its task ends (a panic included); either one says so.
    fn stopped(&self, last_reason: &str) -> Option<String> {
        let mut metrics = self.raft.metrics();
        let stopped = loop {
            if metrics.borrow_watched().running_state.is_err() {
                break true;
            }
            match metrics.changed().now_or_never() {
                // Newer metrics than the ones just looked at: look again.
                Some(Ok(())) => continue,
                Some(Err(_)) => break true,
                None => break false,
            }
        };
        stopped.then(|| format!("node {} stopped (last attempt: {last_reason})", self.id))
    }

    /// Waits before the next attempt: for the backoff, or less if this node learns of a leader
    /// other than `asked` (the one the failed attempt went to) meanwhile. After a leader dies,
    /// the retry then goes out as soon as the new leader's first heartbeat arrives instead of
    /// sitting out the rest of a backoff (up to 200 ms of a failover otherwise).
    async fn pause(&self, backoff: &mut Backoff, deadline: Instant, asked: Option<u64>) {
        let mut metrics = self.raft.metrics();
        let news = async {
            loop {
                let known = metrics.borrow_watched().current_leader;
                if known.is_some() && known != asked {
                    return;
                }
                if metrics.changed().await.is_err() {
                    // Raft stopped: no news will come; the backoff decides.
                    std::future::pending::<()>().await;
                }
            }
        };
        tokio::select! {
            () = backoff.wait(self, deadline) => {}
            () = news => {}
        }
    }
}
