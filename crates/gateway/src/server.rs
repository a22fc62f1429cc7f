//! The HTTP/1.1 connection loop shared by the gateway and the admin API: `TCP_NODELAY`,
//! header size and header-read-time limits, and graceful shutdown (stop accepting, let
//! in-flight requests finish).

use crate::error::{ApiError, Body};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Connection-level limits.
#[derive(Debug, Clone)]
pub struct ServerLimits {
    /// A client must send its full request head within this time.
    pub header_read_timeout: Duration,
    /// Largest request head (request line + headers) in bytes; larger ones are refused.
    pub max_header_bytes: usize,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_header_bytes: 64 * 1024,
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

/// Bytes of the request line and headers, as sent (near enough: `": "` and CRLF included).
fn head_size(req: &Request<Incoming>) -> usize {
    let line = req.method().as_str().len() + req.uri().to_string().len() + 12;
    line + req
        .headers()
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum::<usize>()
}

/// Serves `handler` on `listener` until `shutdown` resolves, then waits for open requests.
pub async fn serve<H: HttpHandler>(
    listener: TcpListener,
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
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, remote)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let max_head = limits.max_header_bytes;
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let handler = handler.clone();
                    async move {
                        if head_size(&req) > max_head {
                            let e = ApiError::new(431, "RequestHeaderFieldsTooLarge", format!("request headers exceed {max_head} bytes"));
                            return Ok::<_, std::convert::Infallible>(e.into_response(""));
                        }
                        Ok(handler.handle(req, remote).await)
                    }
                });
                let conn = builder.serve_connection(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    graceful.shutdown().await;
}
