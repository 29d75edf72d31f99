//! One peer connection's byte channel: length-delimited frames over TCP, authenticated and
//! encrypted when the cluster has a secret (PySyncObj's `password`, done with a maintained
//! protocol instead of a home-made one).
//!
//! With a secret, every connection opens with a Noise handshake, pattern NNpsk0 (X25519,
//! ChaCha20-Poly1305, BLAKE2s), keyed by SHA-256 of the secret file: fresh ephemeral keys per
//! connection (forward secrecy), and only a holder of the secret can complete the handshake or
//! read a byte. A peer without it, or with another one, fails at the first message and the
//! connection is closed before any Raft message is decoded. Afterwards each frame is sent as
//! encrypted chunks of at most one Noise message; TCP keeps them in order, which the Noise nonces
//! require. Without a secret, frames travel in the clear (loopback labs, trusted networks).

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use snow::TransportState;
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

pub use crate::config::Secret;

const NOISE_PATTERN: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
const NOISE_MAX: usize = 65535;
const NOISE_TAG: usize = 16;
/// Plaintext bytes per encrypted chunk: one Noise message, minus its tag.
const CHUNK: usize = NOISE_MAX - NOISE_TAG;
fn noise_error(e: snow::Error) -> io::Error {
    io::Error::new(
        io::ErrorKind::PermissionDenied,
        format!("peer authentication failed (wrong or missing cluster secret?): {e}"),
    )
}

/// The largest frame a node can be configured to accept in either direction (the default of
/// `config::Transfer::max_message`). Anything larger is refused rather than allowed to exhaust
/// memory. It bounds one message, not the data: a snapshot travels in chunks (`net::snapshot`).
pub const MAX_FRAME: usize = crate::config::MAX_MESSAGE;

fn codec(max_frame: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        // Room for the per-chunk length and tag of an encrypted frame of max_frame bytes.
        .max_frame_length(max_frame + (max_frame / CHUNK + 1) * (2 + NOISE_TAG))
        .new_codec()
}

/// A connection's frames, encrypted or not.
pub struct Channel {
    framed: Framed<TcpStream, LengthDelimitedCodec>,
    noise: Option<Box<TransportState>>,
    max_frame: usize,
}

impl Channel {
    /// The connecting side: runs the handshake first if there is a secret. Frames of more than
    /// `max_frame` bytes are refused both ways.
    pub async fn initiate(
        stream: TcpStream,
        secret: Option<&Secret>,
        max_frame: usize,
    ) -> io::Result<Channel> {
        Channel::open(stream, secret, max_frame, true).await
    }

    /// The accepting side: with a secret, the first frame must be a valid handshake message.
    pub async fn accept(
        stream: TcpStream,
        secret: Option<&Secret>,
        max_frame: usize,
    ) -> io::Result<Channel> {
        Channel::open(stream, secret, max_frame, false).await
    }

    /// NNpsk0 is two messages: the initiator's, then the responder's.
    async fn open(
        stream: TcpStream,
        secret: Option<&Secret>,
        max_frame: usize,
        initiator: bool,
    ) -> io::Result<Channel> {
        let mut channel = Channel::plain(stream, max_frame);
        let Some(secret) = secret else {
            return Ok(channel);
        };
        let builder =
            snow::Builder::new(NOISE_PATTERN.parse().expect("valid pattern")).psk(0, secret.key());
        let mut hs = if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(noise_error)?;
        let mut buf = vec![0u8; NOISE_MAX];
        for turn in 0..2 {
            if (turn == 0) == initiator {
                let n = hs.write_message(&[], &mut buf).map_err(noise_error)?;
                channel.write_raw(Bytes::copy_from_slice(&buf[..n])).await?;
            } else {
                let message = channel.read_raw().await?;
                hs.read_message(&message, &mut buf).map_err(noise_error)?;
            }
        }
        channel.noise = Some(Box::new(hs.into_transport_mode().map_err(noise_error)?));
        Ok(channel)
    }

    fn plain(stream: TcpStream, max_frame: usize) -> Channel {
        Channel {
            framed: Framed::new(stream, codec(max_frame)),
            noise: None,
            max_frame,
        }
    }

    async fn write_raw(&mut self, frame: Bytes) -> io::Result<()> {
        self.framed.send(frame).await
    }

    async fn read_raw(&mut self) -> io::Result<BytesMut> {
        match self.framed.next().await {
            Some(frame) => frame,
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "peer closed the connection",
            )),
        }
    }

    /// Sends one frame (taken by value: in the clear it goes out without a copy).
    pub async fn send(&mut self, plain: Vec<u8>) -> io::Result<()> {
        if plain.len() > self.max_frame {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a {} byte frame exceeds {}", plain.len(), self.max_frame),
            ));
        }
        let Some(noise) = self.noise.as_mut() else {
            return self.write_raw(Bytes::from(plain)).await;
        };
        let mut out = BytesMut::with_capacity(plain.len() + (plain.len() / CHUNK + 1) * 18);
        let mut sealed = vec![0u8; NOISE_MAX];
        for chunk in plain.chunks(CHUNK) {
            let n = noise
                .write_message(chunk, &mut sealed)
                .map_err(noise_error)?;
            out.put_u16(n as u16);
            out.put_slice(&sealed[..n]);
        }
        self.write_raw(out.freeze()).await
    }

    /// Receives one frame; `None` when the peer closed the connection cleanly between frames.
    pub async fn recv(&mut self) -> io::Result<Option<Vec<u8>>> {
        let Some(frame) = self.framed.next().await else {
            return Ok(None);
        };
        let mut frame = frame?;
        let Some(noise) = self.noise.as_mut() else {
            return Ok(Some(frame.to_vec()));
        };
        let mut plain = Vec::with_capacity(frame.len());
        let mut opened = vec![0u8; NOISE_MAX];
        while frame.has_remaining() {
            if frame.remaining() < 2 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "truncated chunk",
                ));
            }
            let n = frame.get_u16() as usize;
            if frame.remaining() < n {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "truncated chunk",
                ));
            }
            let sealed = frame.split_to(n);
            let m = noise
                .read_message(&sealed, &mut opened)
                .map_err(noise_error)?;
            plain.extend_from_slice(&opened[..m]);
        }
        Ok(Some(plain))
    }
}
