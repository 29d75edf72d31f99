//! The load generator (`raftkv bench`): drives a running cluster over HTTP with N keep-alive
//! connections, each its own client task, for a fixed time after a warm-up, and reports
//! throughput, latency percentiles from an HDR histogram, errors by kind, its own CPU use (to
//! show it is not the bottleneck) and how many elections happened meanwhile (a loaded leader must
//! not look dead). Closed loop by default (each connection sends its next request when the last
//! one is answered); with a target rate, open loop: requests are due on a fixed schedule and
//! latency counts from when a request was due, so a stalled server cannot hide behind a client
//! that politely waited (coordinated omission). The same code drives etcd ([`system`]) and times
//! faults ([`fault`]). A connection whose request fails moves to the next endpoint it may use.

pub mod fault;
mod http;
pub mod preload;
pub mod system;
pub mod trust;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

pub use fault::Fault;
pub use system::System;
use system::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// PUT a one-element list to a random key, through the leader.
    Put,
    /// APPEND to a random key, through the leader.
    Append,
    /// Linearizable GET on the leader.
    GetLeader,
    /// Linearizable GET on a follower (it asks the leader for a read index).
    GetFollower,
    /// Local GET on a follower (possibly stale, no quorum round trip).
    GetLocal,
    /// 90 % linearizable GETs, 10 % PUTs, spread over all endpoints.
    Mixed,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub system: System,
    pub endpoints: Vec<String>,
    pub workload: Workload,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Total requests per second across connections; 0 = closed loop.
    pub rate: u64,
    pub keys: u64,
    pub value_bytes: usize,
    /// Bytes of values written to keys of their own before the run (0: none).
    pub preload: u64,
    /// A fault to inject and time; it needs `pids` (one per endpoint, same order).
    pub fault: Option<Fault>,
    pub pids: Vec<u32>,
    /// Catch-up: how many writes are acknowledged while the follower is paused.
    pub behind: u64,
    /// Whom to trust on https:// endpoints.
    pub trust: trust::Trust,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub system: System,
    pub workload: Workload,
    pub connections: usize,
    pub seconds: f64,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// Failed requests by kind (HTTP status or transport error).
    pub errors: BTreeMap<String, u64>,
    /// This process's CPU time over the measured window, as a share of one core (None where
    /// /proc is not there to ask).
    pub client_cpu_share: Option<f64>,
    /// Terms that began during the measured window (highest term seen after minus before).
    pub elections: Option<u64>,
    /// What the injected fault cost, if one was injected.
    pub fault: Option<fault::FaultReport>,
    /// The fill before the run, if `--preload` asked for one.
    pub preload: Option<preload::PreloadReport>,
}

impl Report {
    pub fn text(&self) -> String {
        let errors = if self.errors.is_empty() {
            "none".to_owned()
        } else {
            self.errors
                .iter()
                .map(|(k, n)| format!("{k}: {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let elections = self
            .elections
            .map_or("unknown".to_owned(), |n| n.to_string());
        let mut text = format!(
            "{:?} {:?}, {} connections, {:.1} s: {} ops, {:.0} ops/s\n\
             latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n\
             errors: {errors}\n\
             elections during the run: {elections}\n\
             load generator CPU: {}",
            self.system,
            self.workload,
            self.connections,
            self.seconds,
            self.ops,
            self.ops_per_sec,
            self.p50_ms,
            self.p90_ms,
            self.p99_ms,
            self.p999_ms,
            self.max_ms,
            self.client_cpu_share.map_or("unknown".into(), |s| format!(
                "{:.0} % of one core",
                s * 100.0
            ))
        );
        if let Some(preload) = &self.preload {
            text.push('\n');
            text.push_str(&preload.to_string());
        }
        if let Some(fault) = &self.fault {
            text.push('\n');
            text.push_str(&fault.to_string());
        }
        text
    }
}

/// The CPU time between two readings of [`cpu_time`] as a share of one core over `seconds`.
fn cpu_share(before: Option<Duration>, after: Option<Duration>, seconds: f64) -> Option<f64> {
    Some(after?.saturating_sub(before?).as_secs_f64() / seconds)
}

/// This process's user + system CPU time, from /proc (Linux); `None` elsewhere.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // USER_HZ is 100 on every Linux platform Rust targets.
    Some(Duration::from_millis(ticks * 10))
}

/// Every endpoint's probe (None where it does not answer), in endpoint order.
async fn probe_all(config: &Config) -> Vec<Option<system::Probe>> {
    let http = config.trust.http(Duration::from_secs(2));
    let probes = config
        .endpoints
        .iter()
        .map(|e| config.system.probe(&http, e));
    futures::future::join_all(probes).await
}

/// The highest term any endpoint reports now.
async fn highest_term(config: &Config) -> Option<u64> {
    let probes = probe_all(config).await;
    probes.iter().flatten().map(|p| p.term).max()
}

/// Terms that began between two readings of [`highest_term`].
fn elections(before: Option<u64>, after: Option<u64>) -> Option<u64> {
    before.zip(after).map(|(a, b)| b.saturating_sub(a))
}

/// Who is who among the endpoints, from one round of probes.
struct Roles {
    leader: usize,
    follower: Option<usize>,
    /// The leader's term.
    term: u64,
}

async fn roles(config: &Config) -> anyhow::Result<Roles> {
    let probes = probe_all(config).await;
    let leader = probes
        .iter()
        .position(|p| p.is_some_and(|p| p.leader))
        .ok_or_else(|| anyhow::anyhow!("no endpoint leads with a quorum"))?;
    let follower = probes
        .iter()
        .enumerate()
        .position(|(i, p)| i != leader && p.is_some());
    let term = probes[leader].map_or(0, |p| p.term);
    Ok(Roles {
        leader,
        follower,
        term,
    })
}

pub async fn run(mut config: Config) -> anyhow::Result<Report> {
    for e in &mut config.endpoints {
        *e = crate::client::endpoint_url(e);
        if e.starts_with("https://") && config.trust.connector().is_none() {
            anyhow::bail!("{e}: an https:// endpoint needs --ca-file (the CA to check it against)");
        }
        if !e.starts_with("http://") && !e.starts_with("https://") {
            anyhow::bail!("the bench speaks HTTP and HTTPS; {e} is neither");
        }
    }
    if config.fault.is_some() && config.pids.len() != config.endpoints.len() {
        anyhow::bail!(
            "a fault needs one --pids entry per endpoint ({} endpoints, {} pids)",
            config.endpoints.len(),
            config.pids.len()
        );
    }
    if config.fault == Some(Fault::CatchUp) {
        return fault::catch_up(config).await;
    }
    let Roles {
        leader, follower, ..
    } = roles(&config).await?;
    let e = &config.endpoints;
    let target: Vec<String> = match config.workload {
        _ if config.fault == Some(Fault::Failover) => e.clone(),
        Workload::Put | Workload::Append | Workload::GetLeader => vec![e[leader].clone()],
        Workload::GetFollower | Workload::GetLocal => vec![
            e[follower.ok_or_else(|| {
                anyhow::anyhow!("this workload needs a follower among the endpoints")
            })?]
            .clone(),
        ],
        Workload::Mixed => e.clone(),
    };
    let preloaded = preload::fill(&config, &e[leader]).await?;
    seed_keys(&config, &target[0]).await?;
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let load = Load::spawn(&config, &target, start, measure_from, end, None);
    tokio::time::sleep_until(measure_from).await;
    let terms_before = highest_term(&config).await;
    let cpu_before = cpu_time();
    let injected = match config.fault {
        Some(Fault::Failover) => {
            tokio::time::sleep(config.duration / 3).await;
            Some(fault::kill_leader(&config, start).await?)
        }
        _ => None,
    };
    let counts = load.finish().await?;
    let cpu_after = cpu_time();
    let terms_after = highest_term(&config).await;
    let seconds = config.duration.as_secs_f64();
    let cpu = cpu_share(cpu_before, cpu_after, seconds);
    let fault = injected.map(|k| k.report(&counts.acks));
    let elections = elections(terms_before, terms_after);
    let mut report = counts.report(&config, seconds, cpu, elections, fault);
    report.preload = preloaded;
    Ok(report)
}

/// Every key exists before reads start, so a GET is a real read, not a 404. The keys are written
/// by as many concurrent writers as the run has connections, each over one connection of the same
/// kind the load uses: one at a time, a system that takes 100 ms per write (the PySyncObj service)
/// would spend minutes seeding.
async fn seed_keys(config: &Config, endpoint: &str) -> anyhow::Result<()> {
    if !matches!(
        config.workload,
        Workload::GetLeader | Workload::GetFollower | Workload::GetLocal | Workload::Mixed
    ) {
        return Ok(());
    }
    let keys = config.keys.clamp(1, 1000) as usize;
    let writers = config.connections.clamp(1, keys);
    let writer = |first: usize| async move {
        let mut conn = http::Conn::new(config.trust.clone());
        for k in (first..keys).step_by(writers) {
            let call = config.system.write(&format!("b{k}"), Write::Put("x"))?;
            match conn.send(endpoint, &call, REQUEST_TIMEOUT).await {
                Ok(200..=299) => {}
                Ok(status) => anyhow::bail!("seeding key b{k} on {endpoint}: HTTP {status}"),
                Err(failure) => anyhow::bail!("seeding key b{k} on {endpoint}: {}", failure.kind()),
            }
        }
        anyhow::Ok(())
    };
    futures::future::try_join_all((0..writers).map(writer)).await?;
    Ok(())
}

/// What the connections measured, merged.
pub(crate) struct Counts {
    hist: Histogram<u64>,
    errors: BTreeMap<String, u64>,
    ok: u64,
    /// (sent, acknowledged) of every successful write, in µs since the load started.
    pub(crate) acks: Vec<(u64, u64)>,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            hist: Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds"),
            errors: BTreeMap::new(),
            ok: 0,
            acks: Vec::new(),
        }
    }

    fn report(
        self,
        config: &Config,
        seconds: f64,
        client_cpu_share: Option<f64>,
        elections: Option<u64>,
        fault: Option<fault::FaultReport>,
    ) -> Report {
        let ms = |q: f64| self.hist.value_at_quantile(q) as f64 / 1000.0;
        Report {
            system: config.system,
            workload: config.workload,
            connections: config.connections,
            seconds,
            ops: self.ok,
            ops_per_sec: self.ok as f64 / seconds,
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: self.hist.max() as f64 / 1000.0,
            errors: self.errors,
            client_cpu_share,
            elections,
            fault,
            preload: None,
        }
    }
}

/// Shared by a load's connections when a fault, not the clock, ends the load: the writes
/// acknowledged so far, and the signal to stop.
#[derive(Default)]
pub(crate) struct Progress {
    pub acked: AtomicU64,
    pub stop: AtomicBool,
}

/// The running connections.
pub(crate) struct Load {
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Counts>>>,
}

impl Load {
    /// Starts `config.connections` connections over `target` (connection c starts on endpoint
    /// c mod len). They stop at `end`, or once `progress.stop` is set.
    pub(crate) fn spawn(
        config: &Config,
        target: &[String],
        start: Instant,
        measure_from: Instant,
        end: Instant,
        progress: Option<Arc<Progress>>,
    ) -> Load {
        let value = Arc::new("v".repeat(config.value_bytes));
        let tasks = (0..config.connections)
            .map(|c| {
                let conn = Connection {
                    c,
                    config: config.clone(),
                    target: target.to_vec(),
                    value: value.clone(),
                    start,
                    measure_from,
                    end,
                    progress: progress.clone(),
                };
                tokio::spawn(conn.run())
            })
            .collect();
        Load { tasks }
    }

    pub(crate) async fn finish(self) -> anyhow::Result<Counts> {
        let mut all = Counts::new();
        for task in self.tasks {
            let counts = task.await??;
            all.hist.add(counts.hist)?;
            for (k, v) in counts.errors {
                *all.errors.entry(k).or_insert(0) += v;
            }
            all.ok += counts.ok;
            all.acks.extend(counts.acks);
        }
        Ok(all)
    }
}

/// How long one request may take before the bench counts it as a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

struct Connection {
    c: usize,
    config: Config,
    target: Vec<String>,
    value: Arc<String>,
    start: Instant,
    measure_from: Instant,
    end: Instant,
    progress: Option<Arc<Progress>>,
}

impl Connection {
    /// One keep-alive connection's loop. Counts only requests that started inside the measured
    /// window; on a failed request it moves to the next endpoint of its target list.
    async fn run(self) -> anyhow::Result<Counts> {
        let config = &self.config;
        let mut conn = http::Conn::new(config.trust.clone());
        let mut counts = Counts::new();
        let mut rng = StdRng::seed_from_u64(self.c as u64);
        let mut at = self.c % self.target.len();
        // Open loop: this connection's share of the rate, staggered across connections.
        let interval = (config.rate > 0)
            .then(|| Duration::from_secs_f64(config.connections as f64 / config.rate as f64));
        let mut due = self.start
            + interval.map_or(Duration::ZERO, |i| {
                i.mul_f64(self.c as f64 / config.connections as f64)
            });
        tokio::time::sleep_until(self.start).await;
        let mut n = 0u64;
        loop {
            if interval.is_some() {
                tokio::time::sleep_until(due).await;
            }
            let began = if interval.is_some() {
                due
            } else {
                Instant::now()
            };
            if began >= self.end
                || self
                    .progress
                    .as_ref()
                    .is_some_and(|p| p.stop.load(Ordering::Relaxed))
            {
                break;
            }
            let endpoint = &self.target[at];
            let key = format!("b{}", rng.random_range(0..config.keys.clamp(1, 1000)));
            let write = match config.workload {
                Workload::Put | Workload::Append => true,
                Workload::Mixed => rng.random_bool(0.1),
                _ => false,
            };
            let call = match (write, config.workload) {
                (true, Workload::Append) => {
                    let v = format!("{}-{n}", self.c);
                    config.system.write(&key, Write::Append(&v))?
                }
                (true, _) => config.system.write(&key, Write::Put(&self.value))?,
                (false, w) => config.system.read(&key, w == Workload::GetLocal),
            };
            let outcome = match conn.send(endpoint, &call, REQUEST_TIMEOUT).await {
                Ok(200..=299) => None,
                Ok(status) => Some(format!("HTTP {status}")),
                Err(failure) => Some(failure.kind().to_owned()),
            };
            if outcome.is_some() {
                at = (at + 1) % self.target.len();
            } else if let Some(progress) = self.progress.as_ref().filter(|_| write) {
                progress.acked.fetch_add(1, Ordering::Relaxed);
            }
            if began >= self.measure_from {
                match outcome {
                    None => {
                        counts.ok += 1;
                        let micros = began.elapsed().as_micros().max(1) as u64;
                        let _ = counts.hist.record(micros.min(60_000_000));
                        if write && config.fault.is_some() {
                            let since = |t: Instant| (t - self.start).as_micros() as u64;
                            counts.acks.push((since(began), since(Instant::now())));
                        }
                    }
                    Some(kind) => *counts.errors.entry(kind).or_insert(0) += 1,
                }
            }
            n += 1;
            if let Some(interval) = interval {
                due += interval;
            }
        }
        Ok(counts)
    }
}
