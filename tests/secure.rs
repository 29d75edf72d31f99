//! Authenticated, encrypted peers (`--cluster-secret-file`). A cluster with a secret works as
//! before; a node without it, or with another, can neither vote, append nor read the traffic; the
//! bytes on the wire never show what they carry, while without a secret they do (so the check
//! can fail).

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{TestCluster, wait_until};
use raftkv::config::Start;
use raftkv::net::{Channel, MAX_FRAME, Secret};
use raftkv::raft::status::Role;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const WAIT: Duration = Duration::from_secs(20);

fn secret(text: &str) -> Secret {
    Secret::new(text.as_bytes()).unwrap()
}

#[test]
fn short_secrets_are_refused_and_whitespace_does_not_matter() {
    assert!(Secret::new(b"short").unwrap_err().contains("at least 16"));
    assert_eq!(
        Secret::new(b"correct horse battery staple\n").unwrap(),
        Secret::new(b"  correct horse battery staple").unwrap()
    );
    assert_ne!(
        Secret::new(b"correct horse battery staple").unwrap(),
        Secret::new(b"correct horse battery stapler").unwrap()
    );
}

/// Node 2 gets `odd` (another secret, or none); nodes 0 and 1 share the real one.
async fn cluster_with_an_outsider(odd: Option<Secret>) {
    let real = secret("the real cluster secret");
    let c = TestCluster::start(3, |cfg| {
        cfg.secret = if matches!(cfg.start, Start::Founding { id: 2, .. }) {
            odd.clone()
        } else {
            Some(real.clone())
        };
    })
    .await;
    // Nodes 0 and 1 are a quorum of three: they elect a leader among themselves.
    let leader = wait_until(WAIT, "nodes 0 and 1 elect a leader", || async {
        c.leader_among(&[0, 1], 0).await
    })
    .await;
    for n in 0..5 {
        assert_eq!(c.append(leader, "k", &format!("v{n}")).await, 204);
    }
    let follower = 1 - leader;
    // A local read on a follower may lag by a heartbeat: wait for it, bounded.
    wait_until(WAIT, "the other member applied all five", || async {
        let (_, list) = c.get(follower, "k", "?consistency=local").await;
        (list?.len() == 5).then_some(())
    })
    .await;
    // The outsider got nothing: no entries, no leader, no vote; its own elections go nowhere.
    let outsider = c.status(2).await.unwrap();
    assert_eq!(c.get(2, "k", "?consistency=local").await.0, 404);
    assert!(outsider.last_log_index <= Some(0), "{outsider:?}");
    assert_ne!(outsider.role, Role::Leader);
    let leader_status = c.status(leader).await.unwrap();
    let progress = leader_status.followers.clone().unwrap();
    assert_eq!(
        progress.get(&2).and_then(|p| p.matched_index),
        None,
        "the leader never got an answer from node 2"
    );
    assert!(
        leader_status.term <= 3,
        "node 2 never disrupted the term: {leader_status:?}"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_with_another_secret_can_neither_vote_nor_append() {
    cluster_with_an_outsider(Some(secret("some other secret, not ours"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_the_secret_can_neither_vote_nor_append() {
    cluster_with_an_outsider(None).await;
}

/// Runs one exchange (a frame each way) through a recording TCP relay; returns what the relay saw.
async fn exchange(client_secret: Option<Secret>, server_secret: Option<Secret>) -> (bool, Vec<u8>) {
    let server = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (server_addr, relay_addr) = (server.local_addr().unwrap(), relay.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let tap = seen.clone();
    tokio::spawn(async move {
        let (mut inbound, _) = relay.accept().await.unwrap();
        let mut outbound = TcpStream::connect(server_addr).await.unwrap();
        let mut buf = vec![0u8; 1 << 16];
        let mut back = vec![0u8; 1 << 16];
        loop {
            tokio::select! {
                n = inbound.read(&mut buf) => match n {
                    Ok(n) if n > 0 => {
                        tap.lock().unwrap().extend_from_slice(&buf[..n]);
                        if outbound.write_all(&buf[..n]).await.is_err() { break }
                    }
                    _ => break,
                },
                n = outbound.read(&mut back) => match n {
                    Ok(n) if n > 0 => {
                        tap.lock().unwrap().extend_from_slice(&back[..n]);
                        if inbound.write_all(&back[..n]).await.is_err() { break }
                    }
                    _ => break,
                },
            }
        }
    });
    let serving = tokio::spawn(async move {
        let (stream, _) = server.accept().await.unwrap();
        let mut channel = Channel::accept(stream, server_secret.as_ref(), MAX_FRAME).await?;
        let got = channel.recv().await?.unwrap_or_default();
        // Large enough to span several encrypted chunks.
        let mut reply = got.clone();
        reply.extend(std::iter::repeat_n(b'r', 200_000));
        channel.send(reply).await?;
        Ok::<_, std::io::Error>(got)
    });
    let stream = TcpStream::connect(relay_addr).await.unwrap();
    let talked = async {
        let mut channel = Channel::initiate(stream, client_secret.as_ref(), MAX_FRAME).await?;
        channel
            .send(b"append plaintext-marker to k".to_vec())
            .await?;
        let reply = channel.recv().await?.unwrap_or_default();
        Ok::<_, std::io::Error>(reply)
    };
    let reply = tokio::time::timeout(Duration::from_secs(10), talked)
        .await
        .expect("bounded");
    let served = tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("bounded")
        .unwrap();
    let ok = matches!((&reply, &served), (Ok(r), Ok(s))
        if s.as_slice() == b"append plaintext-marker to k"
            && r.starts_with(b"append plaintext-marker to k")
            && r.len() == s.len() + 200_000);
    let seen = seen.lock().unwrap().clone();
    (ok, seen)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_secret_the_wire_shows_nothing_and_a_wrong_secret_gets_nothing() {
    let s = secret("the real cluster secret");
    let (ok, wire) = exchange(None, None).await;
    assert!(
        ok && contains(&wire, b"plaintext-marker"),
        "control: in the clear it shows"
    );

    let (ok, wire) = exchange(Some(s.clone()), Some(s.clone())).await;
    assert!(ok, "the same secret on both ends talks");
    assert!(
        !contains(&wire, b"plaintext-marker"),
        "encrypted traffic leaked plaintext"
    );
    assert!(
        !contains(&wire, b"rrrrrrrrrrrrrrrr"),
        "the large reply leaked plaintext"
    );
    assert!(wire.len() > 200_000, "the reply went through the relay");

    for (client, server) in [
        (Some(secret("another secret entirely")), Some(s.clone())),
        (None, Some(s.clone())),
        (Some(s.clone()), None),
    ] {
        let client_has_secret = client.is_some();
        let (ok, wire) = exchange(client, server).await;
        assert!(!ok, "a mismatched pair must not talk");
        if client_has_secret {
            // It never got past the handshake, so it never sent the request at all.
            assert!(!contains(&wire, b"plaintext-marker"));
        }
    }
}
