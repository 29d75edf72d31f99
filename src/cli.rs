//! The command line of the `raftkv` binary: every subcommand's arguments (clap), and turning
//! `raftkv node`'s arguments into a [`NodeConfig`]. Part of the binary, not of the library.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use clap::{Parser, Subcommand};
use raftkv::config::{self, AdminToken, NodeConfig, Timing};

#[derive(Parser)]
#[command(
    name = "raftkv",
    version,
    about = "A fault-tolerant key/value service on Raft"
)]
pub struct Cli {
    /// Without a subcommand: `raftkv lab` with its defaults.
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run one node of a cluster. Node ids are the positions of the Raft addresses (SELF_ADDR and
    /// every PEER_ADDR) in sorted order, so every node must be given the same set of addresses.
    /// A server added later is started with --join instead of PEER_ADDRs.
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
    /// Change the cluster's membership at runtime, through any live node (the leader applies it).
    #[command(subcommand)]
    Member(MemberVerb),
    /// Load generator: N keep-alive connections against a running cluster, a warm-up, then a
    /// fixed time; prints throughput, latency percentiles (HDR histogram), errors by kind and its
    /// own CPU use.
    Bench(BenchArgs),
}

#[derive(Subcommand)]
pub enum MemberVerb {
    /// Add the server whose Raft address is RAFT_ADDR as a learner and print its node id. Then
    /// start it with `raftkv node HTTP_PORT RAFT_ADDR --join URL` (it gets the same id); or skip
    /// this step: --join adds the server itself.
    Add {
        raft_addr: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Make learner ID a voter (refused until it is nearly caught up with the leader).
    Promote {
        id: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Remove server ID from the cluster (a leader hands over leadership first).
    Remove {
        id: u64,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// What the endpoints are: raftkv (or another server of the assignment's API), or etcd's
    /// v3 JSON gateway.
    #[arg(long, value_enum, default_value = "raftkv")]
    pub system: raftkv::bench::System,
    #[arg(long, value_enum, default_value = "put")]
    pub workload: raftkv::bench::Workload,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 16)]
    pub connections: usize,
    /// Measured seconds (after the warm-up).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    #[arg(long, default_value_t = 2)]
    pub warmup: u64,
    /// Open loop at this many requests per second in total; 0 = closed loop.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Distinct keys (at most 1000).
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Bytes per PUT value (also of the --preload values). A PUT's body must stay under the
    /// 1 MiB request limit, so at most about 1,048,000.
    #[arg(long, default_value_t = 16)]
    pub value_bytes: usize,
    /// Before the run, fill the store with this much data (e.g. 100M, 1G: bytes of values, as
    /// writes of --value-bytes each to keys of their own), timed and reported apart.
    #[arg(long, default_value = "0", value_parser = parse_size, value_name = "BYTES")]
    pub preload: u64,
    /// Inject a fault and time it: failover kills the leader (kill -9) a third of the way into
    /// the run under writes to every endpoint; catch-up pauses a follower (kill -STOP) until it is
    /// --behind writes are acknowledged, then resumes it. Needs --pids.
    #[arg(long, value_enum, requires = "pids")]
    pub fault: Option<raftkv::bench::Fault>,
    /// The server processes, one pid per endpoint, in the same order.
    #[arg(long, value_delimiter = ',')]
    pub pids: Vec<u32>,
    /// Catch-up: writes acknowledged while the follower is paused (the log entries they need
    /// may be fewer: the leader batches writes under load).
    #[arg(long, default_value_t = 10_000)]
    pub behind: u64,
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of the client commands. Exit codes: 0 ok, 1 error, 3 unavailable (nothing applied),
/// 4 not found, 5 outcome unknown (a write may have been applied), 6 refused as invalid.
#[derive(clap::Args)]
pub struct ClientArgs {
    /// Nodes to try, in order, comma-separated (any live one will do).
    #[arg(
        long,
        env = "RAFTKV_ENDPOINTS",
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080,http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083,http://127.0.0.1:8084"
    )]
    pub endpoints: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Give up on one node after this long (ms); a write that times out is reported unknown.
    #[arg(long, default_value_t = 8000)]
    pub timeout: u64,
    /// A file whose first line is the cluster's admin token, sent with membership changes (the
    /// nodes' --admin-token-file).
    #[arg(long, env = "RAFTKV_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Trust the certificate authority in this PEM file for https:// endpoints (the nodes'
    /// --tls-cert, or the CA that signed it), besides the system's web roots.
    #[arg(long, env = "RAFTKV_CA_FILE", value_name = "PEM")]
    pub ca_file: Option<PathBuf>,
}

impl ClientArgs {
    pub fn client(&self) -> raftkv::client::Client {
        raftkv::client::Client::new(
            self.endpoints.clone(),
            Duration::from_millis(self.timeout),
            self.json,
        )
    }

    /// [`ClientArgs::client`], trusting `--ca-file` when given.
    pub fn tls_client(&self) -> anyhow::Result<raftkv::client::Client> {
        let client = self.client();
        match &self.ca_file {
            None => Ok(client),
            Some(file) => client.trusting(file).map_err(anyhow::Error::msg),
        }
    }

    /// The client for membership changes: with the admin token, if a file names one.
    pub fn admin_client(&self) -> anyhow::Result<raftkv::client::Client> {
        let token = admin_token(self.admin_token_file.as_deref())?;
        Ok(self
            .tls_client()?
            .with_admin_token(token.map(|t| t.secret().to_owned())))
    }
}

/// Prints a client command's output (errors to stderr) and exits with its code.
pub fn finish(outcome: raftkv::client::Outcome) -> ! {
    if outcome.code == raftkv::client::exit::OK {
        println!("{}", outcome.output);
    } else {
        eprintln!("{}", outcome.output);
    }
    std::process::exit(outcome.code)
}

#[derive(clap::Args)]
pub struct NemesisArgs {
    /// How long the clients run.
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
    /// A new fault this often (seconds).
    #[arg(long, default_value_t = 3)]
    pub fault_every: u64,
    #[arg(long, default_value_t = 8)]
    pub clients: usize,
    #[arg(long, default_value_t = 4)]
    pub keys: usize,
    /// Seed for the clients' and the nemesis' choices (same seed, same schedule of choices).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[arg(long, value_parser = ["list-append", "register"], default_value = "list-append")]
    pub workload: String,
    /// Read with `?consistency=local` (possibly stale): shows that the checker catches stale reads.
    #[arg(long)]
    pub local_reads: bool,
    /// Node i serves Raft on 127.0.0.1:(RAFT_PORT+i) and HTTP on 127.0.0.1:(HTTP_PORT+i).
    // Below Linux's ephemeral range (32768-60999 by default): a port in it can be taken by any
    // outgoing connection, and a restarted node must get its own port back.
    #[arg(long, default_value_t = 26000)]
    pub raft_port: u16,
    #[arg(long, default_value_t = 26100)]
    pub http_port: u16,
}

#[derive(clap::Args)]
pub struct ScenarioArgs {
    /// task2, task3: five node processes. two-hosts-a, two-hosts-b: the partition on two
    /// network namespaces with the assignment's scripts, leader on the first (a) or second (b)
    /// computer (needs root). partition-a, partition-b: the same in one process.
    #[arg(value_parser = raftkv::scenario::NAMES)]
    pub name: String,
    /// Folder for the evidence.
    #[arg(long, default_value = "images/evidence")]
    pub out: PathBuf,
    /// Node i serves Raft on 127.0.0.1:(RAFT_PORT+i).
    #[arg(long, default_value_t = 6000)]
    pub raft_port: u16,
    /// Node i serves HTTP on 127.0.0.1:(HTTP_PORT+i).
    #[arg(long, default_value_t = 8080)]
    pub http_port: u16,
    /// The partition scripts, for two-hosts-*.
    #[arg(long, default_value = "bin/partition")]
    pub scripts: PathBuf,
}

#[derive(clap::Args)]
pub struct LabArgs {
    /// Number of nodes (3 to 9).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(3..=9))]
    pub nodes: u16,
    /// Where the nodes keep their data; reused across runs unless --fresh.
    #[arg(long, default_value = "data/lab")]
    pub data_dir: PathBuf,
    /// Delete DATA_DIR first and start a brand-new cluster.
    #[arg(long)]
    pub fresh: bool,
    /// slow: elections take seconds, to follow by eye; normal: the service's defaults.
    #[arg(long, default_value = "normal")]
    pub timing: raftkv::lab::TimingPreset,
    /// No dashboard: print the timeline to stdout (also chosen when there is no terminal).
    #[arg(long)]
    pub headless: bool,
    /// Node i serves Raft on 127.0.0.1:(RAFT_PORT+i).
    #[arg(long, default_value_t = raftkv::cluster::RAFT_BASE_PORT)]
    pub raft_port: u16,
    /// Node i serves HTTP on 127.0.0.1:(HTTP_PORT+i).
    #[arg(long, default_value_t = raftkv::cluster::HTTP_BASE_PORT)]
    pub http_port: u16,
    /// Address of the lab's control API (GET /lab/state, POST /lab/...).
    #[arg(long, default_value = "127.0.0.1:8079")]
    pub control: std::net::SocketAddr,
    /// A file holding the cluster secret (at least 16 bytes): peers then authenticate each other
    /// and encrypt all Raft traffic; a node without it, or with another, cannot join, vote or
    /// read. Every node of the cluster needs the same secret.
    #[arg(long, env = "RAFTKV_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Record the session (every message, status, command and timeline line) in
    /// DATA_DIR/trace.NNNNNN.jsonl, keeping at most about this many MiB: the oldest segments go
    /// first. 0: record nothing. A new session moves the previous trace to DATA_DIR/trace-previous/.
    #[arg(long, default_value_t = raftkv::lab::trace::DEFAULT_CAP_MIB, value_name = "MIB")]
    pub trace_mib: u64,
    /// Replay a recorded trace (a trace file, or a directory holding trace.*.jsonl) in the same
    /// dashboard instead of running a cluster: no nodes, no ports.
    #[arg(long, value_name = "TRACE", conflicts_with = "fresh")]
    pub replay: Option<PathBuf>,
    /// With --replay --headless: print the state published at this moment (JSON, as
    /// GET /lab/state shows it), e.g. 12.5s or 12500ms. Without it the whole timeline is printed.
    #[arg(long, requires = "replay", value_parser = parse_moment, value_name = "T")]
    pub at: Option<u64>,
    /// With --replay: write pictures of the run into DIR instead of showing it: lamport.svg
    /// (every message an arrow from sending to delivery, one line per node) and timeseries.svg
    /// (the lab's client requests, latency over time, kills and cuts shaded).
    #[arg(long, requires = "replay", value_name = "DIR")]
    pub export: Option<PathBuf>,
    /// With --export: from this moment (e.g. 2.5s; default: the trace's start).
    #[arg(long, requires = "export", value_parser = parse_moment, value_name = "T")]
    pub from: Option<u64>,
    /// With --export: up to this moment (default: the trace's end).
    #[arg(long, requires = "export", value_parser = parse_moment, value_name = "T")]
    pub to: Option<u64>,
    /// Run a guided exercise (a built-in one by name, or a .toml file): a fresh cluster in
    /// DATA_DIR/exercise-NAME, each step explained, a prediction asked, then revealed and
    /// checked. With --headless it runs unattended and exits 0 when every check held, 1 if not.
    #[arg(long, value_name = "NAME", conflicts_with = "replay")]
    pub exercise: Option<String>,
    /// List the built-in exercises, one a line, its name first.
    #[arg(long)]
    pub list_exercises: bool,
}

/// A moment in a trace in milliseconds: "12.5s", "12500ms" or "12.5" (seconds).
fn parse_moment(text: &str) -> Result<u64, String> {
    let (number, scale) = match text.strip_suffix("ms") {
        Some(ms) => (ms, 1.0),
        None => (text.strip_suffix('s').unwrap_or(text), 1000.0),
    };
    match number.trim().parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok((v * scale).round() as u64),
        _ => Err(format!(
            "{text:?} is not a moment: write seconds (12.5s) or milliseconds (12500ms)"
        )),
    }
}

impl Default for LabArgs {
    fn default() -> Self {
        LabArgs {
            nodes: 5,
            data_dir: PathBuf::from("data/lab"),
            fresh: false,
            timing: raftkv::lab::TimingPreset::Normal,
            headless: false,
            raft_port: raftkv::cluster::RAFT_BASE_PORT,
            http_port: raftkv::cluster::HTTP_BASE_PORT,
            control: ([127, 0, 0, 1], 8079).into(),
            // `raftkv` alone bypasses clap: honour the variable here.
            cluster_secret_file: std::env::var_os("RAFTKV_CLUSTER_SECRET_FILE").map(PathBuf::from),
            trace_mib: raftkv::lab::trace::DEFAULT_CAP_MIB,
            replay: None,
            at: None,
            export: None,
            from: None,
            to: None,
            exercise: None,
            list_exercises: false,
        }
    }
}

#[derive(clap::Args)]
pub struct NodeArgs {
    /// Port of this node's HTTP API (the key/value service and /admin/status).
    pub http_port: u16,
    /// This node's Raft address, host:port (peers connect here).
    pub self_addr: String,
    /// The Raft addresses of the other founding nodes.
    #[arg(required_unless_present = "join")]
    pub peer_addrs: Vec<String>,
    /// Join a running cluster instead of founding one: HTTP addresses of its members
    /// (comma-separated; any live one will do). On its first start the node is added as a
    /// learner and catches up; promote it with `raftkv member promote ID` to make it vote.
    #[arg(long, value_delimiter = ',', conflicts_with = "peer_addrs")]
    pub join: Vec<String>,
    /// Trust this certificate authority (PEM) when --join asks members over https:// (besides
    /// the system's web roots).
    #[arg(long, requires = "join", value_name = "PEM")]
    pub join_ca_file: Option<PathBuf>,
    /// Where this node keeps its Raft log, vote and snapshot [default: data/<SELF_ADDR>].
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// IP address the HTTP API listens on [default: the IP of SELF_ADDR].
    #[arg(long)]
    pub http_host: Option<std::net::IpAddr>,
    /// Election timeout range in ms: a follower that hears no leader for a random time in this
    /// range (after the leader's lease, equal to MAX) starts an election.
    #[arg(long, default_value = "250..400", value_parser = config::parse_range)]
    pub election_timeout: (u64, u64),
    /// Leader heartbeat interval in ms; must be below the election timeout minimum.
    #[arg(long, default_value_t = 50)]
    pub heartbeat: u64,
    /// Disable pre-vote (then a node returning from a partition disrupts the leader with a higher term).
    #[arg(long)]
    pub no_pre_vote: bool,
    /// How long a write or linearizable read may take, retries included, before it fails with 503 (ms).
    #[arg(long, default_value_t = 5000)]
    pub request_timeout: u64,
    /// Take a snapshot (and purge the log behind it) every this many log entries.
    #[arg(long, default_value_t = raftkv::raft::SNAPSHOT_EVERY)]
    pub snapshot_every: u64,
    /// Also take a snapshot (and purge the log behind it) once the Raft log takes this many MiB
    /// on disk: with big values, entry counts alone let the log grow to gigabytes.
    #[arg(long, default_value_t = raftkv::config::LOG_BYTES_LIMIT >> 20, value_name = "MIB")]
    pub log_limit: u64,
    /// Refuse new writes (503, with the reason) while the data directory's disk has less than
    /// this many MiB free, instead of letting Raft hit a full disk, which stops the node.
    #[arg(long, default_value_t = raftkv::config::DISK_RESERVE >> 20, value_name = "MIB")]
    pub disk_reserve: u64,
    /// A snapshot goes to a follower in pieces of at most this many KiB (neither side holds more
    /// of it in memory at a time).
    #[arg(long, default_value_t = (config::SNAPSHOT_CHUNK >> 10) as u64, value_name = "KIB")]
    pub snapshot_chunk: u64,
    /// Largest message between nodes, in MiB (8 to 256); bigger ones are refused. Bounds memory
    /// per connection, not the size of the data.
    #[arg(long, default_value_t = (raftkv::net::MAX_FRAME >> 20) as u64, value_name = "MIB")]
    pub max_message: u64,
    /// HTTP requests served at once; beyond that a request gets 503 at once instead of queueing.
    #[arg(long, default_value_t = config::MAX_IN_FLIGHT)]
    pub max_in_flight: usize,
    /// Log lines on stderr as text or as JSON objects (one per line). RUST_LOG filters them
    /// (default: warn, and raftkv's elections, leader and membership changes at info).
    #[arg(long, env = "RAFTKV_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// A file holding the cluster secret (at least 16 bytes): peers then authenticate each other
    /// and encrypt all Raft traffic; a node without it, or with another, cannot join, vote or
    /// read. Every node of the cluster needs the same secret.
    #[arg(long, env = "RAFTKV_CLUSTER_SECRET_FILE")]
    pub cluster_secret_file: Option<PathBuf>,
    /// A file whose first line is the admin token: membership changes over HTTP (add, promote,
    /// remove) then need `Authorization: Bearer TOKEN`, from anywhere. Without it they are
    /// accepted only from this machine (loopback). A server started with --join sends it too.
    #[arg(long, env = "RAFTKV_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Serve HTTPS instead of HTTP on the HTTP port, with this certificate chain (PEM); needs
    /// --tls-key. Clients then use https:// and, for a certificate of your own CA, --ca-file.
    #[arg(long, requires = "tls_key", value_name = "PEM")]
    pub tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, requires = "tls_cert", value_name = "PEM")]
    pub tls_key: Option<PathBuf>,
}

pub fn node_config(args: NodeArgs) -> anyhow::Result<NodeConfig> {
    let self_addr = config::resolve(&args.self_addr).map_err(anyhow::Error::msg)?;
    let start = if args.join.is_empty() {
        let peers = args
            .peer_addrs
            .iter()
            .map(|a| config::resolve(a))
            .collect::<Result<Vec<_>, _>>()
            .map_err(anyhow::Error::msg)?;
        let (id, members) = config::assign_ids(self_addr, &peers).map_err(anyhow::Error::msg)?;
        config::Start::Founding { id, members }
    } else {
        config::Start::Join {
            via: args.join,
            ca: args.join_ca_file,
        }
    };
    let (election_min_ms, election_max_ms) = args.election_timeout;
    if args.heartbeat == 0 || args.heartbeat >= election_min_ms {
        bail!(
            "--heartbeat ({} ms) must be positive and below the election timeout minimum ({election_min_ms} ms)",
            args.heartbeat
        );
    }
    let transfer = config::Transfer {
        snapshot_chunk: args.snapshot_chunk.saturating_mul(1 << 10) as usize,
        max_message: args.max_message.saturating_mul(1 << 20) as usize,
    };
    transfer.validate().map_err(anyhow::Error::msg)?;
    let data_dir = args.data_dir.unwrap_or_else(|| {
        PathBuf::from("data").join(args.self_addr.replace([':', '/', '[', ']'], "_"))
    });
    Ok(NodeConfig {
        start,
        raft_addr: self_addr,
        http_addr: std::net::SocketAddr::new(
            args.http_host.unwrap_or(self_addr.ip()),
            args.http_port,
        ),
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
        log_bytes_limit: args.log_limit.max(1).saturating_mul(1 << 20),
        disk_reserve: args.disk_reserve << 20,
        secret: secret(args.cluster_secret_file.as_deref())?,
        admin_token: admin_token(args.admin_token_file.as_deref())?,
        tls: args
            .tls_cert
            .zip(args.tls_key)
            .map(|(cert, key)| raftkv::config::TlsFiles { cert, key }),
        transfer,
    })
}

pub fn admin_token(file: Option<&std::path::Path>) -> anyhow::Result<Option<AdminToken>> {
    file.map(AdminToken::from_file)
        .transpose()
        .map_err(anyhow::Error::msg)
}

pub fn secret(file: Option<&std::path::Path>) -> anyhow::Result<Option<raftkv::net::Secret>> {
    file.map(raftkv::net::Secret::from_file)
        .transpose()
        .map_err(anyhow::Error::msg)
}

/// A size in bytes: a number with an optional K, M or G suffix (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((at, _)) => s.split_at(at),
        None => (s, ""),
    };
    let shift = match unit
        .to_ascii_uppercase()
        .trim_end_matches("IB")
        .trim_end_matches('B')
    {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        _ => {
            return Err(format!(
                "{s:?}: a size is a number with an optional K, M or G suffix"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?}: a size is a number with an optional K, M or G suffix"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command line's timing defaults are written out for `--help`; they must be the same
    /// as the library's, which the lab and the tests use.
    #[test]
    fn node_timing_defaults_are_the_library_defaults() {
        let cli = Cli::parse_from(["raftkv", "node", "8080", "127.0.0.1:6000", "127.0.0.1:6001"]);
        let Some(Command::Node(args)) = cli.command else {
            panic!("not the node command")
        };
        assert_eq!(node_config(args).unwrap().timing, Timing::default());
    }

    #[test]
    fn sizes_take_binary_suffixes_and_refuse_anything_else() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("4KiB"), Ok(4 << 10));
        assert_eq!(parse_size("7b"), Ok(7));
        assert!(parse_size("1T").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn transfer_sizes_that_do_not_fit_together_are_refused() {
        let args = |extra: &[&str]| {
            let mut argv = vec!["raftkv", "node", "8080", "127.0.0.1:6000", "127.0.0.1:6001"];
            argv.extend_from_slice(extra);
            match Cli::parse_from(argv).command {
                Some(Command::Node(args)) => node_config(args).map(|c| c.transfer),
                _ => panic!("not the node command"),
            }
        };
        assert_eq!(args(&[]).unwrap(), config::Transfer::default());
        assert!(
            args(&["--max-message", "4"]).is_err(),
            "below an AppendEntries"
        );
        assert!(args(&["--snapshot-chunk", "8192", "--max-message", "8"]).is_err());
        let small = args(&["--snapshot-chunk", "64", "--max-message", "8"]).unwrap();
        assert_eq!(
            (small.snapshot_chunk, small.max_message),
            (64 << 10, 8 << 20)
        );
    }
}
