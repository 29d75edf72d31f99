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
    /// Run a whole cluster in this process on loopback: node i serves Raft on 127.0.0.1:(6000+i)
    /// and HTTP on 127.0.0.1:(8080+i), with its data in DATA_DIR/node<i>. Prints every change of
    /// role, term or leader until Ctrl-C.
    Lab(LabArgs),
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
}

impl Default for LabArgs {
    fn default() -> Self {
        LabArgs {
            nodes: 5,
            data_dir: PathBuf::from("data/lab"),
            fresh: false,
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
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,openraft=error,raftkv=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse()
        .command
        .unwrap_or(Command::Lab(LabArgs::default()))
    {
        Command::Lab(args) => run_lab(args).await?,
        Command::Node(args) => {
            let config = node_config(args)?;
            let (id, dir) = (config.id, config.data_dir.clone());
            let node = Node::start(config, Default::default())
                .await
                .with_context(|| format!("node {id} ({}) did not start", dir.display()))?;
            eprintln!(
                "raftkv node {id}: HTTP on http://{}, data in {}",
                node.http_addr(),
                dir.display()
            );
            tokio::signal::ctrl_c().await?;
            node.shutdown().await;
        }
    }
    Ok(())
}

async fn run_lab(args: LabArgs) -> anyhow::Result<()> {
    if args.fresh && args.data_dir.exists() {
        std::fs::remove_dir_all(&args.data_dir)
            .with_context(|| format!("cannot delete {}", args.data_dir.display()))?;
    }
    let configs =
        raftkv::cluster::lab_configs(args.nodes as usize, &args.data_dir, Timing::default());
    let mut cluster = raftkv::cluster::Cluster::start(configs)
        .await
        .context("the lab cluster did not start")?;
    for id in 0..cluster.len() {
        let c = cluster.config(id);
        eprintln!(
            "node {id}: HTTP http://{}  Raft {}  data {}",
            c.http_addr,
            c.raft_addr,
            c.data_dir.display()
        );
    }
    eprintln!(
        "Ctrl-C stops the cluster; its data stays in {}.",
        args.data_dir.display()
    );
    let mut last = String::new();
    let mut ticks = tokio::time::interval(Duration::from_millis(200));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = ticks.tick() => {
                let line = cluster
                    .statuses()
                    .await
                    .iter()
                    .map(|s| match s {
                        Some(s) => format!("n{}:{} t{} commit {}", s.id, s.role, s.term, s.commit_index.map_or("-".into(), |i| i.to_string())),
                        None => "down".into(),
                    })
                    .collect::<Vec<_>>()
                    .join(" | ");
                let roles: String = line.split(" | ").map(|p| p.split(" commit").next().unwrap_or("")).collect();
                if roles != last {
                    println!("{line}");
                    last = roles;
                }
            }
        }
    }
    cluster.shutdown().await;
    Ok(())
}
