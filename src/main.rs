//! The `raftkv` command line. `raftkv node HTTP_PORT SELF_ADDR PEER_ADDR...` runs one node of a
//! cluster, as the assignment's `kvstorage.py` did.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use raftkv::config::{self, NodeConfig, Timing};
use raftkv::node::Node;

#[derive(Parser)]
#[command(
    name = "raftkv",
    version,
    about = "A fault-tolerant key/value service on Raft"
)]
struct Cli {
    /// Without a subcommand: `raftkv lab` with its defaults.
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run one node of a cluster. Node ids are the positions of the Raft addresses (SELF_ADDR and
    /// every PEER_ADDR) in sorted order, so every node must be given the same set of addresses.
    Node(NodeArgs),
    /// The lab: a whole cluster in this process on loopback (node i serves Raft on
    /// 127.0.0.1:(6000+i) and HTTP on 127.0.0.1:(8080+i), data in DATA_DIR/node<i>), a dashboard
    /// to watch it and keys to break it. Without a terminal it runs headless, printing the timeline.
    Lab(LabArgs),
    /// Replay the steps of a report question against a real cluster and write what the system
    /// answered (markdown) into OUT: task2, task3, partition-a (leader on the first computer),
    /// partition-b (leader on the second).
    Scenario(ScenarioArgs),
    /// Jepsen-style soak: concurrent clients work through random nodes of an in-process cluster
    /// while a nemesis kills, partitions, cuts and pauses; then the history is checked. Workload
    /// list-append: lost, duplicate, reordered, stale and phantom appends; workload register:
    /// linearizability of PUT/GET (stateright). Exits 1 on any anomaly.
    Nemesis(NemesisArgs),
    /// Read a key through any live node (linearizable unless --local). Exit 4 if it is missing.
    Get {
        key: String,
        /// Answer from the first reachable node's own state, possibly stale.
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Replace a key's value with the given strings (none: an empty list).
    Put {
        key: String,
        values: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Append one string to a key's value (creating the key if it is missing).
    Append {
        key: String,
        value: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Every node's role, term, leader, indexes and lag behind the leader.
    Status {
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Load generator: N keep-alive connections against a running cluster, a warm-up, then a
    /// fixed time; prints throughput, latency percentiles (HDR histogram), errors by kind and its
    /// own CPU use.
    Bench(BenchArgs),
}

#[derive(clap::Args)]
struct BenchArgs {
    #[arg(long, value_enum, default_value = "put")]
    workload: raftkv::bench::Workload,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 2)]
    warmup: u64,
    /// Open loop at this many requests per second in total; 0 = closed loop.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Distinct keys (at most 1000).
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Bytes per PUT value.
    #[arg(long, default_value_t = 16)]
    value_bytes: usize,
    #[command(flatten)]
    client: ClientArgs,
}

/// Options of the client commands. Exit codes: 0 ok, 1 error, 3 unavailable (nothing applied),
/// 4 not found, 5 outcome unknown (a write may have been applied), 6 refused as invalid.
#[derive(clap::Args)]
struct ClientArgs {
    /// Nodes to try, in order, comma-separated (any live one will do).
    #[arg(
        long,
        env = "RAFTKV_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080,http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083,http://127.0.0.1:8084"
    )]
    endpoints: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Give up on one node after this long (ms); a write that times out is reported unknown.
    #[arg(long, default_value_t = 8000)]
    timeout: u64,
}

impl ClientArgs {
    fn client(&self) -> raftkv::client::Client {
        raftkv::client::Client::new(
            self.endpoints.clone(),
            Duration::from_millis(self.timeout),
            self.json,
        )
    }
}

/// Prints a client command's output (errors to stderr) and exits with its code.
fn finish(outcome: raftkv::client::Outcome) -> ! {
    if outcome.code == raftkv::client::exit::OK {
        println!("{}", outcome.output);
    } else {
        eprintln!("{}", outcome.output);
    }
    std::process::exit(outcome.code)
}

#[derive(clap::Args)]
struct NemesisArgs {
    /// How long the clients run.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// A new fault this often (seconds).
    #[arg(long, default_value_t = 3)]
    fault_every: u64,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    #[arg(long, default_value_t = 4)]
    keys: usize,
    /// Seed for the clients' and the nemesis' choices (same seed, same schedule of choices).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    #[arg(long, value_parser = ["list-append", "register"], default_value = "list-append")]
    workload: String,
    /// Read with `?consistency=local` (possibly stale): shows that the checker catches stale reads.
    #[arg(long)]
    local_reads: bool,
    /// Node i serves Raft on 127.0.0.1:(RAFT_PORT+i) and HTTP on 127.0.0.1:(HTTP_PORT+i).
    #[arg(long, default_value_t = 36000)]
    raft_port: u16,
    #[arg(long, default_value_t = 36100)]
    http_port: u16,
}

#[derive(clap::Args)]
struct ScenarioArgs {
    #[arg(value_parser = ["task2", "task3", "partition-a", "partition-b"])]
    name: String,
    /// Folder for the evidence.
    #[arg(long, default_value = "images/evidence")]
    out: PathBuf,
    /// Node i serves Raft on 127.0.0.1:(RAFT_PORT+i).
    #[arg(long, default_value_t = 6000)]
    raft_port: u16,
    /// Node i serves HTTP on 127.0.0.1:(HTTP_PORT+i).
    #[arg(long, default_value_t = 8080)]
    http_port: u16,
}

#[derive(clap::Args)]
struct LabArgs {
    /// Number of nodes (3 to 9).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=9))]
    nodes: u16,
    /// Where the nodes keep their data; reused across runs unless --fresh.
    #[arg(long, default_value = "data/lab")]
    data_dir: PathBuf,
    /// Delete DATA_DIR first and start a brand-new cluster.
    #[arg(long)]
    fresh: bool,
    /// slow: elections take seconds, to follow by eye; normal: the service's defaults.
    #[arg(long, default_value = "normal", value_parser = ["slow", "normal"])]
    timing: String,
    /// No dashboard: print the timeline to stdout (also chosen when there is no terminal).
    #[arg(long)]
    headless: bool,
    /// Node i serves Raft on 127.0.0.1:(RAFT_PORT+i).
    #[arg(long, default_value_t = raftkv::cluster::RAFT_BASE_PORT)]
    raft_port: u16,
    /// Node i serves HTTP on 127.0.0.1:(HTTP_PORT+i).
    #[arg(long, default_value_t = raftkv::cluster::HTTP_BASE_PORT)]
    http_port: u16,
    /// Address of the lab's control API (GET /lab/state, POST /lab/...).
    #[arg(long, default_value = "127.0.0.1:8079")]
    control: std::net::SocketAddr,
    /// A file holding the cluster secret (at least 16 bytes): peers then authenticate each other
    /// and encrypt all Raft traffic; a node without it, or with another, cannot join, vote or
    /// read. Every node of the cluster needs the same secret.
    #[arg(long, env = "RAFTKV_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
}

impl Default for LabArgs {
    fn default() -> Self {
        LabArgs {
            nodes: 5,
            data_dir: PathBuf::from("data/lab"),
            fresh: false,
            timing: "normal".into(),
            headless: false,
            raft_port: raftkv::cluster::RAFT_BASE_PORT,
            http_port: raftkv::cluster::HTTP_BASE_PORT,
            control: ([127, 0, 0, 1], 8079).into(),
            // `raftkv` alone bypasses clap: honour the variable here.
            cluster_secret_file: std::env::var_os("RAFTKV_CLUSTER_SECRET_FILE").map(PathBuf::from),
        }
    }
}

#[derive(clap::Args)]
struct NodeArgs {
    /// Port of this node's HTTP API (the key/value service and /admin/status).
    http_port: u16,
    /// This node's Raft address, host:port (peers connect here).
    self_addr: String,
    /// The Raft addresses of the other nodes.
    #[arg(required = true)]
    peer_addrs: Vec<String>,
    /// Where this node keeps its Raft log, vote and snapshot [default: data/<SELF_ADDR>].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// IP address the HTTP API listens on [default: the IP of SELF_ADDR].
    #[arg(long)]
    http_host: Option<std::net::IpAddr>,
    /// Election timeout range in ms: a follower that hears no leader for a random time in this
    /// range (after the leader's lease, equal to MAX) starts an election.
    #[arg(long, default_value = "500..1000", value_parser = config::parse_range)]
    election_timeout: (u64, u64),
    /// Leader heartbeat interval in ms; must be below the election timeout minimum.
    #[arg(long, default_value_t = 100)]
    heartbeat: u64,
    /// Disable pre-vote (then a node returning from a partition disrupts the leader with a higher term).
    #[arg(long)]
    no_pre_vote: bool,
    /// How long a write or linearizable read may take, retries included, before it fails with 503 (ms).
    #[arg(long, default_value_t = 5000)]
    request_timeout: u64,
    /// Take a snapshot (and purge the log behind it) every this many log entries.
    #[arg(long, default_value_t = raftkv::raft::SNAPSHOT_EVERY)]
    snapshot_every: u64,
    /// HTTP requests served at once; beyond that a request gets 503 at once instead of queueing.
    #[arg(long, default_value_t = config::MAX_IN_FLIGHT)]
    max_in_flight: usize,
    /// Log lines on stderr as text or as JSON objects (one per line). RUST_LOG filters them
    /// (default: warn, and raftkv's elections, leader and membership changes at info).
    #[arg(long, env = "RAFTKV_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// A file holding the cluster secret (at least 16 bytes): peers then authenticate each other
    /// and encrypt all Raft traffic; a node without it, or with another, cannot join, vote or
    /// read. Every node of the cluster needs the same secret.
    #[arg(long, env = "RAFTKV_CLUSTER_SECRET_FILE")]
    cluster_secret_file: Option<PathBuf>,
}

fn node_config(args: NodeArgs) -> anyhow::Result<NodeConfig> {
    let self_addr = config::resolve(&args.self_addr).map_err(anyhow::Error::msg)?;
    let peers = args
        .peer_addrs
        .iter()
        .map(|a| config::resolve(a))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    let (id, members) = config::assign_ids(self_addr, &peers).map_err(anyhow::Error::msg)?;
    let (election_min_ms, election_max_ms) = args.election_timeout;
    if args.heartbeat == 0 || args.heartbeat >= election_min_ms {
        bail!(
            "--heartbeat ({} ms) must be positive and below the election timeout minimum ({election_min_ms} ms)",
            args.heartbeat
        );
    }
    let data_dir = args.data_dir.unwrap_or_else(|| {
        PathBuf::from("data").join(args.self_addr.replace([':', '/', '[', ']'], "_"))
    });
    Ok(NodeConfig {
        id,
        raft_addr: self_addr,
        http_addr: std::net::SocketAddr::new(
            args.http_host.unwrap_or(self_addr.ip()),
            args.http_port,
        ),
        members,
        data_dir,
        timing: Timing {
            heartbeat_ms: args.heartbeat,
            election_min_ms,
            election_max_ms,
            pre_vote: !args.no_pre_vote,
        },
        request_timeout: Duration::from_millis(args.request_timeout),
        snapshot_every: args.snapshot_every.max(1),
        max_in_flight: args.max_in_flight.max(1),
        secret: secret(args.cluster_secret_file.as_deref())?,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let command = Cli::parse()
        .command
        .unwrap_or(Command::Lab(LabArgs::default()));
    if let Command::Lab(args) = &command
        && args.fresh
        && args.data_dir.exists()
    {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot delete {}", args.data_dir.display()))?;
    }
    init_logging(&command)?;
    match command {
        Command::Lab(args) => run_lab(args).await?,
        Command::Nemesis(args) => {
            if !run_nemesis(args).await? {
                std::process::exit(1);
            }
        }
        Command::Get { key, local, client } => finish(client.client().get(&key, local).await),
        Command::Put {
            key,
            values,
            client,
        } => {
            let body = serde_json::json!({"type": "PUT", "value": values});
            finish(client.client().write(&key, body).await)
        }
        Command::Append { key, value, client } => {
            let body = serde_json::json!({"type": "APPEND", "value": value});
            finish(client.client().write(&key, body).await)
        }
        Command::Status { client } => finish(client.client().status().await),
        Command::Bench(args) => {
            let json = args.client.json;
            let report = raftkv::bench::run(raftkv::bench::Config {
                endpoints: args.client.endpoints.clone(),
                workload: args.workload,
                connections: args.connections.max(1),
                warmup: Duration::from_secs(args.warmup),
                duration: Duration::from_secs(args.seconds.max(1)),
                rate: args.rate,
                keys: args.keys.clamp(1, 1000),
                value_bytes: args.value_bytes,
            })
            .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{}", report.text());
            }
        }
        Command::Scenario(args) => {
            let options = raftkv::scenario::Options {
                out: args.out,
                raft_port: args.raft_port,
                http_port: args.http_port,
            };
            let path = raftkv::scenario::run(&args.name, &options).await?;
            println!("{}", path.display());
        }
        Command::Node(args) => {
            let config = node_config(args)?;
            let (id, dir) = (config.id, config.data_dir.clone());
            let bound = config.request_timeout;
            let node = Node::start(config, Default::default())
                .await
                .with_context(|| format!("node {id} ({}) did not start", dir.display()))?;
            eprintln!(
                "raftkv node {id}: HTTP on http://{}, data in {}",
                node.http_addr(),
                dir.display()
            );
            stop_signal().await?;
            eprintln!(
                "raftkv node {id}: stopping (leadership handed over first if this node leads)"
            );
            node.stop_gracefully(bound).await;
        }
    }
    Ok(())
}

/// Runs a nemesis soak and prints what the checker found; false if it found an anomaly.
async fn run_nemesis(args: NemesisArgs) -> anyhow::Result<bool> {
    use raftkv::check::{nemesis, register};
    let dir = tempfile::tempdir()?;
    let raft: Vec<u16> = (0..5).map(|i| args.raft_port + i).collect();
    let http: Vec<u16> = (0..5).map(|i| args.http_port + i).collect();
    let mut configs =
        raftkv::cluster::loopback_configs(&raft, &http, dir.path(), Timing::default());
    configs
        .iter_mut()
        .for_each(|c| c.request_timeout = Duration::from_secs(2));
    let cluster = raftkv::cluster::Cluster::start(configs).await?;
    let (duration, fault_every) = (
        Duration::from_secs(args.seconds),
        Duration::from_secs(args.fault_every.max(1)),
    );
    if args.workload == "register" {
        let config = register::Config {
            keys: args.keys,
            clients_per_key: args.clients.div_ceil(args.keys.max(1)),
            duration,
            fault_every,
            seed: args.seed,
            think: Duration::from_millis(50),
            local_reads: args.local_reads,
            check_budget: Duration::from_secs(300),
        };
        let run = register::run(cluster, config).await?;
        for fault in &run.faults {
            println!("fault {fault}");
        }
        println!(
            "ops {} / ok {} / unknown {} / non-linearizable keys {} (checked in {:.1} s)",
            run.ops,
            run.ok,
            run.unknown,
            run.violations.len(),
            run.checked_in.as_secs_f64()
        );
        for v in &run.violations {
            println!("ANOMALY {v}");
        }
        for u in &run.undecided {
            println!("UNDECIDED {u}");
        }
        return Ok(run.violations.is_empty() && run.undecided.is_empty());
    }
    let config = nemesis::Config {
        clients: args.clients,
        keys: args.keys,
        duration,
        fault_every,
        seed: args.seed,
        local_reads: args.local_reads,
    };
    let run = nemesis::run(cluster, config).await?;
    for fault in &run.faults {
        println!("fault {fault}");
    }
    let r = &run.report;
    println!(
        "ops {} / ok {} / failed {} / unknown {} / anomalies {}",
        r.ops,
        r.ok,
        r.failed,
        r.unknown,
        r.anomalies.len()
    );
    for a in &r.anomalies {
        println!("ANOMALY {a}");
    }
    Ok(r.anomalies.is_empty())
}

/// Waits for Ctrl-C, or SIGTERM where there is such a thing.
async fn stop_signal() -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            stopped = tokio::signal::ctrl_c() => stopped,
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    {
        tokio::signal::ctrl_c().await
    }
}

fn secret(file: Option<&std::path::Path>) -> anyhow::Result<Option<raftkv::net::Secret>> {
    file.map(raftkv::net::Secret::from_file)
        .transpose()
        .map_err(anyhow::Error::msg)
}

async fn run_lab(args: LabArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let timing = if args.timing == "slow" {
        raftkv::cluster::SLOW
    } else {
        Timing::default()
    };
    let n = args.nodes;
    let raft: Vec<u16> = (0..n).map(|i| args.raft_port + i).collect();
    let http: Vec<u16> = (0..n).map(|i| args.http_port + i).collect();
    let mut configs = raftkv::cluster::loopback_configs(&raft, &http, &args.data_dir, timing);
    let secret = secret(args.cluster_secret_file.as_deref())?;
    configs.iter_mut().for_each(|c| c.secret = secret.clone());
    let control = tokio::net::TcpListener::bind(args.control)
        .await
        .with_context(|| {
            format!(
                "cannot listen for the control API on {} (use --control)",
                args.control
            )
        })?;
    let cluster = raftkv::cluster::Cluster::start(configs)
        .await
        .context("the lab cluster did not start")?;
    let (lab, engine) = raftkv::lab::spawn(cluster).await;
    let api = raftkv::lab::control::router(lab.clone());
    tokio::spawn(async move { axum::serve(control, api).await });
    let headless =
        args.headless || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal();
    if headless {
        for node in &lab.state().nodes {
            if let Some(s) = &node.status {
                println!(
                    "n{}: HTTP http://{}  Raft {}",
                    s.id, s.http_addr, s.raft_addr
                );
            }
        }
        println!(
            "control API on http://{}; Ctrl-C stops the lab, its data stays in {}",
            args.control,
            args.data_dir.display()
        );
        let mut state = lab.state.clone();
        let mut printed = 0u64;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                changed = state.changed() => {
                    if changed.is_err() { break; }
                    let s = state.borrow().clone();
                    for entry in s.timeline.iter().filter(|e| e.at_ms > printed || printed == 0) {
                        println!("{:>7.1}s {}", entry.at_ms as f64 / 1000.0, entry.text);
                    }
                    printed = s.timeline.last().map_or(printed, |e| e.at_ms.max(printed));
                }
            }
        }
    } else {
        raftkv::lab::tui::run(lab.clone()).await?;
    }
    drop(lab);
    // The engine shuts the cluster down once every handle is gone (the control API holds one).
    engine.abort();
    Ok(())
}

/// Logs go to stderr, except under the dashboard, where they would overwrite the screen: then they
/// go to DATA_DIR/lab.log. `RUST_LOG` filters as usual.
fn init_logging(command: &Command) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // A node's operator wants its elections and leader changes; the in-process clusters of the
    // scenarios and soaks would print those for every node, drowning their own output.
    let default = match command {
        Command::Node(_) | Command::Lab(_) => "warn,openraft=error,raftkv=info",
        _ => "warn,openraft=error",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match command {
        Command::Lab(args)
            if !args.headless
                && std::io::stdout().is_terminal()
                && std::io::stdin().is_terminal() =>
        {
            std::fs::create_dir_all(&args.data_dir)?;
            let path = args.data_dir.join("lab.log");
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            builder
                .with_ansi(false)
                .with_writer(std::sync::Mutex::new(file))
                .init();
        }
        Command::Node(args) if args.log_format == "json" => {
            builder.json().with_writer(std::io::stderr).init()
        }
        _ => builder.with_writer(std::io::stderr).init(),
    }
    Ok(())
}
