//! The Raft port under hostile input: an oversized length prefix, a frame that is not
//! MessagePack, a request before the hello, and a hello for the wrong node each close that one
//! connection (or are refused), and the cluster keeps committing.

mod common;

use std::time::Duration;

use common::TestCluster;
use raftkv::net::frame::{self, Hello, HelloReply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn send_frame(stream: &mut TcpStream, payload: &[u8]) {
    stream
        .write_all(&(payload.len() as u32).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(payload).await.unwrap();
}

async fn read_frame<T: serde::de::DeserializeOwned>(stream: &mut TcpStream) -> T {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await.unwrap();
    let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
    stream.read_exact(&mut body).await.unwrap();
    frame::decode(&body).unwrap()
}

/// True if the server closes the connection (EOF or reset) within a few seconds.
async fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frames_close_only_their_connection() {
    let c = TestCluster::start(3, |_| {}).await;
    let (leader, _) = c.leader(Duration::from_secs(20)).await;
    let target = (leader + 1) % 3;
    let addr = c.config(target).raft_addr;

    let mut huge = TcpStream::connect(addr).await.unwrap();
    huge.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    assert!(
        closed(&mut huge).await,
        "a frame past MAX_FRAME must close the connection"
    );

    let mut garbage = TcpStream::connect(addr).await.unwrap();
    send_frame(&mut garbage, b"\xc1\xc1 definitely not msgpack").await;
    assert!(
        closed(&mut garbage).await,
        "an undecodable hello must close the connection"
    );

    let mut wrong = TcpStream::connect(addr).await.unwrap();
    let hello = Hello {
        cluster: "raftkv".into(),
        from: leader as u64,
        to: 99,
    };
    send_frame(&mut wrong, &frame::encode(&hello).unwrap()).await;
    let reply: HelloReply = read_frame(&mut wrong).await;
    assert!(
        matches!(reply, HelloReply::Refused(ref why) if why.contains("not node 99")),
        "{reply:?}"
    );
    assert!(closed(&mut wrong).await);

    let mut early = TcpStream::connect(addr).await.unwrap();
    let hello = Hello {
        cluster: "raftkv".into(),
        from: leader as u64,
        to: target as u64,
    };
    send_frame(&mut early, &frame::encode(&hello).unwrap()).await;
    assert!(matches!(
        read_frame::<HelloReply>(&mut early).await,
        HelloReply::Welcome
    ));
    send_frame(&mut early, b"\x92\x01\x02").await;
    assert!(
        closed(&mut early).await,
        "a request that does not decode must close the connection"
    );

    assert_eq!(c.append(target, "k", "still-works").await, 204);
    assert_eq!(
        c.get(target, "k", "").await.1,
        Some(vec!["still-works".to_string()])
    );
    c.shutdown().await;
}
