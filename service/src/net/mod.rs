//! The TCP transport between nodes: Raft RPCs (AppendEntries, RequestVote, pre-vote, snapshots,
//! leadership transfer) and the two application messages a follower sends its leader (a forwarded
//! write, a read-index request). Knows nothing about HTTP.
//!
//! Connection lifecycle: a client connects lazily, runs the Noise handshake if the cluster has a
//! secret ([`secure`]), sends a [`frame::Hello`] naming the cluster, the
//! sender and the intended receiver, and the server refuses a mismatch (so a node never talks to
//! the wrong process, e.g. after ports were reused). Then strictly one request, one reply, in
//! order. Any error or timeout drops the socket; the next call reconnects (openraft backs off
//! between attempts). A frame that does not decode closes that connection only.

pub mod client;
pub mod fault;
pub mod frame;
pub mod secure;
pub mod server;
pub mod snapshot;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;

use frame::{Hello, HelloReply, Reply, Request};
pub use secure::{Channel, MAX_FRAME, Secret};

use crate::clock::Clock;
use crate::observe::{Event, Fate, Legs, Observer, Rpc};
use fault::{FaultTable, Held, Leg, Passage};

/// What the transport of every node in one process shares: the injected faults, the event
/// stream, and the lab's clock. Per-process mode gets its own, never faulted, on real time.
#[derive(Clone, Default)]
pub struct NetEnv {
    pub faults: std::sync::Arc<FaultTable>,
    pub observer: Observer,
    /// The clock a lab's nodes run on (None: real time).
    pub clock: Option<std::sync::Arc<Clock>>,
}

impl NetEnv {
    /// The shared environment of a lab's nodes: faults, events and one clock.
    pub fn lab() -> Self {
        NetEnv {
            clock: Some(Default::default()),
            ..Default::default()
        }
    }

    /// How long a transport deadline of `ttl` (openraft's, on the nodes' clock) lasts in real time.
    pub fn real_deadline(&self, ttl: Duration) -> Duration {
        self.clock.as_ref().map_or(ttl, |c| c.real_deadline(ttl))
    }

    /// Delivers `request` from `from` to `to` through `call` unless the link is cut (then it is
    /// dropped with a `ConnectionRefused` error), holding the request and then its reply while
    /// paused, and reports what happened.
    pub async fn deliver<F>(
        &self,
        from: u64,
        to: u64,
        request: &Request,
        call: F,
    ) -> io::Result<Reply>
    where
        F: std::future::Future<Output = io::Result<Reply>>,
    {
        let (rpc, term, entries) = request.describe();
        let sent = std::time::Instant::now();
        let since = |at: std::time::Instant| at.duration_since(sent).as_micros() as u64;
        // Describing the fields costs a little per RPC: only when someone watches (the lab).
        let watched = self.observer.watched();
        let mut event = Event {
            from,
            to,
            rpc,
            term,
            entries,
            fate: Fate::Dropped,
            fields: watched.then(|| request.fields()),
            reply: None,
            legs: None,
        };
        let held = |leg, from, to, reply| Held {
            id: 0,
            from,
            to,
            rpc,
            leg,
            term,
            entries,
            fields: Some(request.fields()),
            reply,
        };
        let passage = self
            .faults
            .pass(from, to, || held(Leg::Request, from, to, None))
            .await;
        if passage != Passage::Go {
            self.observer.emit(event);
            return Err(lost(passage, from, to));
        }
        let delivered = std::time::Instant::now();
        // A Raft RPC is answered by its receiver alone, so a paused cluster settles only once its
        // reply is back in the hold. A forwarded client request is answered only after the
        // leader's AppendEntries (or heartbeats) and their replies, which the learner has yet to
        // step: counting it made every step wait out the settle bound (5 s), and the forward
        // then missed its deadline.
        let moving = (rpc != Rpc::Forward).then(|| self.faults.start_moving());
        let result = call.await;
        drop(moving);
        let answered = result.is_ok().then(std::time::Instant::now);
        if let Ok(reply) = &result {
            // The reply travels back over the link to → from, and is held like any message.
            let passage = self
                .faults
                .pass(to, from, || {
                    held(Leg::Reply, to, from, Some(reply.fields()))
                })
                .await;
            if passage != Passage::Go {
                event.reply = watched.then(|| reply.fields());
                event.legs = Some(Legs {
                    delivered_us: since(delivered),
                    answered_us: None,
                    reported_us: since(std::time::Instant::now()),
                });
                self.observer.emit(event);
                // The request was delivered and acted on (a forwarded write may commit): not
                // `lost`, which tells the sender nothing reached the peer. Conflating the two
                // made a follower answer "unavailable" for a write that then appeared (found
                // by the nemesis run, seed 7, under one-way link cuts).
                return Err(reply_lost(passage, to, from));
            }
        }
        event.fate = match &result {
            Ok(reply) => Fate::Answered {
                granted: reply.granted(),
            },
            Err(_) => Fate::Failed,
        };
        event.reply = result.as_ref().ok().filter(|_| watched).map(Reply::fields);
        event.legs = Some(Legs {
            delivered_us: since(delivered),
            answered_us: answered.map(since),
            reported_us: since(std::time::Instant::now()),
        });
        self.observer.emit(event);
        result
    }
}

/// The error a sender sees for a request the fault table did not let through: the peer never
/// saw it. `ConnectionRefused` is the one kind that means "certainly not delivered" (a refused
/// TCP connect or hello is the other source), see [`never_delivered`].
fn lost(passage: Passage, from: u64, to: u64) -> io::Error {
    let why = match passage {
        Passage::Dropped => format!("the lab dropped the message n{from} → n{to}"),
        _ => format!("link n{from} → n{to} is cut"),
    };
    io::Error::new(io::ErrorKind::ConnectionRefused, why)
}

/// The error a sender sees when the peer got its request but the reply (`from` → `to`, the
/// reverse link) did not come through: whatever the request asked may have been done.
fn reply_lost(passage: Passage, from: u64, to: u64) -> io::Error {
    let how = match passage {
        Passage::Dropped => "the lab dropped it",
        _ => "the link is cut",
    };
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        format!("the request was delivered but its reply n{from} → n{to} was lost ({how})"),
    )
}

/// Whether an RPC's error proves the peer never received the request (connection or hello
/// refused, or the lab's fault table stopped it on the way there). Any other error may come
/// after the peer acted on it.
pub fn never_delivered(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::ConnectionRefused
}

/// The slowest rate at which we expect a peer to take in a large request (receive, decode and
/// fsync it). openraft's AppendEntries deadline is 3/4 of a heartbeat interval (37 ms by default),
/// meant for a round trip, not for megabytes: a request of a few MiB timed out every time and was
/// retried whole. Too low a rate only makes a dead peer take longer to notice on big requests.
const SLOWEST_PEER_BYTES_PER_SEC: u64 = 32 << 20;

/// Extra deadline for moving `bytes` at [`SLOWEST_PEER_BYTES_PER_SEC`].
pub fn transfer_time(bytes: usize) -> Duration {
    Duration::from_micros(bytes as u64 * 1_000_000 / SLOWEST_PEER_BYTES_PER_SEC)
}

/// One open, greeted connection to a peer.
pub struct Conn {
    channel: Channel,
}

impl Conn {
    /// Connects, authenticates with `secret` if there is one, and greets; fails if the peer does
    /// not accept us as `hello.from` talking to `hello.to`.
    pub async fn connect(
        addr: SocketAddr,
        hello: &Hello,
        secret: Option<&Secret>,
        max_frame: usize,
        timeout: Duration,
    ) -> io::Result<Conn> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| {
                io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connect to {addr} timed out"),
                )
            })??;
        // Raft messages are small and latency-bound; never wait to coalesce them.
        stream.set_nodelay(true)?;
        let greeted = tokio::time::timeout(timeout, async {
            let mut conn = Conn {
                channel: Channel::initiate(stream, secret, max_frame).await?,
            };
            conn.send(hello).await?;
            Ok::<_, io::Error>((conn.recv::<HelloReply>().await?, conn))
        })
        .await
        .map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("hello to {addr} timed out"),
            )
        })??;
        match greeted {
            (HelloReply::Welcome, conn) => Ok(conn),
            (HelloReply::Refused(why), _) => {
                Err(io::Error::new(io::ErrorKind::ConnectionRefused, why))
            }
        }
    }

    /// Sends one request and waits for its reply. `timeout` is for a small message; a large one
    /// (entries, a snapshot) gets [`transfer_time`] on top, since the receiver must also read and
    /// fsync it before it can answer.
    pub async fn call(&mut self, request: &Request, timeout: Duration) -> io::Result<Reply> {
        let frame = frame::encode(request)?;
        let timeout = timeout + transfer_time(frame.len());
        tokio::time::timeout(timeout, async {
            self.channel.send(frame).await?;
            self.recv::<Reply>().await
        })
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no reply before the deadline"))?
    }

    async fn send<T: serde::Serialize>(&mut self, value: &T) -> io::Result<()> {
        self.channel.send(frame::encode(value)?).await
    }

    async fn recv<T: serde::de::DeserializeOwned>(&mut self) -> io::Result<T> {
        match self.channel.recv().await? {
            Some(bytes) => frame::decode(&bytes),
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed the connection",
            )),
        }
    }
}
