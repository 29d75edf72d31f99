//! Faults the bench injects and times, on processes it is given by pid (one per endpoint):
//! - failover: under a write load spread over every endpoint, `kill -9` the leader; time until a
//!   survivor leads in a higher term, and until the first write *sent after the kill* is
//!   acknowledged (a write sent before may have been committed by the dead leader already);
//! - catch-up: `kill -STOP` a follower, write until N writes are acknowledged, stop writing,
//!   `kill -CONT` it and time until it has applied as much as the leader. Counted in writes, not
//!   log entries: raftkv's leader puts many writes in one entry under load, etcd and PySyncObj
//!   one each, so only writes compare.
//!
//! Restarting a killed process is the caller's job (it knows how the process was started).

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::{
    Config, Counts, Load, Progress, Report, Workload, cpu_share, cpu_time, elections, highest_term,
    roles,
};

/// Width of one bar of the failover timeline.
pub const TIMELINE_BUCKET_MS: u64 = 50;

/// How long a fault may take to heal before the bench gives up on it.
const HEAL_LIMIT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    Failover,
    CatchUp,
}

#[derive(Debug, Serialize)]
pub struct FaultReport {
    pub fault: Fault,
    /// Index (in --endpoints) of the process killed or paused.
    pub node: usize,
    /// Failover: milliseconds from the kill until a survivor led in a higher term.
    pub new_leader_ms: Option<f64>,
    /// Failover: milliseconds from the kill until the first write sent after it was acknowledged.
    pub first_write_ms: Option<f64>,
    /// Failover: when the kill happened, in milliseconds since the load started.
    pub kill_at_ms: Option<f64>,
    /// Failover: acknowledged writes per TIMELINE_BUCKET_MS since the load started.
    pub timeline: Vec<u64>,
    /// Catch-up: writes acknowledged while the follower was paused, and the log entries that
    /// carried them (how far behind the leader's applied index it was when resumed).
    pub behind: Option<u64>,
    pub behind_entries: Option<u64>,
    /// Catch-up: milliseconds from resuming it until it had applied as much as the leader.
    pub catch_up_ms: Option<f64>,
}

impl fmt::Display for FaultReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |v: Option<f64>| v.map_or("never".to_owned(), |v| format!("{v:.0} ms"));
        match self.fault {
            Fault::Failover => write!(
                f,
                "failover: killed the leader (endpoint {}); new leader after {}, \
                 first write sent after the kill acknowledged after {}",
                self.node,
                ms(self.new_leader_ms),
                ms(self.first_write_ms)
            ),
            Fault::CatchUp => write!(
                f,
                "catch-up: follower (endpoint {}) {} writes ({} entries) behind matched the \
                 leader after {}",
                self.node,
                self.behind.unwrap_or(0),
                self.behind_entries.unwrap_or(0),
                ms(self.catch_up_ms)
            ),
        }
    }
}

/// Sends `signal` (KILL, STOP, CONT) to `pid` with the system's `kill`.
fn signal(signal: &str, pid: u32) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .status()?;
    anyhow::ensure!(status.success(), "kill -s {signal} {pid} failed: {status}");
    Ok(())
}

/// A paused process, resumed when this is dropped, whatever path the bench leaves by.
struct Paused(u32);

impl Drop for Paused {
    fn drop(&mut self) {
        let _ = signal("CONT", self.0);
    }
}

/// The kill of a failover run, before the acknowledgements are in.
pub(crate) struct Killed {
    node: usize,
    at: Duration,
    new_leader: Option<Duration>,
}

/// Kills the current leader's process and waits (bounded) for a new leader among the rest.
pub(crate) async fn kill_leader(config: &Config, load_start: Instant) -> anyhow::Result<Killed> {
    let roles = roles(config).await?;
    let (leader, old_term) = (roles.leader, roles.term);
    signal("KILL", config.pids[leader])?;
    let killed_at = Instant::now();
    let http = config.trust.http(Duration::from_millis(500));
    let mut new_leader = None;
    while killed_at.elapsed() < HEAL_LIMIT && new_leader.is_none() {
        for (i, e) in config.endpoints.iter().enumerate() {
            let probe = config.system.probe(&http, e).await;
            if i != leader && probe.is_some_and(|p| p.leader && p.term > old_term) {
                new_leader = Some(killed_at.elapsed());
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(Killed {
        node: leader,
        at: killed_at - load_start,
        new_leader,
    })
}

impl Killed {
    pub(crate) fn report(&self, acks: &[(u64, u64)]) -> FaultReport {
        let at = self.at.as_micros() as u64;
        let first = acks
            .iter()
            .filter(|(sent, _)| *sent >= at)
            .map(|(_, acked)| acked - at)
            .min();
        let last = acks.iter().map(|(_, a)| *a).max().unwrap_or(0);
        let mut timeline = vec![0; (last / 1000 / TIMELINE_BUCKET_MS + 1) as usize];
        for (_, acked) in acks {
            timeline[(acked / 1000 / TIMELINE_BUCKET_MS) as usize] += 1;
        }
        FaultReport {
            fault: Fault::Failover,
            node: self.node,
            new_leader_ms: self.new_leader.map(|d| d.as_secs_f64() * 1000.0),
            first_write_ms: first.map(|us| us as f64 / 1000.0),
            kill_at_ms: Some(at as f64 / 1000.0),
            timeline,
            behind: None,
            behind_entries: None,
            catch_up_ms: None,
        }
    }
}

/// Applied index of endpoint `i`, waiting (bounded) while it does not answer.
async fn applied(config: &Config, http: &reqwest::Client, i: usize) -> anyhow::Result<u64> {
    let asked = Instant::now();
    loop {
        if let Some(p) = config.system.probe(http, &config.endpoints[i]).await {
            return Ok(p.applied);
        }
        anyhow::ensure!(
            asked.elapsed() < HEAL_LIMIT,
            "endpoint {i} stopped answering"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Pauses a follower, PUTs through the leader with `config.connections` connections until
/// `config.behind` writes are acknowledged, stops writing, resumes the follower and times how
/// long it takes to apply as much as the leader.
pub(crate) async fn catch_up(config: Config) -> anyhow::Result<Report> {
    let behind = config.behind;
    let roles = roles(&config).await?;
    let leader = roles.leader;
    let follower = roles
        .follower
        .ok_or_else(|| anyhow::anyhow!("catch-up needs a follower"))?;
    let http = config.trust.http(Duration::from_secs(2));
    let from = applied(&config, &http, follower).await?;
    let terms_before = highest_term(&config).await;
    let paused = Paused(config.pids[follower]);
    signal("STOP", paused.0)?;
    let progress = Arc::new(Progress::default());
    let put = Config {
        workload: Workload::Put,
        ..config.clone()
    };
    let start = Instant::now();
    let cpu_before = cpu_time();
    let load = Load::spawn(
        &put,
        &[config.endpoints[leader].clone()],
        start,
        start,
        start + HEAL_LIMIT,
        Some(progress.clone()),
    );
    while progress.acked.load(Ordering::Relaxed) < behind {
        anyhow::ensure!(
            start.elapsed() < HEAL_LIMIT,
            "the leader did not acknowledge {behind} writes in {HEAL_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.stop.store(true, Ordering::Relaxed);
    let counts: Counts = load.finish().await?;
    let seconds = start.elapsed().as_secs_f64();
    let cpu = cpu_share(cpu_before, cpu_time(), seconds);
    let goal = applied(&config, &http, leader).await?;
    drop(paused);
    let resumed = Instant::now();
    while applied(&config, &http, follower).await? < goal {
        anyhow::ensure!(
            resumed.elapsed() < HEAL_LIMIT,
            "the follower did not catch up in {HEAL_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let catch_up = resumed.elapsed();
    let terms_after = highest_term(&config).await;
    let fault = FaultReport {
        fault: Fault::CatchUp,
        node: follower,
        new_leader_ms: None,
        first_write_ms: None,
        kill_at_ms: None,
        timeline: Vec::new(),
        behind: Some(counts.ok),
        behind_entries: Some(goal - from),
        catch_up_ms: Some(catch_up.as_secs_f64() * 1000.0),
    };
    let elections = elections(terms_before, terms_after);
    Ok(counts.report(&put, seconds, cpu, elections, Some(fault)))
}
