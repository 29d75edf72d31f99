//! The lab's one owner of the cluster: a task that applies [`LabCommand`]s, feeds transport events
//! and node statuses to the lab's memory (`fold`, a pure function of what it is fed), builds a
//! [`LabState`] from that memory and the cluster, and publishes it on a watch channel. The
//! dashboard and the control API only send commands and read that state; neither touches a node.

use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::command::LabCommand;
use super::fold::{Input, Memory, Scene};
use super::message::held_line;
use super::recorder::Recorder;
use super::safety::Outcome;
use super::state::LabState;
use crate::cluster::Cluster;
use crate::observe::{Event, Leg};
use crate::raft::status::Role;

/// How often statuses are refreshed and the state republished.
const REFRESH: Duration = Duration::from_millis(100);

/// While paused, a step is done when nothing has changed for this long…
const SETTLE_QUIET: Duration = Duration::from_millis(150);
/// …or after this long at most.
const SETTLE_BOUND: Duration = Duration::from_secs(5);

type Reply = oneshot::Sender<Result<String, String>>;

/// A handle to the engine: send commands, watch the state.
#[derive(Clone)]
pub struct Lab {
    commands: mpsc::Sender<(LabCommand, Reply)>,
    pub state: watch::Receiver<LabState>,
}

impl Lab {
    /// Applies a command; returns what happened in words, or why it could not be done.
    pub async fn run(&self, command: LabCommand) -> Result<String, String> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send((command, tx))
            .await
            .map_err(|_| "the lab stopped".to_string())?;
        rx.await.map_err(|_| "the lab stopped".to_string())?
    }

    pub fn state(&self) -> LabState {
        self.state.borrow().clone()
    }
}

/// Starts the engine over `cluster`; it runs until every [`Lab`] handle is dropped, then shuts the
/// cluster down. The first state is published before this returns.
pub async fn spawn(cluster: Cluster) -> (Lab, tokio::task::JoinHandle<()>) {
    spawn_recording(cluster, None).await
}

/// [`spawn`], with everything the engine learns also handed to a flight recorder.
pub async fn spawn_recording(
    cluster: Cluster,
    recorder: Option<Recorder>,
) -> (Lab, tokio::task::JoinHandle<()>) {
    let (commands, command_rx) = mpsc::channel(64);
    let (done_tx, done_rx) = mpsc::channel(64);
    let events = cluster.events();
    let mut engine = Engine {
        events,
        cluster,
        started: Instant::now(),
        memory: Memory::default(),
        requests: 0,
        done_tx,
        recorder,
    };
    let (state_tx, state) = watch::channel(engine.snapshot().await);
    let task = tokio::spawn(engine.run(command_rx, done_rx, state_tx));
    (Lab { commands, state }, task)
}

struct Engine {
    cluster: Cluster,
    /// What the transport saw, folded into the memory.
    events: broadcast::Receiver<Event>,
    started: Instant,
    /// Everything the lab learned (timeline, message rates), folded from what happened.
    memory: Memory,
    requests: u64,
    /// Client requests report their outcome here when they finish.
    done_tx: mpsc::Sender<Input>,
    /// The flight recorder, if this lab records a trace.
    recorder: Option<Recorder>,
}

impl Engine {
    async fn run(
        mut self,
        mut commands: mpsc::Receiver<(LabCommand, Reply)>,
        mut done: mpsc::Receiver<Input>,
        state: watch::Sender<LabState>,
    ) {
        let mut refresh = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some((LabCommand::Request { via, key, value }, reply)) => self.request(via, key, value, reply),
                    Some((command, reply)) => {
                        let outcome = self.apply(command).await;
                        // Publish before answering, so whoever sent the command sees its effect.
                        state.send_replace(self.snapshot().await);
                        let _ = reply.send(outcome);
                    }
                    None => break,
                },
                Some(response) = done.recv() => self.fold(response),
                event = self.events.recv() => self.take(event),
                _ = refresh.tick() => {
                    let next = self.snapshot().await;
                    state.send_replace(next);
                }
            }
        }
        self.cluster.shutdown().await;
    }

    /// Folds one event from the transport (or notes how many a slow engine lost).
    fn take(&mut self, event: Result<Event, broadcast::error::RecvError>) {
        match event {
            Ok(event) => self.fold(Input::Message(event)),
            Err(broadcast::error::RecvError::Lagged(n)) => {
                self.note(format!("(dashboard fell behind: {n} messages not counted)"))
            }
            Err(broadcast::error::RecvError::Closed) => {}
        }
    }

    /// Milliseconds since the lab started: the time of everything the memory and the trace hold.
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Feeds the memory one input, stamped with the time since the lab started.
    fn fold(&mut self, input: Input) {
        self.fold_at(self.now_ms(), input);
    }

    fn fold_at(&mut self, at_ms: u64, input: Input) {
        if let Some(recorder) = &mut self.recorder {
            recorder.input(at_ms, &input);
        }
        self.memory.fold(at_ms, input);
        if let Some(violation) = self.memory.fresh_violation() {
            // Stop the world where it broke, so the learner can look at the evidence.
            self.cluster.pause();
            self.fold_at(
                at_ms,
                Input::Note(format!(
                    "SAFETY VIOLATION — {violation}. The lab paused the cluster here."
                )),
            );
        }
    }

    fn note(&mut self, text: String) {
        self.fold(Input::Note(text));
    }

    fn record(&mut self, command: &LabCommand) {
        let now = self.now_ms();
        if let Some(recorder) = &mut self.recorder {
            recorder.command(now, command);
        }
    }

    async fn apply(&mut self, command: LabCommand) -> Result<String, String> {
        self.record(&command);
        let c = &mut self.cluster;
        let outcome = match command.clone() {
            LabCommand::Kill { id } if id >= c.len() => Err(format!("no node {id}")),
            LabCommand::Kill { id } if c.is_retired(id) => Err(format!(
                "n{id} was removed from the cluster: there is nothing to kill"
            )),
            LabCommand::Kill { id } if !c.is_up(id) => {
                Err(format!("n{id} is already down (restart it first)"))
            }
            LabCommand::Kill { id } => {
                c.kill(id).await;
                Ok(format!("killed n{id}"))
            }
            LabCommand::Restart { id } => c
                .restart(id)
                .await
                .map(|_| format!("restarted n{id} from its data"))
                .map_err(|e| e.to_string()),
            LabCommand::TimeOut { id } => {
                // With pre-vote, openraft does not campaign while the node still hears a leader
                // (its leader lease): the timer fires and nothing is sent. Say so, and why.
                let before = c.statuses().await.get(id).cloned().flatten();
                let outcome = if before.as_ref().is_some_and(|s| s.role == Role::Leader) {
                    Err(format!(
                        "n{id} is the leader: a leader has no election timer (it sends heartbeats)"
                    ))
                } else {
                    c.time_out(id).await.map_err(|e| e.to_string())
                };
                outcome.map(|moved| match before {
                    _ if !moved.is_zero() => format!(
                        "n{id} timed out: it {} (the lab's clock moved on {} ms, to when its \
                         election timer fires)",
                        if c.timing().pre_vote {
                            "first asks for pre-votes"
                        } else {
                            "starts an election"
                        },
                        moved.as_millis()
                    ),
                    Some(s)
                        if c.timing().pre_vote
                            && s.role == Role::Follower
                            && s.heard_from_leader
                            && !c.is_paused() =>
                    {
                        let leader = s.leader_id.map_or("a leader".into(), |l| format!("n{l}"));
                        let ago = s.leader_contact_ms.unwrap_or(0);
                        format!(
                            "n{id} timed out but does not campaign: with pre-vote it first needs \
                             its leader lease to run out, and it heard from {leader} {ago} ms ago \
                             (cut it off from the leader first, or turn pre-vote off)"
                        )
                    }
                    _ => format!("n{id} timed out: it starts an election"),
                })
            }
            LabCommand::Transfer { id } => c
                .transfer(id)
                .await
                .map(|_| format!("leadership transfer to n{id} asked"))
                .map_err(|e| e.to_string()),
            LabCommand::Isolate { id } => {
                let others: Vec<u64> = (0..c.len() as u64).filter(|i| *i != id as u64).collect();
                c.partition(&[vec![id as u64], others])
                    .map(|_| format!("isolated n{id}"))
                    .map_err(|e| e.to_string())
            }
            LabCommand::Partition { groups } => c
                .partition(&groups)
                .map(|_| format!("partitioned {}", super::command::groups_text(&groups)))
                .map_err(|e| e.to_string()),
            LabCommand::Cut { from, to } => c
                .cut(from, to)
                .map(|_| format!("cut n{from} → n{to} (one way)"))
                .map_err(|e| e.to_string()),
            LabCommand::Heal => {
                c.heal().await;
                Ok("healed the network".into())
            }
            LabCommand::Pause => {
                c.pause();
                Ok(
                    "paused: the clock stops and every message is held until stepped or resumed"
                        .into(),
                )
            }
            LabCommand::Resume => {
                c.resume().await;
                Ok("resumed".into())
            }
            LabCommand::Request { .. } => {
                unreachable!("client requests are handled by Engine::request")
            }
            LabCommand::AddNode => {
                // The lab's ports are contiguous: node i listens on node 0's ports + i.
                let (raft, http) = (c.config(0).raft_addr, c.config(0).http_addr);
                let offset = c.len() as u16;
                let at = |a: std::net::SocketAddr| {
                    std::net::SocketAddr::new(a.ip(), a.port().saturating_add(offset))
                };
                c.add(at(raft), at(http))
                    .await
                    .map(|id| format!("added n{id} as a learner: it catches up from the leader"))
                    .map_err(|e| e.to_string())
            }
            LabCommand::Promote { id } => c
                .promote(id)
                .await
                .map(|_| format!("n{id} is a voter now"))
                .map_err(|e| e.to_string()),
            LabCommand::Remove { id } => c
                .remove(id)
                .await
                .map(|_| format!("removed n{id} from the cluster and stopped it"))
                .map_err(|e| e.to_string()),
            LabCommand::SetPreVote { enabled: on } => {
                c.set_pre_vote(on);
                Ok(format!("pre-vote {}", if on { "on" } else { "off" }))
            }
            LabCommand::Speed { factor } => c
                .set_slowdown(f64::from(factor))
                .map(|_| match factor {
                    1 => "speed ×1: real time".to_string(),
                    f => format!("speed: {f}× slower than real time (timers, leases, deadlines)"),
                })
                .map_err(|e| e.to_string()),
            LabCommand::Deliver { message } => Self::release(c, message, true),
            LabCommand::Drop { message } => Self::release(c, message, false),
            LabCommand::Step => match c.oldest_held() {
                Some(message) => Self::release(c, message, true),
                None if c.is_paused() => Err("nothing is held: no message is in flight".into()),
                None => Err("nothing is held: messages are held only while paused".into()),
            },
        };
        self.note(match &outcome {
            Ok(text) => text.clone(),
            Err(e) => format!("{command} refused: {e}"),
        });
        // While paused, the cluster reacts only to what the learner does: let it finish
        // reacting (replies held, entries written) before answering, so the next step starts
        // from a settled state.
        if outcome.is_ok() && self.cluster.is_paused() {
            self.cluster.settle(SETTLE_QUIET, SETTLE_BOUND).await;
            // What happened while settling is in the state this command publishes.
            loop {
                match self.events.try_recv() {
                    Ok(event) => self.take(Ok(event)),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => {
                        self.take(Err(broadcast::error::RecvError::Lagged(n)))
                    }
                    Err(_) => break,
                }
            }
        }
        outcome
    }

    /// Delivers or drops held message `id`, in words.
    fn release(c: &Cluster, id: u64, deliver: bool) -> Result<String, String> {
        let held = c.release(id, deliver).map_err(|e| e.to_string())?;
        let verb = if deliver { "delivered" } else { "dropped" };
        Ok(format!("{verb} {}", held_line(&held)))
    }

    /// Sends a client request through node `via` without blocking the engine: a task waits for the
    /// outcome, notes it in the timeline and answers the caller.
    fn request(&mut self, via: Option<usize>, key: String, value: String, reply: Reply) {
        self.record(&LabCommand::Request {
            via,
            key: key.clone(),
            value: value.clone(),
        });
        let Some(via) = via.or_else(|| (0..self.cluster.len()).find(|i| self.cluster.is_up(*i)))
        else {
            let _ = reply.send(Err("no node is up".into()));
            return;
        };
        let what = format!("client→n{via}: APPEND {key} {value}");
        let client = match self.cluster.client(via) {
            Ok(client) => client,
            Err(e) => {
                self.note(format!("{what} refused: {e}"));
                let _ = reply.send(Err(e.to_string()));
                return;
            }
        };
        self.requests += 1;
        let id = self.requests;
        self.fold(Input::Request {
            id,
            via,
            key: key.clone(),
            value: value.clone(),
        });
        let done = self.done_tx.clone();
        tokio::spawn(async move {
            let outcome = match client
                .write(crate::kv::Command::Append { key, value })
                .await
            {
                Ok(r) => Ok((format!("{what}: committed (len {})", r.len), r.len)),
                Err(e) => Err(format!("{what}: FAILED {e}")),
            };
            let response = match &outcome {
                Ok((text, len)) => Input::Response {
                    id,
                    outcome: Outcome::Ok { len: *len },
                    text: text.clone(),
                },
                Err(text) => Input::Response {
                    id,
                    outcome: Outcome::Unknown {
                        error: text.clone(),
                    },
                    text: text.clone(),
                },
            };
            let _ = done.send(response).await;
            let _ = reply.send(outcome.map(|(text, _)| text));
        });
    }

    async fn snapshot(&mut self) -> LabState {
        for gave_up in self.cluster.abandoned() {
            // The node waiting on a request is its sender; on a reply, the one it answers.
            let waiting = match gave_up.leg {
                Leg::Request => gave_up.from,
                Leg::Reply => gave_up.to,
            };
            self.note(format!(
                "n{waiting} stopped waiting for held {} (a deadline passed, or it stopped \
                 replicating: no longer leader)",
                held_line(&gave_up)
            ));
        }
        let statuses = self.cluster.statuses().await;
        let now = self.now_ms();
        let c = &self.cluster;
        let faults = c.faults();
        let scene = Scene {
            up: (0..c.len()).map(|id| c.is_up(id)).collect(),
            removed: (0..c.len()).map(|id| c.is_retired(id)).collect(),
            cut: faults.cut,
            paused: faults.paused,
            held: faults.held,
            slowdown: c.clock().slowdown().round() as u32,
            timing: c.timing(),
            requests: self.requests,
        };
        let kv = Memory::kv_source(&statuses)
            .map(|id| c.contents(id))
            .unwrap_or_default();
        // The keyframe, scene and contents go into the trace before the statuses: a replay that
        // stops at a `statuses` record then shows exactly the state published here.
        if let Some(recorder) = &mut self.recorder {
            recorder.frame(now, &self.memory, &scene, &kv);
            if let Some(why) = recorder.failure() {
                self.memory
                    .fold(now, Input::Note(format!("(the recorder stopped: {why})")));
            }
        }
        self.fold_at(now, Input::Statuses(statuses));
        self.memory.compose(&scene, kv, now)
    }
}
