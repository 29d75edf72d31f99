//! One replicated node: the composition root. [`Node::start`] wires storage → Raft → transport →
//! HTTP, in that order, and is the only place that creates an openraft `Raft`. Per-process mode
//! (`raftkv node …`) starts one; the lab and the tests start several in one process.

mod compact;
pub mod identity;
mod join;
mod watch;
mod watermark;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use openraft::BasicNode;
use openraft::async_runtime::WatchReceiver;
use openraft::error::{InitializeError, RaftError};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::config::{Members, NodeConfig, Start};
use crate::error::{Error, Result};
use crate::metrics::Metrics;
use crate::net::client::{AddressBook, Identity as NetIdentity, NetworkFactory, Peers};
use crate::net::snapshot::Inbox;
use crate::net::{NetEnv, server};
use crate::raft::ballot::Ballot;
use crate::raft::batch::Proposer;
use crate::raft::removal::{self, Removal};
use crate::raft::status::Status;
use crate::raft::typ::{LogStore, Raft};
use crate::raft::{self as raftmod, StateMachine};
use crate::store::SnapshotFile;
use crate::store::space::Space;

pub const CLUSTER_NAME: &str = "raftkv";

/// A running node.
pub struct Node {
    pub id: u64,
    raft: Raft,
    app: Arc<AppState>,
    http_addr: SocketAddr,
    /// The Raft server (aborted on shutdown, which drops its peer connections), the change
    /// logger, and the HTTP server (last).
    tasks: Vec<JoinHandle<()>>,
    http_stop: tokio::sync::oneshot::Sender<()>,
}

impl Node {
    /// Starts a node. `env` is shared by all nodes of one process (the lab's faults and events);
    /// a node of its own process passes `NetEnv::default()`.
    pub async fn start(config: NodeConfig, env: NetEnv) -> Result<Node> {
        // A certificate that cannot be used fails the start before anything runs.
        let tls = match &config.tls {
            Some(files) => Some(
                api::tls::server_config(&files.cert, &files.key)
                    .map_err(|e| Error::Config(format!("HTTPS: {e}")))?,
            ),
            None => None,
        };
        std::fs::create_dir_all(&config.data_dir)?;
        let log = open_log(&config).await?;
        // Bind before starting Raft so a taken port fails the start instead of a half-live node
        // (and before asking to join, so the leader finds us listening).
        let raft_listener = bind(config.raft_addr, "Raft").await?;
        let http_listener = bind(config.http_addr, "HTTP").await?;
        let http_addr = http_listener.local_addr()?;

        let pristine = log.is_pristine().await;
        let expected = match &config.start {
            Start::Founding { id, members } => identity::Identity {
                cluster: CLUSTER_NAME.into(),
                id: *id,
                members: members.values().map(|a| a.to_string()).collect(),
                joined: false,
            },
            Start::Join { via, ca } => {
                join::identity(via, ca.as_deref(), &config, pristine).await?
            }
        };
        let identity = identity::check_or_create(&config.data_dir, &expected, pristine)?;
        let id = identity.id;
        if !identity.joined {
            if pristine {
                // Marked just before the first vote or entry reaches disk, not after start-up:
                // a node killed mid-start with a vote on disk must count as joined.
                let dir = config.data_dir.clone();
                log.before_first_write(Box::new(move || {
                    identity::record_joined(&dir, &identity).map_err(std::io::Error::other)
                }));
            } else {
                identity::record_joined(&config.data_dir, &identity)?;
            }
        }

        let metrics = Arc::new(Metrics::new());
        let snapshot = SnapshotFile::new(&config.data_dir.join("snapshot"))?;
        // Before Raft starts: a node that lost fsynced entries must not vote or count commits.
        watermark::check(&config.data_dir, &log, &snapshot).await?;
        let inbox = Arc::new(Inbox::new(snapshot.incoming_path()));
        let snapshot_size = snapshot.clone();
        let sm = StateMachine::new(snapshot, metrics.clone());
        let kv = sm.reader();
        let removal = Arc::new(Removal::default());
        let ballot = Arc::new(Ballot::open(config.data_dir.clone()));
        let space = Arc::new(Space::new(config.data_dir.clone(), config.disk_reserve));
        let me = NetIdentity {
            cluster: CLUSTER_NAME.into(),
            id,
            env,
            secret: config.secret.clone(),
            metrics: metrics.clone(),
            failures: Default::default(),
            removal: removal.clone(),
            ballot: ballot.clone(),
            space: space.clone(),
            transfer: config.transfer,
            inbox,
        };
        let clock = me.env.clock.clone();
        let network = NetworkFactory { me: me.clone() };
        let raft_config = raftmod::openraft_config(&config.timing, config.snapshot_every)?;
        let raft = Raft::new(id, raft_config, network, log.clone(), sm);
        // In a lab, every task openraft spawns from here runs on the lab's clock.
        let raft = match &clock {
            Some(clock) => clock.scope(raft).await,
            None => raft.await,
        }
        .map_err(|e| Error::Stopped(format!("Raft failed to start: {e}")))?;

        let proposer = Proposer::start(raft.clone(), metrics.clone(), space.clone());
        let mut tasks = vec![tokio::spawn(server::serve(
            raft_listener,
            me.clone(),
            raft.clone(),
            proposer.clone(),
        ))];
        tasks.push(tokio::spawn(watch::log_changes(
            raft.clone(),
            id,
            metrics.clone(),
        )));
        tasks.push(tokio::spawn(removal::watch(
            raft.clone(),
            id,
            removal.clone(),
        )));
        tasks.push(tokio::spawn(space.watch()));
        tasks.push(tokio::spawn(watermark::keep(
            raft.clone(),
            log.clone(),
            config.data_dir.clone(),
        )));
        let policy = compact::Policy {
            every: config.snapshot_every,
            log_limit: config.log_bytes_limit,
            spread: 0,
        };
        tasks.push(tokio::spawn(compact::run(
            raft.clone(),
            log.clone(),
            snapshot_size,
            policy.spread(id),
        )));
        let members = raft.clone();
        let addresses: AddressBook = Arc::new(move |peer| {
            let m = members.metrics().borrow_watched().membership_config.clone();
            let node = m.membership().get_node(&peer)?;
            crate::config::resolve(&node.addr).ok()
        });
        let app = Arc::new(AppState {
            gateway: api::Gateway {
                raft: raft.clone(),
                proposer,
                peers: Peers::new(me, addresses),
                id,
                timeout: config.request_timeout,
                removal,
                clock: clock.clone(),
            },
            kv,
            http_addr: http_addr.to_string(),
            raft_addr: config.raft_addr.to_string(),
            pre_vote: config.timing.pre_vote,
            lease_ms: config.timing.election_max_ms,
            started: Instant::now(),
            metrics,
            log,
            clock,
            admin_token: config.admin_token.clone(),
            ballot,
        });
        let http = api::router(app.clone(), config.max_in_flight);
        let (http_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        // Graceful on the HTTP side only: on shutdown, stop accepting and close idle keep-alive
        // connections; requests in flight fail fast because Raft is stopped under them.
        tasks.push(tokio::spawn(async move {
            // The peer's address decides who may change the membership without a token.
            let http = http.into_make_service_with_connect_info::<SocketAddr>();
            let stopped = async {
                let _ = stopped.await;
            };
            let served = match tls {
                None => {
                    let serving = axum::serve(http_listener, http);
                    serving.with_graceful_shutdown(stopped).await
                }
                Some(tls) => match api::tls::TlsListener::new(http_listener, tls) {
                    // (`tap_io` gives axum a listener whose peer address it knows how to read.)
                    Ok(listener) => {
                        let serving = axum::serve(listener.tap_io(|_| {}), http);
                        serving.with_graceful_shutdown(stopped).await
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = served {
                tracing::error!("HTTP server stopped: {e}");
            }
        }));

        let node = Node {
            id,
            raft,
            app,
            http_addr,
            tasks,
            http_stop,
        };
        if let Start::Founding { members, .. } = &config.start
            && let Err(e) = initialize_once(&node.raft, members).await
        {
            // A failed start must not leave its servers holding the ports and the log's lock.
            node.shutdown().await;
            return Err(e);
        }
        Ok(node)
    }

    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub async fn status(&self) -> Status {
        self.app.status().await
    }

    /// A client of this node: replicates commands through it (forwarded to the leader if needed).
    /// Independent of the `Node` value, so a caller can wait on a write without holding the node.
    pub fn client(&self) -> api::Gateway {
        self.app.gateway.clone()
    }

    /// Votes and log entries this node has written and not yet fsynced
    /// ([`crate::store::LogStore::writes_in_flight`]), and grants of its vote being recorded
    /// ([`Ballot::saves_in_flight`]): each holds back a reaction nothing outside can see yet.
    pub fn writes_in_flight(&self) -> u64 {
        self.app.log.writes_in_flight() + self.app.ballot.saves_in_flight()
    }

    /// This node's applied key/value contents (possibly stale).
    pub fn local_entries(&self) -> Vec<(String, Vec<String>)> {
        self.app
            .kv
            .read()
            .entries()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Turns the node's timers (election timeout, leader heartbeats) on or off. Off, the node still
    /// answers RPCs: combined with held messages it is a frozen node.
    pub fn set_timers(&self, enabled: bool) {
        self.raft.runtime_config().tick(enabled);
    }

    /// Starts an election now, as if the election timer had fired ("time out" in raft.github.io).
    pub async fn time_out(&self, pre_vote: bool) -> Result<()> {
        self.raft
            .trigger()
            .elect(pre_vote)
            .await
            .map_err(|e| Error::Stopped(e.to_string()))
    }

    /// How far the lab's clock must move for this node's election timer to fire: its leader
    /// lease (`lease` after it last heard from a leader it follows) run out, then `timeout`, the
    /// shortest of its random election timeouts. Zero if the node runs on real time; only the
    /// millisecond that makes time pass if it never followed a leader (no lease). With pre-vote,
    /// openraft refuses to campaign inside the lease, and so do voters asked for their vote:
    /// those that heard from the same leader a heartbeat later than this node hold theirs a
    /// heartbeat longer, and a clock moved only to the end of this node's lease found them inside
    /// theirs (they refused its pre-votes: golden back-up, 1 run in 3 on a slow disk).
    pub async fn timer_left(&self, lease: Duration, timeout: Duration) -> Duration {
        let Some(clock) = &self.app.clock else {
            return Duration::ZERO;
        };
        let vote = self.raft.metrics().borrow_watched().vote;
        // Before the first election the vote is the founding one (term 0), which holds no lease.
        let lease = if vote.committed && vote.leader_id.term > 0 {
            lease + timeout
        } else {
            Duration::ZERO
        };
        let last = self
            .raft
            .with_raft_state(|s| s.vote_last_modified())
            .await
            .ok()
            .flatten();
        // openraft's lease runs out strictly after its end: one millisecond past it.
        last.map_or(Duration::ZERO, |t| {
            (t.tokio() + lease + Duration::from_millis(1)).saturating_duration_since(clock.now())
        })
    }

    /// Asks this node, if it leads, to hand leadership to `to`.
    pub async fn transfer_leadership(&self, to: u64) -> Result<()> {
        self.raft
            .trigger()
            .transfer_leader(to)
            .await
            .map_err(|e| Error::Stopped(e.to_string()))
    }

    /// If this node leads, sends a heartbeat to every follower now.
    pub async fn heartbeat(&self) {
        let _ = self.raft.trigger().heartbeat().await;
    }

    pub fn set_pre_vote(&self, enabled: bool) {
        self.raft.runtime_config().pre_vote(enabled);
    }

    /// Retries replication to every peer now instead of after the back-off (used after a heal).
    pub async fn reset_backoff(&self, peers: impl IntoIterator<Item = u64>) {
        let _ = self.raft.trigger().reset_backoff(peers).await;
    }

    /// Stops the node the polite way (SIGTERM, Ctrl-C): a leader first hands leadership to its
    /// most up-to-date follower, then the HTTP port stops accepting while requests in flight
    /// finish (forwarded to the new leader), and only then Raft stops. A rolling restart this way
    /// fails no client request; each step is bounded, so a stuck cluster still lets the node go.
    pub async fn stop_gracefully(mut self, bound: Duration) {
        let m = self.raft.metrics().borrow_watched().clone();
        if m.current_leader == Some(self.id)
            && let Some(heir) = raftmod::leader::heir(&m)
        {
            tracing::info!(
                node = self.id,
                to = heir,
                "handing over leadership before stopping"
            );
            let _ = self.raft.trigger().transfer_leader(heir).await;
            let _ = self
                .raft
                .wait(Some(bound))
                .metrics(
                    |m| m.current_leader.is_some_and(|l| l != self.id),
                    "leader moved",
                )
                .await;
        }
        let _ = self.http_stop.send(());
        if let Some(http) = self.tasks.pop() {
            let _ = tokio::time::timeout(bound, http).await;
        }
        let (tx, _) = tokio::sync::oneshot::channel();
        self.http_stop = tx;
        self.shutdown().await;
    }

    /// Stops the node: closes its ports and stops Raft. Everything acknowledged is already on
    /// disk (acknowledgement waits for fsync), so this is as safe as a crash and no safer.
    pub async fn shutdown(self) {
        let _ = self.http_stop.send(());
        self.tasks[0].abort();
        if let Err(e) = self.raft.shutdown().await {
            tracing::warn!("node {}: Raft shutdown: {e}", self.id);
        }
    }
}

/// Connections the kernel may queue before we accept them. mio's default is 128: a burst of 256
/// clients connecting at once (the benchmark does) would see some SYNs dropped and retried a
/// second later. The kernel caps it at net.core.somaxconn.
const LISTEN_BACKLOG: u32 = 1024;

async fn bind(addr: SocketAddr, what: &str) -> Result<TcpListener> {
    let listen = || {
        let socket = match addr {
            SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // As mio does on Unix: a restarted node can listen while old connections linger in
        // TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        socket.listen(LISTEN_BACKLOG)
    };
    listen().map_err(|e: std::io::Error| {
        Error::Config(format!(
            "cannot listen for {what} on {addr}: {e} (is another node using it?)"
        ))
    })
}

/// Opens the log, waiting briefly if a previous incarnation in this process still holds the lock
/// (openraft's `shutdown` returns before its workers drop their log handles).
async fn open_log(config: &NodeConfig) -> Result<LogStore> {
    let dir = config.data_dir.join("raft-log");
    for _ in 0..50 {
        match LogStore::open(&dir) {
            Ok(log) => return Ok(log),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            // raft-log cuts a torn record at the very end itself; anything else it cannot read
            // (a checksum that does not match, a record that does not decode) is damage inside
            // data it had fsynced.
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                return Err(Error::Config(format!(
                    "refusing to start: the Raft log in {} is damaged ({e}). Serving would let \
                     this node vote and count commits without entries it had stored. Restore \
                     the data directory, or remove this server from the cluster and add a new one",
                    dir.display()
                )));
            }
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Config(format!(
        "{} is locked by another running node",
        dir.display()
    )))
}

/// On a founding member that has never had Raft state, proposes the founding membership. Every
/// founding member does this with the identical map, which openraft allows; whoever is not first
/// gets `NotAllowed`. A joining server never does: it would found a cluster of its own.
async fn initialize_once(raft: &Raft, members: &Members) -> Result<()> {
    if raft
        .is_initialized()
        .await
        .map_err(|e| Error::Stopped(e.to_string()))?
    {
        return Ok(());
    }
    let members: BTreeMap<u64, BasicNode> = members
        .iter()
        .map(|(id, addr)| {
            (
                *id,
                BasicNode {
                    addr: addr.to_string(),
                },
            )
        })
        .collect();
    match raft.initialize(members).await {
        Ok(()) | Err(RaftError::APIError(InitializeError::NotAllowed(_))) => Ok(()),
        Err(e) => Err(Error::Config(format!("cannot initialize the cluster: {e}"))),
    }
}
