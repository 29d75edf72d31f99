//! Jepsen-style run, bounded for CI: 8 clients append unique values to 4 keys and read them through
//! random nodes for 30 s while a nemesis kills nodes (the leader too), isolates minorities, cuts
//! links one way and pauses the cluster. Every acknowledged append must survive, exactly once, in
//! one order, and no linearizable read may be stale. A longer soak: `raftkv nemesis --seconds 600`.

mod common;

use std::time::Duration;

use common::{assert_one_leader_per_term, free_ports, timing};
use raftkv::check::nemesis::{self, Config};
use raftkv::cluster::{Cluster, loopback_configs};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_kills_partitions_and_pauses_no_acknowledged_append_is_lost_and_no_read_is_stale() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = loopback_configs(&free_ports(5), &free_ports(5), dir.path(), timing());
    configs.iter_mut().for_each(|c| {
        c.request_timeout = Duration::from_secs(2);
        // Snapshots and purges happen during the run too.
        c.snapshot_every = 200;
    });
    let cluster = Cluster::start(configs).await.unwrap();
    let seed = std::env::var("NEMESIS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let config = Config {
        clients: 8,
        keys: 4,
        duration: Duration::from_secs(30),
        fault_every: Duration::from_secs(3),
        seed,
        local_reads: false,
    };
    let run = nemesis::run(cluster, config).await.unwrap();
    let r = &run.report;
    println!("seed {seed}; faults: {:?}", run.faults);
    println!("{r}");
    assert!(
        r.anomalies.is_empty(),
        "{} anomalies, first: {}",
        r.anomalies.len(),
        r.anomalies[0]
    );
    assert_one_leader_per_term(&run.leaders, 2);
    assert!(
        run.faults.len() >= 5,
        "the nemesis must actually have injected faults: {:?}",
        run.faults
    );
    assert!(
        r.ok >= 200,
        "too few acknowledged operations ({}) for the check to mean anything",
        r.ok
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_same_faults_every_register_history_is_linearizable() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = loopback_configs(&free_ports(5), &free_ports(5), dir.path(), timing());
    configs
        .iter_mut()
        .for_each(|c| c.request_timeout = Duration::from_secs(2));
    let cluster = Cluster::start(configs).await.unwrap();
    let config = raftkv::check::register::Config {
        keys: 3,
        clients_per_key: 3,
        duration: Duration::from_secs(20),
        fault_every: Duration::from_secs(3),
        seed: 11,
        think: Duration::from_millis(50),
        local_reads: false,
        check_budget: Duration::from_secs(120),
    };
    let run = raftkv::check::register::run(cluster, config).await.unwrap();
    println!("faults: {:?}", run.faults);
    println!(
        "register ops {} / ok {} / unknown {} / violations {:?} (checked in {:?})",
        run.ops, run.ok, run.unknown, run.violations, run.checked_in
    );
    assert!(run.violations.is_empty(), "{:?}", run.violations);
    assert!(run.undecided.is_empty(), "{:?}", run.undecided);
    assert_one_leader_per_term(&run.leaders, 2);
    assert!(run.faults.len() >= 4 && run.ok >= 100, "{run:?}");
}
