//! Smoke test of the load generator against a small live cluster: every workload runs, counts
//! operations and reports no errors. No timing is asserted (figures come from `raftkv bench`);
//! only that the open loop never sends more than its schedule allows, and that --preload writes
//! what it says.

mod common;

use std::time::Duration;

use common::TestCluster;
use raftkv::bench::{Config, System, Workload, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_workload_runs_without_errors_and_the_open_loop_keeps_its_schedule() {
    let c = TestCluster::start(3, |_| {}).await;
    c.leader(Duration::from_secs(20)).await;
    let endpoints: Vec<String> = (0..3).map(|i| c.url(i, "")).collect();
    let config = |workload, rate| Config {
        system: System::Raftkv,
        endpoints: endpoints.clone(),
        workload,
        connections: 4,
        warmup: Duration::from_millis(200),
        duration: Duration::from_secs(1),
        rate,
        keys: 20,
        value_bytes: 16,
        preload: 0,
        fault: None,
        pids: Vec::new(),
        behind: 0,
        trust: Default::default(),
    };
    for workload in [
        Workload::Put,
        Workload::Append,
        Workload::GetLeader,
        Workload::GetFollower,
        Workload::GetLocal,
        Workload::Mixed,
    ] {
        let report = run(config(workload, 0)).await.unwrap();
        println!("{}", report.text());
        assert!(report.ops > 0, "{workload:?} did nothing");
        assert!(
            report.errors.is_empty(),
            "{workload:?}: {:?}",
            report.errors
        );
        assert!(report.p50_ms <= report.p99_ms && report.p99_ms <= report.max_ms);
    }
    let open = run(config(Workload::Put, 40)).await.unwrap();
    assert!(open.errors.is_empty(), "{:?}", open.errors);
    assert!(
        open.ops > 0 && open.ops <= 40 + 4,
        "40 requests/s for 1 s, yet {} were sent",
        open.ops
    );

    // --preload: 2 MiB as 64 KiB values, each to a key of its own, before the run.
    let preloaded = run(Config {
        preload: 2 << 20,
        value_bytes: 64 << 10,
        ..config(Workload::Put, 0)
    })
    .await
    .unwrap();
    let fill = preloaded.preload.expect("a preload report");
    println!("{fill}");
    assert_eq!((fill.writes, fill.bytes), (32, 2 << 20));
    let (code, list) = c.get(0, "p31", "").await;
    assert_eq!((code, list.map(|l| l[0].len())), (200, Some(64 << 10)));
    assert_eq!(c.get(0, "p32", "").await.0, 404, "no more than asked");
    c.shutdown().await;
}
