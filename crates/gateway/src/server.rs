//! The HTTP/1.1 connection loop shared by the gateway and the admin API: `TCP_NODELAY`,
//! header size and header-read-time limits (the same timer closes idle keep-alive
//! connections), a request-body read timeout, a cap on open connections, an accept loop that
//! backs off when the process is out of file descriptors, and graceful shutdown (stop
//! accepting, let in-flight requests finish). TCP listeners and Unix sockets (the admin
//! address may also be a socket file) go through the same loop ([`Accept`]).

use crate::codes::ErrorCode;
use crate::error::{ApiError, Body};
use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::cell::Cell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UnixListener};

/// A listening socket [`serve`] takes connections from.
pub trait Accept: Send + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    /// The next connection and the peer address handlers see.
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Stream, SocketAddr)>> + Send;
    /// For log lines: the address or path listened on.
    fn describe(&self) -> String;
    /// Per-connection socket options.
    fn tune(_stream: &Self::Stream) {}
}

impl Accept for TcpListener {
    type Stream = tokio::net::TcpStream;
    fn accept(&self) -> impl Future<Output = std::io::Result<(Self::Stream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
    fn describe(&self) -> String {
        self.local_addr().map(|a| a.to_string()).unwrap_or_default()
    }
    fn tune(stream: &Self::Stream) {
        let _ = stream.set_nodelay(true);
    }
}

/// The peer address handlers see for a Unix-socket connection: the local host (the socket
/// file's permissions decided who could connect).
pub const UNIX_PEER: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

impl Accept for UnixListener {
    type Stream = tokio::net::UnixStream;
    async fn accept(&self) -> std::io::Result<(Self::Stream, SocketAddr)> {
        let (stream, _) = UnixListener::accept(self).await?;
        Ok((stream, UNIX_PEER))
    }
    fn describe(&self) -> String {
        self.local_addr()
            .ok()
            .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
            .unwrap_or_else(|| "unix".into())
    }
}

/// Connection-level limits (each listener applies them on its own).
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// A client must send its full request head within this time. The timer also runs while
    /// a keep-alive connection waits for its next request, so this is the idle timeout too.
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers) in bytes; larger ones are refused.
    pub max_header_bytes: usize,
    /// A request body must arrive in full within this time from when Gust starts reading
    /// it; otherwise `408 RequestTimeout` and the connection closes.
    pub body_read_timeout: Duration,
    /// Open connections per listener. Past it a new connection is answered
    /// `503 TooManyConnections` with `Retry-After: 1` and closed.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
            body_read_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// Something that answers HTTP requests.
pub trait HttpHandler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        remote: SocketAddr,
    ) -> impl Future<Output = Response<Body>> + Send;
}

/// The body-read deadline of the request a handler is answering, set by [`serve`] around
/// each request so that every body read ([`read_body_in_time`]) enforces it.
struct BodyTimer {
    timeout: Duration,
    expired: Cell<bool>,
}

tokio::task_local! {
    static BODY_TIMER: BodyTimer;
}

/// Runs `read` (a request body read) within the connection's body-read timeout: `408
/// RequestTimeout` past it, and the connection is closed after the answer. A body already
/// in the connection's buffer costs no timer. Outside [`serve`] (unit tests) no timeout applies.
pub(crate) async fn read_body_in_time<F: Future>(read: F) -> Result<F::Output, ApiError> {
    let Ok(timeout) = BODY_TIMER.try_with(|t| t.timeout) else {
        return Ok(read.await);
    };
    let mut read = pin!(read);
    if let Poll::Ready(out) = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
        return Ok(out);
    }
    match tokio::time::timeout(timeout, read).await {
        Ok(out) => Ok(out),
        Err(_) => {
            BODY_TIMER.with(|t| t.expired.set(true));
            Err(ApiError::new(
                ErrorCode::RequestTimeout,
                format!("the request body did not arrive within {timeout:?}"),
            ))
        }
    }
}

/// Bytes of the request line and headers, as sent (near enough: `": "` and CRLF included).
fn head_size(req: &Request<Incoming>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    line + req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
}

/// Decrements the open-connection count when a connection's task ends.
struct Open(Arc<AtomicUsize>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Connections over the cap that are being answered at once; past this they are just closed.
const MAX_REFUSING: usize = 512;
/// How long a refused connection may take to receive its answer and close.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

/// The raw answer to a connection over the cap, made once per listener.
fn too_many_connections(max: usize) -> Bytes {
    let e = ApiError::new(
        ErrorCode::TooManyConnections,
        format!("the server has {max} open connections, its limit; retry shortly"),
    );
    let body = e.body("").to_string();
    let status = e.status();
    let retry_after = e
        .retry_after_header()
        .map(|s| format!("retry-after: {s}\r\n"))
        .unwrap_or_default();
    Bytes::from(format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\n{retry_after}\
         connection: close\r\ncontent-length: {}\r\n\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    ))
}

/// Answers a connection over the cap with `answer` and closes it, within [`REFUSE_LINGER`].
/// What the client sent is read and dropped until it closes, so that the close is a FIN,
/// not a reset that could destroy the answer before the client reads it.
fn refuse<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    mut stream: S,
    answer: Bytes,
    refusing: &Arc<AtomicUsize>,
) {
    if refusing.fetch_add(1, Ordering::Relaxed) >= MAX_REFUSING {
        refusing.fetch_sub(1, Ordering::Relaxed);
        return; // dropping it closes it
    }
    let guard = Open(refusing.clone());
    tokio::spawn(async move {
        let _guard = guard;
        let _ = tokio::time::timeout(REFUSE_LINGER, async {
            stream.write_all(&answer).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
            Ok::<_, std::io::Error>(())
        })
        .await;
    });
}

/// Errors of one connection that was aborted before `accept` returned it: nothing to wait for.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | ConnectionRefused | Interrupted | WouldBlock
    )
}

/// `accept` failing for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM): the pending
/// connection stays queued, so retrying at once would spin. Waits 10 ms doubling to 1 s
/// between attempts and logs once per episode; an episode ends after a second without failures.
#[derive(Default)]
struct AcceptBackoff {
    delay: Option<Duration>,
    episode: Option<Episode>,
}

struct Episode {
    started: Instant,
    last_failure: Instant,
    failures: u64,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);
    const QUIET: Duration = Duration::from_secs(1);

    fn failed(&mut self, e: &std::io::Error, listener: &str) -> Duration {
        let now = Instant::now();
        match &mut self.episode {
            Some(ep) => {
                ep.failures += 1;
                ep.last_failure = now;
            }
            None => {
                let hint = match e.raw_os_error() {
                    Some(23 | 24) => " (out of file descriptors: raise `ulimit -n` or lower max_connections)",
                    _ => "",
                };
                tracing::warn!(
                    listener,
                    error = %e,
                    "accepting connections failed{hint}; retrying with backoff until it succeeds"
                );
                self.episode = Some(Episode {
                    started: now,
                    last_failure: now,
                    failures: 1,
                });
            }
        }
        let delay = self.delay.map_or(Self::FIRST, |d| (d * 2).min(Self::MAX));
        self.delay = Some(delay);
        delay
    }

    fn accepted(&mut self, listener: &str) {
        self.delay = None;
        if let Some(ep) = &self.episode {
            if ep.last_failure.elapsed() >= Self::QUIET {
                tracing::info!(
                    listener,
                    failures = ep.failures,
                    lasted_ms = (ep.last_failure - ep.started).as_millis() as u64,
                    "accepting connections again"
                );
                self.episode = None;
            }
        }
    }
}

/// Serves `handler` on `listener` until `shutdown` resolves, then waits for open requests.
pub async fn serve<L: Accept, H: HttpHandler>(
    listener: L,
    handler: Arc<H>,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    let local = listener.describe();
    let open = Arc::new(AtomicUsize::new(0));
    let refusing = Arc::new(AtomicUsize::new(0));
    let busy = too_many_connections(limits.max_connections);
    let mut backoff = AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = &mut shutdown => break,
        };
        let (stream, remote) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                let delay = backoff.failed(&e, &local);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => continue,
                    _ = &mut shutdown => break,
                }
            }
        };
        backoff.accepted(&local);
        // Only this loop adds, so a load then an add cannot overshoot the cap.
        if open.load(Ordering::Relaxed) >= limits.max_connections {
            refuse(stream, busy.clone(), &refusing);
            continue;
        }
        open.fetch_add(1, Ordering::Relaxed);
        let guard = Open(open.clone());
        L::tune(&stream);
        let handler = handler.clone();
        let max_head = limits.max_header_bytes;
        let body_timeout = limits.body_read_timeout;
        // Header names as the client spelled them, for payload format 1.0 (`header_case.rs`).
        let (stream, case) = crate::header_case::CaseWatch::new(stream);
        let svc = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let handler = handler.clone();
            req.extensions_mut().insert(case.clone());
            let timer = BodyTimer {
                timeout: body_timeout,
                expired: Cell::new(false),
            };
            BODY_TIMER.scope(timer, async move {
                if head_size(&req) > max_head {
                    let e = ApiError::new(
                        ErrorCode::RequestHeaderFieldsTooLarge,
                        format!("request headers exceed {max_head} bytes"),
                    );
                    return Ok::<_, std::convert::Infallible>(e.into_response(""));
                }
                let mut resp = handler.handle(req, remote).await;
                if BODY_TIMER.with(|t| t.expired.get()) {
                    // The rest of the body may still be coming: this connection is done.
                    resp.headers_mut()
                        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                }
                Ok(resp)
            })
        });
        let conn = builder.serve_connection(TokioIo::new(stream), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _guard = guard;
            let _ = conn.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_backoff_doubles_to_a_second_and_resets_on_success() {
        let mut b = AcceptBackoff::default();
        let e = std::io::Error::from_raw_os_error(24);
        let delays: Vec<_> = (0..9).map(|_| b.failed(&e, "test").as_millis()).collect();
        assert_eq!(delays, [10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        assert_eq!(b.episode.as_ref().map(|e| e.failures), Some(9));
        b.accepted("test");
        // Within a second of the last failure the episode goes on (one log line for it all),
        // but the next failure waits the shortest delay again.
        assert!(b.episode.is_some());
        assert_eq!(b.failed(&e, "test"), AcceptBackoff::FIRST);
        assert_eq!(b.episode.as_ref().map(|e| e.failures), Some(10));
    }

    #[test]
    fn connection_level_accept_errors_do_not_back_off() {
        use std::io::{Error, ErrorKind};
        assert!(is_connection_error(&Error::from(ErrorKind::ConnectionAborted)));
        assert!(!is_connection_error(&Error::from_raw_os_error(24)));
        assert!(!is_connection_error(&Error::from_raw_os_error(23)));
    }

    #[test]
    fn the_refusal_is_one_complete_http_response() {
        let raw = too_many_connections(7);
        let text = std::str::from_utf8(&raw).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains("\r\nretry-after: 1\r\n"));
        assert!(head.contains(&format!("\r\ncontent-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"]["code"], "TooManyConnections");
    }

    #[tokio::test]
    async fn a_body_read_past_its_timeout_is_408_and_marks_the_connection() {
        let slow = BODY_TIMER.scope(
            BodyTimer {
                timeout: Duration::from_millis(20),
                expired: Cell::new(false),
            },
            async {
                let r = read_body_in_time(std::future::pending::<()>()).await;
                (
                    r.map_err(|e| (e.status().as_u16(), e.code.as_str())),
                    BODY_TIMER.with(|t| t.expired.get()),
                )
            },
        );
        assert_eq!(slow.await, (Err((408, "RequestTimeout")), true));
        // A read that is ready at once needs no timer, and none applies outside `serve`.
        assert_eq!(read_body_in_time(async { 5 }).await.unwrap(), 5);
    }
}
