//! One keep-alive HTTP/1.1 connection of the load generator, on hyper's client connection API:
//! the request goes out as built ([`Call`]), with no pool, URL parsing or redirect handling in
//! between, so the bench spends its CPU on the system under test rather than on itself. A failed
//! connection is dropped; the next request opens a new one.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, combinators::BoxBody};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::system::Call;
use super::trust::Trust;
use tokio_rustls::rustls::pki_types::ServerName;

/// How much of a refusal's body is kept for messages.
const REFUSAL_BYTES: usize = 300;

/// Why a request got no HTTP status, as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// No TCP connection could be opened.
    Connect,
    /// No complete response within the timeout.
    Timeout,
    /// The connection failed mid-request.
    Transport,
}

impl Failure {
    pub fn kind(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Transport => "transport",
        }
    }
}

type Body = BoxBody<Bytes, std::convert::Infallible>;

/// A connection to whichever endpoint the caller names; reconnects when the endpoint changes or
/// the last request failed.
#[derive(Default)]
pub struct Conn {
    open: Option<(String, SendRequest<Body>)>,
    /// For https:// endpoints.
    trust: Trust,
    /// The start of the body of the last answer that was not a success (a server's reason).
    refusal: String,
}

impl Conn {
    pub fn new(trust: Trust) -> Conn {
        Conn {
            open: None,
            trust,
            refusal: String::new(),
        }
    }

    /// Sends `call` to `endpoint` (`http://host:port`) and reads the whole response; returns its
    /// status code, or why there was none.
    pub async fn send(
        &mut self,
        endpoint: &str,
        call: &Call,
        timeout: Duration,
    ) -> Result<u16, Failure> {
        let exchange = async {
            let sender = self.connect(endpoint).await?;
            let body: Body = match &call.body {
                Some(bytes) => Full::new(bytes.clone()).boxed(),
                None => Empty::new().boxed(),
            };
            let mut request = http::Request::builder()
                .method(call.method.clone())
                .uri(call.path.as_str())
                .header(http::header::HOST, authority(endpoint));
            if call.body.is_some() {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
            }
            let request = request.body(body).map_err(|_| Failure::Transport)?;
            sender.ready().await.map_err(|_| Failure::Transport)?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|_| Failure::Transport)?;
            let status = response.status().as_u16();
            let closing = response.version() < http::Version::HTTP_11
                || response
                    .headers()
                    .get(http::header::CONNECTION)
                    .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
            // Read the body so the connection can carry the next request.
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|_| Failure::Transport)?
                .to_bytes();
            if !(200..300).contains(&status) {
                let start = &body[..body.len().min(REFUSAL_BYTES)];
                self.refusal = String::from_utf8_lossy(start).trim().to_string();
            }
            Ok((status, closing))
        };
        let outcome = tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(Failure::Timeout));
        // A server that closes after answering is not a failure: the next request reconnects.
        if outcome.is_err() || outcome.is_ok_and(|(_, closing)| closing) {
            self.open = None;
        }
        outcome.map(|(status, _)| status)
    }

    /// The start of the body of the last answer that was not a success: the server's reason
    /// (etcd's gateway sends `{"error": …, "code": …}`), for messages.
    pub fn refusal(&self) -> &str {
        &self.refusal
    }

    async fn connect(&mut self, endpoint: &str) -> Result<&mut SendRequest<Body>, Failure> {
        if self
            .open
            .as_ref()
            .is_some_and(|(e, sender)| e != endpoint || sender.is_closed())
        {
            self.open = None;
        }
        if self.open.is_none() {
            let stream = TcpStream::connect(authority(endpoint))
                .await
                .map_err(|_| Failure::Connect)?;
            // Requests are small and each waits for its answer: never hold one back (Nagle).
            stream.set_nodelay(true).map_err(|_| Failure::Connect)?;
            let sender = match (endpoint.starts_with("https://"), self.trust.connector()) {
                (false, _) => handshake(stream).await?,
                (true, Some(tls)) => {
                    let host = authority(endpoint).rsplit_once(':').map_or("", |(h, _)| h);
                    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                        .map_err(|_| Failure::Connect)?;
                    let stream = tls.connect(name, stream).await;
                    handshake(stream.map_err(|_| Failure::Connect)?).await?
                }
                // https:// without a CA to check the server against: refuse to connect.
                (true, None) => return Err(Failure::Connect),
            };
            self.open = Some((endpoint.to_owned(), sender));
        }
        Ok(&mut self.open.as_mut().expect("opened above").1)
    }
}

/// An HTTP/1.1 connection over `io`, driven by a task of its own (it ends when the sender is
/// dropped or the peer closes).
async fn handshake<Io>(io: Io) -> Result<SendRequest<Body>, Failure>
where
    Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| Failure::Connect)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// `host:port` of an `http://host:port` or `https://host:port` endpoint.
fn authority(endpoint: &str) -> &str {
    let rest = endpoint.strip_prefix("https://");
    rest.or_else(|| endpoint.strip_prefix("http://"))
        .unwrap_or(endpoint)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// A loopback server that answers every request with 200, on keep-alive connections or
    /// closing each after one answer; counts the connections it accepted.
    async fn server(close: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buf = [0u8; 1024];
                    while let Ok(n @ 1..) = stream.read(&mut buf).await {
                        seen.extend_from_slice(&buf[..n]);
                        // The bench's GETs have no body: one request ends at its blank line.
                        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
                            seen.drain(..end + 4);
                            let header = if close { "Connection: close\r\n" } else { "" };
                            let answer =
                                format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n{header}\r\nok");
                            if stream.write_all(answer.as_bytes()).await.is_err() || close {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (endpoint, accepted)
    }

    fn get() -> Call {
        Call {
            method: http::Method::GET,
            path: "/keys/a".into(),
            body: None,
        }
    }

    /// Three GETs through one `Conn` to a server that keeps or closes connections; each must be
    /// answered 200. Returns how many connections the server accepted.
    async fn three_gets(close: bool) -> usize {
        let (endpoint, accepted) = server(close).await;
        let mut conn = Conn::default();
        for _ in 0..3 {
            let status = conn.send(&endpoint, &get(), Duration::from_secs(5)).await;
            assert_eq!(status, Ok(200));
        }
        accepted.load(Ordering::SeqCst)
    }

    #[tokio::test]
    async fn requests_share_one_keep_alive_connection() {
        assert_eq!(three_gets(false).await, 1);
    }

    #[tokio::test]
    async fn a_server_that_closes_after_answering_costs_a_reconnect_not_an_error() {
        assert_eq!(three_gets(true).await, 3);
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_failure() {
        // Bind, note the port, and close it again: nothing listens there now.
        let port = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let endpoint = format!("http://127.0.0.1:{port}");
        let status = Conn::default()
            .send(&endpoint, &get(), Duration::from_secs(5))
            .await;
        assert_eq!(status, Err(Failure::Connect));
    }
}
