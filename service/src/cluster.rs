//! N nodes in one process on loopback, each a real [`Node`] with its own Raft port, HTTP port and
//! data directory. The lab drives nodes only through this type; tests use it too. It owns the
//! nodes: one place decides which node runs.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::clock::Clock;
use crate::config::{self, NodeConfig, Start, Timing};
use crate::error::{Error, Result};
use crate::net::NetEnv;
use crate::net::fault::{Faults, Held};
use crate::node::Node;
use crate::observe::Event;
use crate::raft::members::MemberChange;
use crate::raft::status::{Role, Status, leader_of};

/// Slow timing for watching elections by eye: heartbeats every 300 ms, a follower times out
/// 4.5 to 6 s after its last heartbeat (openraft's lease of 3 s plus 1.5 to 3 s).
pub const SLOW: Timing = Timing {
    heartbeat_ms: 300,
    election_min_ms: 1500,
    election_max_ms: 3000,
    pre_vote: true,
};

/// The lab's fixed ports: node i listens for Raft on 127.0.0.1:(6000+i), HTTP on 8080+i.
pub const RAFT_BASE_PORT: u16 = 6000;
pub const HTTP_BASE_PORT: u16 = 8080;

/// The `n` consecutive ports from `base` (node i gets `base + i`); an error naming `what` if they
/// would run past 65535.
pub fn port_block(base: u16, n: u16, what: &str) -> Result<Vec<u16>> {
    let last = u32::from(base) + u32::from(n.max(1)) - 1;
    if last > u32::from(u16::MAX) {
        return Err(Error::Config(format!(
            "{what} {base}: {n} nodes would need ports up to {last}; the highest is 65535"
        )));
    }
    Ok((0..n).map(|i| base + i).collect())
}

/// Configs for `n` nodes on loopback with the given ports (ascending Raft ports give node i id i).
pub fn loopback_configs(
    raft_ports: &[u16],
    http_ports: &[u16],
    data_dir: &Path,
    timing: Timing,
) -> Vec<NodeConfig> {
    let raft_addrs: Vec<SocketAddr> = raft_ports
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    raft_addrs
        .iter()
        .zip(http_ports)
        .map(|(addr, http)| {
            let peers: Vec<SocketAddr> = raft_addrs.iter().copied().filter(|a| a != addr).collect();
            let (id, members) = config::assign_ids(*addr, &peers).expect("distinct loopback ports");
            NodeConfig {
                start: config::Start::Founding { id, members },
                raft_addr: *addr,
                http_addr: SocketAddr::from(([127, 0, 0, 1], *http)),
                data_dir: data_dir.join(format!("node{id}")),
                timing,
                request_timeout: Duration::from_secs(5),
                snapshot_every: crate::raft::SNAPSHOT_EVERY,
                max_in_flight: crate::config::MAX_IN_FLIGHT,
                log_bytes_limit: crate::config::LOG_BYTES_LIMIT,
                disk_reserve: crate::config::DISK_RESERVE,
                secret: None,
                admin_token: None,
                tls: None,
                transfer: Default::default(),
            }
        })
        .collect()
}

pub struct Cluster {
    configs: Vec<NodeConfig>,
    /// Faults and events shared by every node's transport.
    env: NetEnv,
    /// `Some` while the node runs. Index = node id.
    nodes: Vec<Option<Node>>,
    /// Ids that must never run again here: removed from the membership (a removed server that
    /// came back would campaign with a stale configuration), or handed out by the cluster to an
    /// add that did not complete (their slot holds a copy of the next node's config).
    retired: BTreeSet<usize>,
}

impl Cluster {
    /// Starts every node. Fails (stopping those already started) if any node cannot start.
    pub async fn start(configs: Vec<NodeConfig>) -> Result<Cluster> {
        Self::start_with(configs, false).await
    }

    /// Starts every node paused, before any election: every node a follower in term 0 with its
    /// timers off and its clock frozen, so that a learner (or a golden script) takes the very first
    /// step ([`Cluster::time_out`]).
    pub async fn start_paused(configs: Vec<NodeConfig>) -> Result<Cluster> {
        Self::start_with(configs, true).await
    }

    async fn start_with(configs: Vec<NodeConfig>, paused: bool) -> Result<Cluster> {
        let mut cluster = Cluster {
            nodes: configs.iter().map(|_| None).collect(),
            configs,
            env: NetEnv::lab(),
            retired: BTreeSet::new(),
        };
        if paused {
            cluster.pause();
        }
        for id in 0..cluster.configs.len() {
            if let Err(e) = cluster.restart(id).await {
                cluster.shutdown().await;
                return Err(e);
            }
        }
        Ok(cluster)
    }

    pub fn len(&self) -> usize {
        self.configs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.configs.is_empty()
    }

    pub fn config(&self, id: usize) -> &NodeConfig {
        &self.configs[id]
    }

    pub fn is_up(&self, id: usize) -> bool {
        self.nodes.get(id).is_some_and(Option::is_some)
    }

    /// Crash-stops node `id`: its ports close and its Raft stops. Its data stays on disk.
    pub async fn kill(&mut self, id: usize) {
        if let Some(node) = self.nodes.get_mut(id).and_then(Option::take) {
            node.shutdown().await;
        }
    }

    /// Stops node `id` the polite way, as SIGTERM does in per-process mode: a leader hands over
    /// first (`Node::stop_gracefully`, each step bounded by `bound`). Its data stays on disk.
    pub async fn stop_gracefully(&mut self, id: usize, bound: Duration) {
        if let Some(node) = self.nodes.get_mut(id).and_then(Option::take) {
            node.stop_gracefully(bound).await;
        }
    }

    /// Starts node `id` again from its data directory; refused if it runs.
    pub async fn restart(&mut self, id: usize) -> Result<()> {
        let slot = self
            .nodes
            .get_mut(id)
            .ok_or_else(|| Error::InvalidInput(format!("no node {id}")))?;
        if slot.is_some() {
            return Err(Error::InvalidInput(format!("node {id} is already running")));
        }
        if self.retired.contains(&id) {
            return Err(Error::InvalidInput(format!(
                "node {id} was removed from the cluster; ids are never reused"
            )));
        }
        {
            let node = Node::start(self.configs[id].clone(), self.env.clone()).await?;
            // A node restarted during a pause joins the freeze.
            node.set_timers(!self.env.faults.is_paused());
            *slot = Some(node);
        }
        Ok(())
    }

    /// Adds a server at runtime: the cluster makes it a learner (and gives it its id), then it
    /// starts with `Start::Join` and catches up from the leader. Returns its id. It votes only
    /// after [`Cluster::promote`].
    pub async fn add(&mut self, raft_addr: SocketAddr, http_addr: SocketAddr) -> Result<usize> {
        let via = self.up().next().ok_or_else(|| {
            Error::Unavailable("no node is running to add a server through".into())
        })?;
        let change = MemberChange::Add {
            raft_addr: raft_addr.to_string(),
        };
        let id = via.client().change_members(change).await? as usize;
        if id < self.configs.len() {
            return Err(Error::InvalidInput(format!(
                "{raft_addr} already belongs to node {id}"
            )));
        }
        let template = &self.configs[0];
        // Members serving HTTPS are asked over HTTPS, trusting their own certificate.
        let scheme = if template.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let config = NodeConfig {
            start: Start::Join {
                via: self
                    .up()
                    .map(|n| format!("{scheme}://{}", n.http_addr()))
                    .collect(),
                ca: template.tls.as_ref().map(|t| t.cert.clone()),
            },
            raft_addr,
            http_addr,
            data_dir: template
                .data_dir
                .parent()
                .unwrap_or(Path::new("."))
                .join(format!("node{id}")),
            ..template.clone()
        };
        // Ids handed out to adds that did not complete leave gaps; their slots stay retired.
        while self.configs.len() < id {
            self.retired.insert(self.configs.len());
            self.configs.push(config.clone());
            self.nodes.push(None);
        }
        self.configs.push(config);
        self.nodes.push(None);
        self.restart(id).await?;
        Ok(id)
    }

    /// Makes learner `id` a voter.
    pub async fn promote(&self, id: usize) -> Result<()> {
        self.change_members(MemberChange::Promote { id: id as u64 })
            .await
    }

    /// Removes server `id` from the membership, then stops it for good.
    pub async fn remove(&mut self, id: usize) -> Result<()> {
        if id >= self.len() || self.retired.contains(&id) {
            return Err(Error::InvalidInput(format!("no node {id}")));
        }
        self.change_members(MemberChange::Remove { id: id as u64 })
            .await?;
        self.kill(id).await;
        self.retired.insert(id);
        Ok(())
    }

    /// Whether node `id` was removed (or never used): it cannot be restarted.
    pub fn is_retired(&self, id: usize) -> bool {
        self.retired.contains(&id)
    }

    async fn change_members(&self, change: MemberChange) -> Result<()> {
        let via = self.up().next().ok_or_else(|| {
            Error::Unavailable("no node is running to change the membership through".into())
        })?;
        via.client().change_members(change).await.map(|_| ())
    }

    fn up(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    fn node(&self, id: usize) -> Result<&Node> {
        self.nodes
            .get(id)
            .and_then(Option::as_ref)
            .ok_or_else(|| Error::InvalidInput(format!("node {id} is not running")))
    }

    pub fn faults(&self) -> Faults {
        self.env.faults.snapshot()
    }

    pub fn events(&self) -> tokio::sync::broadcast::Receiver<Event> {
        self.env.observer.subscribe()
    }

    /// The sending half of those events, for reports made outside the transport: tests inject a
    /// made-up message this way to prove that an observer (the lab's safety checks) reacts.
    pub fn observer(&self) -> crate::observe::Observer {
        self.env.observer.clone()
    }

    /// Cuts every link between nodes of different groups (both ways). Ids must exist.
    pub fn partition(&self, groups: &[Vec<u64>]) -> Result<()> {
        if let Some(bad) = groups
            .iter()
            .flatten()
            .find(|id| **id as usize >= self.len())
        {
            return Err(Error::InvalidInput(format!("no node {bad}")));
        }
        self.env.faults.partition(groups);
        Ok(())
    }

    /// The fault table every node's transport consults, shared: cutting a link through it works
    /// while another call holds the cluster (a test cuts a transfer to a server being added).
    pub fn fault_table(&self) -> std::sync::Arc<crate::net::fault::FaultTable> {
        self.env.faults.clone()
    }

    /// Cuts the link from → to only.
    pub fn cut(&self, from: u64, to: u64) -> Result<()> {
        if from as usize >= self.len() || to as usize >= self.len() || from == to {
            return Err(Error::InvalidInput(format!("no link n{from} → n{to}")));
        }
        self.env.faults.cut(from, to);
        Ok(())
    }

    /// Restores every link and lets replication retry at once.
    pub async fn heal(&self) {
        self.env.faults.heal();
        let all: Vec<u64> = (0..self.len() as u64).collect();
        for node in self.up() {
            node.reset_backoff(all.iter().copied()).await;
        }
    }

    /// Freezes the whole cluster: the lab's clock stops (no timer fires, no lease ages, no RPC
    /// deadline runs), every node's timers are off, and every message, request or reply, is held
    /// where a learner can deliver or drop it one at a time ([`Cluster::release`]) until
    /// [`Cluster::resume`].
    pub fn pause(&self) {
        self.clock().freeze(true);
        self.env.faults.pause(true);
        self.up().for_each(|n| n.set_timers(false));
    }

    /// Ends a pause: everything still held is delivered in the order it was held, and the clock
    /// and timers run again where they stopped (leases did not age during the pause, so a
    /// resumed follower does not mistake the pause for a dead leader).
    pub async fn resume(&self) {
        self.env.faults.pause(false);
        self.clock().freeze(false);
        self.up().for_each(|n| n.set_timers(true));
    }

    /// Delivers (or, with `deliver` false, loses) held message `id`; only while paused.
    pub fn release(&self, id: u64, deliver: bool) -> Result<Held> {
        self.env
            .faults
            .release(id, deliver)
            .map_err(Error::InvalidInput)
    }

    /// The oldest held message's id, if any.
    pub fn oldest_held(&self) -> Option<u64> {
        self.env.faults.oldest()
    }

    /// Held messages whose senders gave up on them since the last call.
    pub fn abandoned(&self) -> Vec<Held> {
        self.env.faults.take_abandoned()
    }

    /// The lab's clock, shared by every node of this cluster.
    pub fn clock(&self) -> &Clock {
        self.env
            .clock
            .as_deref()
            .expect("a cluster's nodes run on the lab's clock")
    }

    /// Runs the cluster `slowdown` times slower than real time (1 to `clock::MAX_SLOWDOWN`):
    /// timers, heartbeats, leases and deadlines stretch together, at once, with no restart.
    pub fn set_slowdown(&self, slowdown: f64) -> Result<()> {
        self.clock()
            .set_slowdown(slowdown)
            .map_err(Error::InvalidInput)
    }

    /// Waits until the paused cluster has nothing left to do by itself: no message between the
    /// hold and its reply, no vote or entry waiting for its fsync, and no held message, node
    /// state or event changing for `quiet`. Gives up after `bound` (returns false). Golden
    /// scripts step with this in between.
    ///
    /// Why the fsyncs: a candidate sends its vote requests only once its vote is on disk, and
    /// nothing of it shows before (its status changes after the write). Timing alone missed
    /// them where an fsync outlasted `quiet` (a golden script failed 2 CI runs of 4 on a slow
    /// disk with "nothing is held" right after a pre-vote quorum).
    pub async fn settle(&self, quiet: Duration, bound: Duration) -> bool {
        let start = tokio::time::Instant::now();
        let mut changes = self.env.faults.changes();
        let mut events = self.events();
        let busy = |c: &Self| c.up().any(|n| n.writes_in_flight() > 0);
        let mut last = self.fingerprint().await;
        let mut calm_since = tokio::time::Instant::now();
        loop {
            let now = tokio::time::Instant::now();
            if self.env.faults.moving() == 0 && now - calm_since >= quiet {
                return true;
            }
            if now - start >= bound {
                return false;
            }
            tokio::select! {
                _ = changes.changed() => calm_since = tokio::time::Instant::now(),
                _ = events.recv() => calm_since = tokio::time::Instant::now(),
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
            // ORDERING: in flight is read before the statuses as well as after. A status waits
            // for openraft's core, which waits inline for its vote's fsync, so a write could
            // begin and end while the statuses are read; seen only afterwards it was missed, and
            // the whole fsync counted as quiet (the step ended right after a candidate's vote
            // reached disk, before its vote requests left).
            let busy_before = busy(self);
            let now = self.fingerprint().await;
            if now != last || busy_before || busy(self) {
                last = now;
                calm_since = tokio::time::Instant::now();
            }
        }
    }

    /// What settling watches of each node: role, term, vote and log positions.
    async fn fingerprint(&self) -> Vec<Option<[u64; 7]>> {
        let role = |r: Role| r as u64;
        self.statuses()
            .await
            .into_iter()
            .map(|s| {
                s.map(|s| {
                    [
                        role(s.role),
                        s.term,
                        s.voted_for.map_or(u64::MAX, |v| v),
                        u64::from(s.vote_committed),
                        s.last_log_index.map_or(u64::MAX, |i| i),
                        s.commit_index.map_or(u64::MAX, |i| i),
                        s.last_applied.map_or(u64::MAX, |i| i),
                    ]
                })
            })
            .collect()
    }

    /// Turns every running node's timers (election timeouts, heartbeats) off or on, without
    /// holding messages as [`Cluster::pause`] does: elections then happen only when asked for
    /// ([`Cluster::time_out`]). A restart or resume turns a node's timers on again.
    pub fn set_timers(&self, enabled: bool) {
        self.up().for_each(|n| n.set_timers(enabled));
    }

    /// Makes every running leader send a heartbeat now (with timers off, nothing else does).
    pub async fn heartbeat(&self) {
        for node in self.up() {
            node.heartbeat().await;
        }
    }

    pub fn is_paused(&self) -> bool {
        self.env.faults.is_paused()
    }

    /// Makes node `id` start an election now, as if its election timer had fired. While paused,
    /// time must have passed for that: the lab's clock first moves on to when the node's timer
    /// would fire, its leader lease run out and then the shortest election timeout, if it holds
    /// a lease (returned; a millisecond otherwise, zero on real time). Other nodes' timers stay
    /// off, but whatever else was due by then happens (a vote request older than the election
    /// timeout is given up by its candidate, as openraft does).
    pub async fn time_out(&self, id: usize) -> Result<Duration> {
        let node = self.node(id)?;
        let mut moved = Duration::ZERO;
        if self.is_paused() {
            let timing = &self.configs[id].timing;
            let ms = Duration::from_millis;
            moved = node
                .timer_left(ms(timing.election_max_ms), ms(timing.election_min_ms))
                .await;
            self.clock().advance(moved);
        }
        node.time_out(self.configs[id].timing.pre_vote).await?;
        Ok(moved)
    }

    /// Hands leadership to node `to` (asks the current leader).
    pub async fn transfer(&self, to: usize) -> Result<()> {
        self.node(to)?;
        let statuses = self.statuses().await;
        let leader = leader_of(statuses.iter().flatten())
            .ok_or_else(|| Error::Unavailable("no leader with a quorum to transfer from".into()))?;
        if leader.id as usize == to {
            return Ok(());
        }
        self.node(leader.id as usize)?
            .transfer_leadership(to as u64)
            .await
    }

    /// A client sending requests through node `via`.
    pub fn client(&self, via: usize) -> Result<crate::api::Gateway> {
        Ok(self.node(via)?.client())
    }

    /// The applied contents of node `id` (possibly stale).
    pub fn contents(&self, id: usize) -> Vec<(String, Vec<String>)> {
        self.node(id).map(|n| n.local_entries()).unwrap_or_default()
    }

    /// Turns pre-vote on or off on every node, live.
    pub fn set_pre_vote(&mut self, enabled: bool) {
        self.configs
            .iter_mut()
            .for_each(|c| c.timing.pre_vote = enabled);
        self.up().for_each(|n| n.set_pre_vote(enabled));
    }

    /// Changes the Raft timing; openraft fixes it at start, so every running node restarts from
    /// its data directory with the new timing.
    pub async fn set_timing(&mut self, timing: Timing) -> Result<()> {
        for id in 0..self.len() {
            self.configs[id].timing = timing;
            if self.is_up(id) {
                self.kill(id).await;
                self.restart(id).await?;
            }
        }
        Ok(())
    }

    pub fn timing(&self) -> Timing {
        self.configs[0].timing
    }

    /// Status of every node (None for a node that is down).
    pub async fn statuses(&self) -> Vec<Option<Status>> {
        let mut all = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            all.push(match node {
                Some(node) => Some(node.status().await),
                None => None,
            });
        }
        all
    }

    pub async fn shutdown(&mut self) {
        for id in 0..self.nodes.len() {
            self.kill(id).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::port_block;

    #[test]
    fn a_port_block_past_65535_is_refused_with_a_reason() {
        assert_eq!(
            port_block(6000, 5, "--raft-port").unwrap(),
            [6000, 6001, 6002, 6003, 6004]
        );
        assert_eq!(port_block(65531, 5, "--raft-port").unwrap()[4], 65535);
        let refused = port_block(65534, 5, "--raft-port").unwrap_err().to_string();
        assert!(
            refused.contains("--raft-port 65534") && refused.contains("65538"),
            "{refused}"
        );
    }
}
