//! The `raftkv` command line. `raftkv node HTTP_PORT SELF_ADDR PEER_ADDR...` runs one node of a
//! cluster, as the assignment's `kvstorage.py` did.

use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use raftkv::config::Timing;
use raftkv::node::Node;

mod cli;
use cli::{Cli, Command, LabArgs, MemberVerb, NemesisArgs, finish, node_config, secret};

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
        Command::Get { key, local, client } => finish(client.tls_client()?.get(&key, local).await),
        Command::Put {
            key,
            values,
            client,
        } => {
            let body = serde_json::json!({"type": "PUT", "value": values});
            finish(client.tls_client()?.write(&key, body).await)
        }
        Command::Append { key, value, client } => {
            let body = serde_json::json!({"type": "APPEND", "value": value});
            finish(client.tls_client()?.write(&key, body).await)
        }
        Command::Status { client } => finish(client.tls_client()?.status().await),
        Command::Member(verb) => {
            use raftkv::client::Membership;
            let (change, client) = match verb {
                MemberVerb::Add { raft_addr, client } => (Membership::Add(raft_addr), client),
                MemberVerb::Promote { id, client } => (Membership::Promote(id), client),
                MemberVerb::Remove { id, client } => (Membership::Remove(id), client),
            };
            finish(client.admin_client()?.member(change).await)
        }
        Command::Bench(args) => {
            let json = args.client.json;
            let report = raftkv::bench::run(raftkv::bench::Config {
                system: args.system,
                endpoints: args.client.endpoints.clone(),
                workload: args.workload,
                connections: args.connections.max(1),
                warmup: Duration::from_secs(args.warmup),
                duration: Duration::from_secs(args.seconds.max(1)),
                rate: args.rate,
                keys: args.keys.clamp(1, 1000),
                value_bytes: args.value_bytes,
                preload: args.preload,
                fault: args.fault,
                pids: args.pids,
                behind: args.behind.max(1),
                trust: match &args.client.ca_file {
                    Some(ca) => {
                        raftkv::bench::trust::Trust::ca_file(ca).map_err(anyhow::Error::msg)?
                    }
                    None => Default::default(),
                },
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
                scripts: args.scripts,
            };
            let path = raftkv::scenario::run(&args.name, &options).await?;
            println!("{}", path.display());
        }
        Command::Node(args) => {
            let config = node_config(args)?;
            let (addr, dir) = (config.raft_addr, config.data_dir.clone());
            let bound = config.request_timeout;
            let node = Node::start(config, Default::default())
                .await
                .with_context(|| format!("node {addr} ({}) did not start", dir.display()))?;
            let id = node.id;
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
    let raft = raftkv::cluster::port_block(args.raft_port, 5, "--raft-port")?;
    let http = raftkv::cluster::port_block(args.http_port, 5, "--http-port")?;
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
        let safe = report_leaders(&run.leaders);
        return Ok(safe && run.violations.is_empty() && run.undecided.is_empty());
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
    println!("{}", run.report);
    let safe = report_leaders(&run.leaders);
    Ok(safe && run.report.anomalies.is_empty())
}

/// Prints what the election watch saw on the wire; false if two leaders shared a term.
fn report_leaders(leaders: &raftkv::check::election::Leaders) -> bool {
    let violations = leaders.violations();
    println!(
        "leaders: {} terms seen on the wire / terms with two leaders {} / events missed {}",
        leaders.terms(),
        violations.len(),
        leaders.missed
    );
    for v in &violations {
        println!("ANOMALY {v}");
    }
    violations.is_empty()
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

async fn run_lab(args: LabArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if let Some(path) = &args.replay {
        return replay(path, &args).await;
    }
    if args.list_exercises {
        for e in raftkv::lab::exercise::Exercise::built_in() {
            println!("{:<18} {}", e.name, e.summary);
        }
        return Ok(());
    }
    let exercise = match &args.exercise {
        Some(name) => {
            Some(raftkv::lab::exercise::Exercise::find(name).map_err(anyhow::Error::msg)?)
        }
        None => None,
    };
    let mut timing = args.timing.timing();
    let n = args.nodes;
    let raft = raftkv::cluster::port_block(args.raft_port, n, "--raft-port")?;
    let http = raftkv::cluster::port_block(args.http_port, n, "--http-port")?;
    // An exercise starts from nothing, in a directory of its own, with its own pre-vote setting.
    let data_dir = match &exercise {
        Some(e) => {
            let dir = args.data_dir.join(format!("exercise-{}", e.name));
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot delete {}", dir.display()))?;
            }
            timing.pre_vote = e.pre_vote;
            dir
        }
        None => args.data_dir.clone(),
    };
    let mut configs = raftkv::cluster::loopback_configs(&raft, &http, &data_dir, timing);
    let secret = secret(args.cluster_secret_file.as_deref())?;
    configs.iter_mut().for_each(|c| c.secret = secret.clone());
    // The control API can kill, partition and remove every node, and has no credential of its
    // own: it stays on this machine.
    if !args.control.ip().to_canonical().is_loopback() {
        bail!(
            "--control {}: the control API can stop every node of the lab and takes no \
             credential, so it listens on loopback only (127.0.0.1 or ::1)",
            args.control
        );
    }
    let control = tokio::net::TcpListener::bind(args.control)
        .await
        .with_context(|| {
            format!(
                "cannot listen for the control API on {} (use --control)",
                args.control
            )
        })?;
    let cluster = if exercise.as_ref().is_some_and(|e| e.paused) {
        let cluster = raftkv::cluster::Cluster::start_paused(configs).await;
        let cluster = cluster.context("the lab cluster did not start")?;
        // Every founding server campaigns as it initializes: let that settle first.
        cluster
            .settle(Duration::from_millis(300), Duration::from_secs(10))
            .await;
        cluster
    } else {
        raftkv::cluster::Cluster::start(configs)
            .await
            .context("the lab cluster did not start")?
    };
    let recorder = match args.trace_mib {
        0 => None,
        mib => Some(
            raftkv::lab::recorder::Recorder::start(&data_dir, mib * 1024 * 1024)
                .with_context(|| format!("cannot record a trace in {}", data_dir.display()))?,
        ),
    };
    let (lab, engine) = raftkv::lab::spawn_recording(cluster, recorder).await;
    let api = raftkv::lab::control::router(lab.clone());
    tokio::spawn(async move { axum::serve(control, api).await });
    let headless =
        args.headless || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal();
    if let Some(exercise) = exercise {
        let passed = if headless {
            let (coach, _) = raftkv::lab::coach::Coach::new(lab.clone(), exercise, None);
            coach.run().await
        } else {
            let (tx, rx) = tokio::sync::mpsc::channel(16);
            let (coach, view) = raftkv::lab::coach::Coach::new(lab.clone(), exercise, Some(rx));
            let run = tokio::spawn(coach.run());
            raftkv::lab::tui::run_coached(lab.clone(), view, tx).await?;
            run.is_finished() && run.await.unwrap_or(false)
        };
        drop(lab);
        engine.abort();
        let _ = engine.await;
        if !passed {
            std::process::exit(1);
        }
        return Ok(());
    }
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

/// `raftkv lab --replay`: the dashboard over a trace, or with --headless the state at --at (or the
/// whole timeline) on stdout.
async fn replay(path: &std::path::Path, args: &LabArgs) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    let mut replay = raftkv::lab::replay::Replay::open(path).map_err(anyhow::Error::msg)?;
    for warning in &replay.warnings {
        eprintln!("warning: {warning}");
    }
    if let Some(dir) = &args.export {
        let (first, last) = replay.span();
        let (from, to) = (args.from.unwrap_or(first), args.to.unwrap_or(last));
        if from > to {
            bail!("--from {from} ms is after --to {to} ms");
        }
        let written = raftkv::lab::export::export(replay.records(), dir, from, to)
            .map_err(anyhow::Error::msg)?;
        for path in written {
            println!("wrote {}", path.display());
        }
        return Ok(());
    }
    let headless =
        args.headless || !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal();
    if !headless {
        return Ok(raftkv::lab::tui::run_replay(replay).await?);
    }
    match args.at {
        Some(at) => {
            replay.seek(at).map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&replay.state())?);
        }
        None => {
            let (_, last) = replay.span();
            replay.seek(last).map_err(anyhow::Error::msg)?;
            for entry in replay.state().timeline.iter() {
                println!("{:>7.1}s {}", entry.at_ms as f64 / 1000.0, entry.text);
            }
        }
    }
    Ok(())
}

/// Logs go to stderr, except under the dashboard, where they would overwrite the screen: then they
/// go to DATA_DIR/lab.log. `RUST_LOG` filters as usual.
fn init_logging(command: &Command) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    // A node's operator wants its elections and leader changes; the in-process clusters of the
    // scenarios and soaks would print those for every node, drowning their own output.
    let default = match command {
        Command::Node(_) | Command::Lab(_) => "warn,openraft=error,raftkv=info,raftkv_service=info",
        // Their nemesis cuts and kills peers on purpose: failing RPCs are expected there.
        _ => "warn,openraft=error,raftkv_service::net=error",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match command {
        Command::Lab(args)
            if args.replay.is_none()
                && !args.headless
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
