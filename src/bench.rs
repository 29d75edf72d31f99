//! The load generator (`raftkv bench`): drives a running cluster over HTTP with N keep-alive
//! connections, each its own client task, for a fixed time after a warm-up, and reports
//! throughput, latency percentiles from an HDR histogram, errors by kind, and its own CPU use (to
//! show it is not the bottleneck). Closed loop by default (each connection sends its next request
//! when the last one is answered); with a target rate, open loop: requests are due on a fixed
//! schedule and latency counts from when a request was due, so a stalled server cannot hide
//! behind a client that politely waited (coordinated omission).

use std::collections::BTreeMap;
use std::time::Duration;

use hdrhistogram::Histogram;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

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
    pub endpoints: Vec<String>,
    pub workload: Workload,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Total requests per second across connections; 0 = closed loop.
    pub rate: u64,
    pub keys: u64,
    pub value_bytes: usize,
}

#[derive(Debug, Serialize)]
pub struct Report {
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
    /// This process's CPU time over the measured window, as a share of one core.
    pub client_cpu_share: f64,
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
        format!(
            "{:?}, {} connections, {:.1} s: {} ops, {:.0} ops/s\n\
             latency ms: p50 {:.2}  p90 {:.2}  p99 {:.2}  p99.9 {:.2}  max {:.2}\n\
             errors: {errors}\n\
             load generator CPU: {:.0} % of one core",
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
            self.client_cpu_share * 100.0
        )
    }
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

/// Finds the leader and a follower among the endpoints, from their `/admin/status`.
async fn roles(endpoints: &[String]) -> anyhow::Result<(String, Option<String>)> {
    let http = reqwest::Client::new();
    let (mut leader, mut follower) = (None, None);
    for e in endpoints {
        let Ok(resp) = http.get(format!("{e}/admin/status")).send().await else {
            continue;
        };
        let Ok(s) = resp.json::<serde_json::Value>().await else {
            continue;
        };
        if s["role"] == "leader" && s["has_quorum"] == true {
            leader = Some(e.clone());
        } else if s["role"] == "follower" && follower.is_none() {
            follower = Some(e.clone());
        }
    }
    let leader = leader.ok_or_else(|| anyhow::anyhow!("no endpoint leads with a quorum"))?;
    Ok((leader, follower))
}

pub async fn run(mut config: Config) -> anyhow::Result<Report> {
    for e in &mut config.endpoints {
        *e = crate::client::endpoint_url(e);
    }
    let (leader, follower) = roles(&config.endpoints).await?;
    let target = match config.workload {
        Workload::Put | Workload::Append | Workload::GetLeader => vec![leader],
        Workload::GetFollower | Workload::GetLocal => vec![follower.ok_or_else(|| {
            anyhow::anyhow!("this workload needs a follower among the endpoints")
        })?],
        Workload::Mixed => config.endpoints.clone(),
    };
    // Every key exists before reads start, so a GET is a real read, not a 404.
    let seed = reqwest::Client::new();
    if matches!(
        config.workload,
        Workload::GetLeader | Workload::GetFollower | Workload::GetLocal | Workload::Mixed
    ) {
        for k in 0..config.keys.min(1000) {
            seed.post(format!("{}/keys/b{k}", target[0]))
                .json(&serde_json::json!({"type": "PUT", "value": ["x"]}))
                .send()
                .await?
                .error_for_status()?;
        }
    }
    let start = Instant::now() + Duration::from_millis(50);
    let measure_from = start + config.warmup;
    let end = measure_from + config.duration;
    let value = "v".repeat(config.value_bytes);
    let mut tasks = Vec::new();
    for c in 0..config.connections {
        let (config, value, endpoint) = (
            config.clone(),
            value.clone(),
            target[c % target.len()].clone(),
        );
        tasks.push(tokio::spawn(async move {
            connection(c, config, endpoint, value, start, measure_from, end).await
        }));
    }
    tokio::time::sleep_until(measure_from).await;
    let cpu_before = cpu_time();
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut errors = BTreeMap::new();
    let mut ops = 0;
    for task in tasks {
        let (h, e, n) = task.await?;
        hist.add(h)?;
        for (k, v) in e {
            *errors.entry(k).or_insert(0) += v;
        }
        ops += n;
    }
    let seconds = config.duration.as_secs_f64();
    let cpu = match (cpu_before, cpu_time()) {
        (Some(a), Some(b)) => (b.saturating_sub(a)).as_secs_f64() / seconds,
        _ => f64::NAN,
    };
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    Ok(Report {
        workload: config.workload,
        connections: config.connections,
        seconds,
        ops,
        ops_per_sec: ops as f64 / seconds,
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: hist.max() as f64 / 1000.0,
        errors,
        client_cpu_share: cpu,
    })
}

type Counts = (Histogram<u64>, BTreeMap<String, u64>, u64);

/// One keep-alive connection's loop. Returns its latency histogram (µs), errors and successes,
/// counting only requests that started inside the measured window.
async fn connection(
    c: usize,
    config: Config,
    endpoint: String,
    value: String,
    start: Instant,
    measure_from: Instant,
    end: Instant,
) -> Counts {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid bounds");
    let mut errors = BTreeMap::new();
    let mut ok = 0u64;
    let mut rng = StdRng::seed_from_u64(c as u64);
    // Open loop: this connection's share of the rate, staggered across connections.
    let interval = (config.rate > 0)
        .then(|| Duration::from_secs_f64(config.connections as f64 / config.rate as f64));
    let mut due = start
        + interval.map_or(Duration::ZERO, |i| {
            i.mul_f64(c as f64 / config.connections as f64)
        });
    tokio::time::sleep_until(start).await;
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
        if began >= end {
            break;
        }
        let key = format!("b{}", rng.random_range(0..config.keys.clamp(1, 1000)));
        let write = match config.workload {
            Workload::Put | Workload::Append => true,
            Workload::Mixed => rng.random_bool(0.1),
            _ => false,
        };
        let request = if write {
            let body = if config.workload == Workload::Append {
                serde_json::json!({"type": "APPEND", "value": format!("{c}-{n}")})
            } else {
                serde_json::json!({"type": "PUT", "value": [value]})
            };
            http.post(format!("{endpoint}/keys/{key}")).json(&body)
        } else if config.workload == Workload::GetLocal {
            http.get(format!("{endpoint}/keys/{key}?consistency=local"))
        } else {
            http.get(format!("{endpoint}/keys/{key}"))
        };
        let outcome = match request.send().await {
            Ok(resp) if resp.status().is_success() => {
                // Read the body so the connection can be reused.
                let _ = resp.bytes().await;
                None
            }
            Ok(resp) => Some(format!("HTTP {}", resp.status().as_u16())),
            Err(e) if e.is_timeout() => Some("timeout".to_owned()),
            Err(e) if e.is_connect() => Some("connect".to_owned()),
            Err(_) => Some("transport".to_owned()),
        };
        if began >= measure_from {
            match outcome {
                None => {
                    ok += 1;
                    let micros = began.elapsed().as_micros().max(1) as u64;
                    let _ = hist.record(micros.min(60_000_000));
                }
                Some(kind) => *errors.entry(kind).or_insert(0) += 1,
            }
        }
        n += 1;
        if let Some(interval) = interval {
            due += interval;
        }
    }
    (hist, errors, ok)
}
