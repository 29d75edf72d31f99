//! HTTPS on the nodes' HTTP ports (`--tls-cert`, `--tls-key`): a certificate generated here
//! (rcgen, self-signed for 127.0.0.1 and localhost), three nodes serving HTTPS, and the real
//! command line writing and reading through `https://` with `--ca-file`, and `raftkv bench` loading
//! them over TLS. Without the CA the
//! client refuses the server; plain HTTP gets no answer; an unusable certificate stops the start.

mod common;

use std::time::Duration;

use common::{free_ports, timing, wait_until};
use raftkv::cluster::{Cluster, loopback_configs};
use raftkv::config::TlsFiles;
use raftkv::raft::status::leader_of;
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_raftkv");

/// Writes a self-signed certificate and its key; (cert, key).
fn certificate(dir: &std::path::Path) -> TlsFiles {
    let names = vec!["127.0.0.1".to_string(), "localhost".to_string()];
    let issued = rcgen::generate_simple_self_signed(names).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, issued.cert.pem()).unwrap();
    std::fs::write(&key, issued.signing_key.serialize_pem()).unwrap();
    TlsFiles { cert, key }
}

/// `raftkv ARGS… --endpoints ENDPOINTS`: (exit code, stdout, stderr).
async fn cli(args: &[&str], endpoints: &str) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .args(["--endpoints", endpoints, "--timeout", "3000"])
        .output()
        .await
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).trim().to_string();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_writes_and_reads_over_https_with_the_ca_and_is_refused_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let tls = certificate(dir.path());
    let http = free_ports(3);
    let mut configs = loopback_configs(&free_ports(3), &http, &dir.path().join("nodes"), timing());
    configs.iter_mut().for_each(|c| c.tls = Some(tls.clone()));
    let mut cluster = Cluster::start(configs).await.unwrap();
    wait_until(Duration::from_secs(20), "a leader", || async {
        leader_of(cluster.statuses().await.iter().flatten()).map(|_| ())
    })
    .await;
    let https: Vec<String> = http
        .iter()
        .map(|p| format!("https://127.0.0.1:{p}"))
        .collect();
    let https = https.join(",");
    let ca = tls.cert.to_str().unwrap();

    let (code, _, err) = cli(&["put", "k", "a", "b", "--ca-file", ca], &https).await;
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = cli(&["append", "k", "c", "--ca-file", ca], &https).await;
    assert_eq!(code, 0, "{out} {err}");
    let (code, out, err) = cli(&["get", "k", "--ca-file", ca], &https).await;
    assert_eq!((code, out.as_str()), (0, "a\nb\nc"), "{err}");

    // Without the CA the server's certificate is not trusted: nothing is sent, exit 3.
    let (code, _, err) = cli(&["get", "k"], &https).await;
    assert_eq!(code, 3, "{err}");
    assert!(
        err.to_lowercase().contains("certificate") || err.contains("error sending request"),
        "{err}"
    );

    // Plain HTTP on an HTTPS port gets no answer.
    let plain = format!("http://127.0.0.1:{}", http[0]);
    let (code, _, err) = cli(&["get", "k"], &plain).await;
    assert_eq!(code, 3, "{err}");

    // The load generator too: its load connections and its probes over TLS.
    let out = Command::new(BIN)
        .args([
            "bench",
            "--seconds",
            "1",
            "--warmup",
            "0",
            "--connections",
            "4",
            "--json",
        ])
        .args(["--endpoints", &https, "--ca-file", ca])
        .output()
        .await
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(report["ops"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(report["errors"], serde_json::json!({}), "{report}");

    // A CA file that holds no certificate is refused before anything is sent.
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let (code, _, err) = cli(&["get", "k", "--ca-file", empty.to_str().unwrap()], &https).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("no certificate"), "{err}");

    // A server added at runtime asks a member over HTTPS to add it (`--join https://…` with
    // `--join-ca-file`), then catches up as a learner.
    let (raft, http) = (free_ports(1)[0], free_ports(1)[0]);
    let addr = |p: u16| format!("127.0.0.1:{p}").parse().unwrap();
    let id = cluster.add(addr(raft), addr(http)).await.unwrap();
    wait_until(
        Duration::from_secs(20),
        "the new server caught up",
        || async {
            let statuses = cluster.statuses().await;
            let leader = leader_of(statuses.iter().flatten())?.clone();
            let new = statuses.get(id)?.as_ref()?;
            (new.last_applied == leader.last_applied).then_some(())
        },
    )
    .await;
    let (code, out, err) = cli(
        &["get", "k", "--ca-file", ca],
        &format!("https://127.0.0.1:{http}"),
    )
    .await;
    assert_eq!((code, out.as_str()), (0, "a\nb\nc"), "{err}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_node_with_an_unusable_certificate_does_not_start_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut tls = certificate(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate").unwrap();
    tls.cert = garbage;
    let mut configs = loopback_configs(&free_ports(1), &free_ports(1), dir.path(), timing());
    configs[0].tls = Some(tls);
    let error = match raftkv::node::Node::start(configs.remove(0), Default::default()).await {
        Ok(_) => panic!("the node started with a garbage certificate"),
        Err(e) => e.to_string(),
    };
    assert!(
        error.contains("HTTPS") && error.contains("garbage.pem"),
        "{error}"
    );
}
