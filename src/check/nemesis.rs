//! Drives a live in-process cluster with concurrent clients while a nemesis injects faults, then
//! reads the final state and checks the history (see [`super::list_append`]). Clients talk HTTP to
//! random nodes exactly as users would. Outcomes are classified conservatively: only a 204 is an
//! acknowledged append; only "unavailable" answers and refused connections count as certainly not
//! applied; everything else is unknown.
//!
//! Each of the `keys` slots moves to a fresh key after [`APPENDS_PER_KEY`] appends (as Jepsen's
//! list-append does): every read records the whole list it returned, so unbounded lists made the
//! history grow with the square of the run (16 clients for 40 s took 9.7 GB before this bound).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use super::election::{self, Leaders};
use super::history::{Kind, Op, Outcome, Values};
use super::list_append::{self, Report};
use crate::cluster::Cluster;
use crate::raft::status::leader_of;

/// Appends a key receives before its slot moves on to the next key.
pub const APPENDS_PER_KEY: u64 = 256;

/// The key of `slot` that takes the `n`th append to that slot.
fn key(slot: usize, n: u64) -> String {
    format!("k{slot}.{}", n / APPENDS_PER_KEY)
}

#[derive(Clone, Debug)]
pub struct Config {
    pub clients: usize,
    pub keys: usize,
    /// How long the clients run (the fault schedule runs during the same time).
    pub duration: Duration,
    /// A new fault (after healing the previous one) this often.
    pub fault_every: Duration,
    pub seed: u64,
    /// Read with `?consistency=local` (possibly stale by design): only to show that the checker
    /// catches stale reads when they happen.
    pub local_reads: bool,
}

/// What the clients saw, every value as an id of `values` (a long soak's reads hold millions).
#[derive(Default)]
struct Recorded {
    ops: Vec<Op<u32>>,
    values: Values,
}

pub struct Run {
    pub report: Report,
    /// The faults injected, in order, with their time.
    pub faults: Vec<String>,
    /// Who led in which term, as seen on the wire (Election Safety).
    pub leaders: Leaders,
}

/// Runs the workload and the nemesis on `cluster` (whose nodes must already be started).
pub async fn run(mut cluster: Cluster, config: Config) -> anyhow::Result<Run> {
    let (http, timeout) = super::endpoints(&cluster);
    let watch = election::Watch::start(&cluster);
    let started = Instant::now();
    let ms = move || started.elapsed().as_millis() as u64;
    let history: Arc<Mutex<Recorded>> = Default::default();
    let client = reqwest::Client::new();
    let deadline = started + config.duration;
    // Appends handed out per key slot, shared by all clients.
    let appends: Arc<Vec<AtomicU64>> = Arc::new((0..config.keys).map(|_| 0.into()).collect());

    let mut tasks = Vec::new();
    for c in 0..config.clients {
        let (history, client, http) = (history.clone(), client.clone(), http.clone());
        let appends = appends.clone();
        let mut rng = StdRng::seed_from_u64(config.seed.wrapping_add(c as u64 + 1));
        let keys = config.keys;
        let query = if config.local_reads {
            "?consistency=local"
        } else {
            ""
        };
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                if Instant::now() >= deadline {
                    break;
                }
                let slot = rng.random_range(0..keys);
                let node = &http[rng.random_range(0..http.len())];
                let append = rng.random_bool(0.7);
                let key = if append {
                    key(slot, appends[slot].fetch_add(1, Ordering::Relaxed))
                } else {
                    key(slot, appends[slot].load(Ordering::Relaxed))
                };
                let url = format!("{node}/keys/{key}");
                let invoked_ms = ms();
                let (kind, outcome) = if append {
                    let value = format!("c{c}-{n}");
                    let body = serde_json::json!({"type": "APPEND", "value": value});
                    let resp = client.post(&url).json(&body).timeout(timeout).send().await;
                    (Kind::Append { key, value }, classify_append(resp).await)
                } else {
                    let resp = client
                        .get(format!("{url}{query}"))
                        .timeout(timeout)
                        .send()
                        .await;
                    (Kind::Read { key }, classify_read(resp).await)
                };
                let op = Op {
                    client: c,
                    kind,
                    invoked_ms,
                    completed_ms: ms(),
                    outcome,
                };
                let mut recorded = history.lock().unwrap();
                let recorded = &mut *recorded;
                recorded.ops.push(op.map(|v| recorded.values.id(v)));
            }
        }));
    }

    let faults = inject_faults(&mut cluster, config.fault_every, deadline, config.seed, ms).await?;
    for task in tasks {
        task.await?;
    }
    recover(&mut cluster).await?;

    // The final value of each key: a linearizable read once the cluster is whole again.
    let mut finals = BTreeMap::new();
    for (slot, appends) in appends.iter().enumerate() {
        let last = appends.load(Ordering::Relaxed);
        for n in (0..=last).step_by(APPENDS_PER_KEY as usize) {
            let key = key(slot, n);
            let list = final_read(&client, &http, &key).await?;
            finals.insert(key, list);
        }
    }
    let leaders = watch.finish().await?;
    cluster.shutdown().await;
    let Recorded { ops, mut values } = std::mem::take(&mut *history.lock().unwrap());
    let finals: BTreeMap<String, Vec<u32>> = finals
        .into_iter()
        .map(|(key, list)| (key, list.into_iter().map(|v| values.id(v)).collect()))
        .collect();
    let texts = values.texts();
    Ok(Run {
        report: list_append::check(&ops, &finals).map(|id| texts[id as usize].to_string()),
        faults,
        leaders,
    })
}

/// Until `deadline`, every `every`: heal the previous fault (restart killed nodes), then inject a
/// random new one: kill a node, kill the leader, isolate a minority, cut one link one way, or
/// pause the whole cluster briefly. Returns what it did, with times from `ms`.
pub async fn inject_faults(
    cluster: &mut Cluster,
    every: Duration,
    deadline: Instant,
    seed: u64,
    ms: impl Fn() -> u64,
) -> anyhow::Result<Vec<String>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut faults = Vec::new();
    while Instant::now() + every < deadline {
        tokio::time::sleep(every).await;
        // Undo the previous fault first, so at most one is active at a time.
        recover(cluster).await?;
        let n = cluster.len();
        let text = match rng.random_range(0..5) {
            0 => {
                let id = rng.random_range(0..n);
                cluster.kill(id).await;
                format!("kill n{id}")
            }
            1 => {
                let leader = leader(cluster).await.unwrap_or(0);
                cluster.kill(leader).await;
                format!("kill the leader n{leader}")
            }
            2 => {
                let size = rng.random_range(1..=(n - 1) / 2);
                let mut ids: Vec<u64> = (0..n as u64).collect();
                let minority: Vec<u64> = (0..size)
                    .map(|_| ids.remove(rng.random_range(0..ids.len())))
                    .collect();
                cluster.partition(&[minority.clone(), ids])?;
                format!("isolate {minority:?}")
            }
            3 => {
                let from = rng.random_range(0..n as u64);
                let to = (from + rng.random_range(1..n as u64)) % n as u64;
                cluster.cut(from, to)?;
                format!("cut n{from} → n{to} one way")
            }
            _ => {
                cluster.pause();
                tokio::time::sleep(Duration::from_millis(800)).await;
                cluster.resume().await;
                "pause 800 ms".into()
            }
        };
        faults.push(format!("{:.1}s {text}", ms() as f64 / 1000.0));
    }
    Ok(faults)
}

/// Heals the network and restarts every killed node.
pub async fn recover(cluster: &mut Cluster) -> anyhow::Result<()> {
    cluster.heal().await;
    for id in 0..cluster.len() {
        if !cluster.is_up(id) {
            cluster.restart(id).await?;
        }
    }
    Ok(())
}

async fn leader(cluster: &Cluster) -> Option<usize> {
    let statuses = cluster.statuses().await;
    leader_of(statuses.iter().flatten()).map(|s| s.id as usize)
}

async fn classify_append(resp: reqwest::Result<reqwest::Response>) -> Outcome {
    match resp {
        Ok(r) if r.status().as_u16() == 204 => Outcome::Ok(None),
        Ok(r) if r.status().as_u16() == 503 => match r.text().await {
            Ok(text) if text.starts_with("unavailable:") => Outcome::Failed,
            _ => Outcome::Unknown,
        },
        Ok(_) => Outcome::Unknown,
        // Never connected: the request cannot have reached any node.
        Err(e) if e.is_connect() => Outcome::Failed,
        Err(_) => Outcome::Unknown,
    }
}

async fn classify_read(resp: reqwest::Result<reqwest::Response>) -> Outcome {
    match resp {
        Ok(r) if r.status().as_u16() == 200 => match r.json::<Vec<String>>().await {
            Ok(list) => Outcome::Ok(Some(list)),
            Err(_) => Outcome::Unknown,
        },
        Ok(r) if r.status().as_u16() == 404 => Outcome::Ok(Some(Vec::new())),
        _ => Outcome::Failed,
    }
}

async fn final_read(
    client: &reqwest::Client,
    http: &[String],
    key: &str,
) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        for node in http {
            if let Ok(r) = client
                .get(format!("{node}/keys/{key}"))
                .timeout(Duration::from_secs(10))
                .send()
                .await
            {
                match r.status().as_u16() {
                    200 => return Ok(r.json().await?),
                    404 => return Ok(Vec::new()),
                    _ => {}
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::bail!("no linearizable read of {key} succeeded after the cluster healed")
}
