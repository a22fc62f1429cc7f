//! The AWS Lambda Runtime API, served to one instance on its own 127.0.0.1 port.
//!
//! Endpoints (2018-06-01): `GET /runtime/invocation/next` (long poll), `POST
//! /runtime/invocation/{id}/response`, `POST /runtime/invocation/{id}/error`, `POST
//! /runtime/init/error`. One endpoint per instance means a request id can only ever be
//! answered by the process it was handed to.

use crate::sandbox::NetNs;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// The largest response a function may return (Lambda's 6 MB synchronous limit).
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;
/// Error bodies and init errors are small; anything larger is cut.
const MAX_ERROR_BYTES: usize = 256 * 1024;

const PREFIX: &str = "/2018-06-01/runtime/";

/// One invocation handed to the runtime.
pub(crate) struct Work {
    pub request_id: Arc<str>,
    pub deadline_ms: u64,
    pub function_arn: Arc<str>,
    pub trace_id: Option<String>,
    pub client_context: Option<String>,
    pub payload: Bytes,
    pub done: oneshot::Sender<Outcome>,
}

/// What the runtime answered.
#[derive(Debug)]
pub(crate) enum Outcome {
    Response(Bytes),
    Error { error_type: String, body: Bytes },
    TooLarge(usize),
}

/// How init ended.
#[derive(Debug)]
pub(crate) enum InitSignal {
    Ready,
    Failed { error_type: String, body: Bytes },
}

pub(crate) struct ApiState {
    next: tokio::sync::Mutex<mpsc::Receiver<Work>>,
    pending: Mutex<HashMap<Arc<str>, oneshot::Sender<Outcome>>>,
    init: Mutex<Option<oneshot::Sender<InitSignal>>>,
    /// For prewarmed spares: the function assignment, answered on `/runtime/gust/specialize`.
    specialize: tokio::sync::Mutex<Option<oneshot::Receiver<Bytes>>>,
    /// The request last handed to the function, for tagging its output. Not cleared at the
    /// response: output read from the pipe just after the response still belongs to it.
    pub current: Mutex<Option<Arc<str>>>,
    /// Whether the runtime is parked on `/next` with nothing handed to it: the point where an
    /// idle instance may be frozen (`sandbox/freezer.rs`).
    pub at_next: tokio::sync::watch::Sender<bool>,
}

pub(crate) struct ApiServer {
    pub addr: SocketAddr,
    /// The same API on a Unix socket, given to the process as `GUST_RUNTIME_API_SOCKET`.
    /// Gust's own bootstraps use it: a Unix socket costs both sides less CPU per message than
    /// TCP over loopback. Removed when the server is dropped.
    pub socket_path: Option<PathBuf>,
    specialize: Mutex<Option<oneshot::Sender<Bytes>>>,
    pub state: Arc<ApiState>,
    pub work: mpsc::Sender<Work>,
    pub init: oneshot::Receiver<InitSignal>,
    /// The launcher's pid once started, for servers that check their peers (sandboxed).
    owner: Option<tokio::sync::watch::Sender<i32>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(p) = &self.socket_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl ApiServer {
    /// Assigns a prewarmed process its function: the body of the `/specialize` answer.
    pub fn specialize(&self, body: Bytes) {
        if let Some(tx) = self.specialize.lock().expect("specialize lock").take() {
            let _ = tx.send(body);
        }
    }

    /// Tells a peer-checking server which process tree is its instance's.
    pub fn set_owner(&self, pid: i32) {
        if let Some(owner) = &self.owner {
            let _ = owner.send(pid);
        }
    }

    /// Listens on a free 127.0.0.1 port, and on a Unix socket in `socket_dir` when given.
    /// With `check_peers`, a connection is served only if it comes from a process of the
    /// instance [`set_owner`](Self::set_owner) names (`sandbox/peer.rs`). `inside`: the
    /// listener already bound in the instance's own network namespace, and that namespace
    /// (`network = "none"`, `sandbox/netns.rs`).
    pub async fn bind(
        socket_dir: Option<&Path>,
        check_peers: bool,
        inside: Option<(std::net::TcpListener, Arc<NetNs>)>,
    ) -> std::io::Result<Self> {
        let (listener, netns) = match inside {
            Some((listener, netns)) => (TcpListener::from_std(listener)?, Some(netns)),
            None => (TcpListener::bind(("127.0.0.1", 0)).await?, None),
        };
        let addr = listener.local_addr()?;
        let unix = bind_unix(socket_dir);
        let socket_path = unix.as_ref().map(|(path, _)| path.clone());
        let unix = unix.map(|(_, l)| l);
        let (work, rx) = mpsc::channel(1);
        let (init_tx, init) = oneshot::channel();
        let (specialize_tx, specialize_rx) = oneshot::channel();
        let state = Arc::new(ApiState {
            specialize: tokio::sync::Mutex::new(Some(specialize_rx)),
            next: tokio::sync::Mutex::new(rx),
            pending: Mutex::new(HashMap::new()),
            init: Mutex::new(Some(init_tx)),
            current: Mutex::new(None),
            at_next: tokio::sync::watch::Sender::new(false),
        });
        let served = state.clone();
        let (owner_tx, owner) = tokio::sync::watch::channel(0);
        let owner = check_peers.then_some(owner);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, peer)) = accepted else { continue };
                        let _ = stream.set_nodelay(true);
                        let (state, owner, netns) = (served.clone(), owner.clone(), netns.clone());
                        conns.spawn(async move {
                            if let Some(owner) = owner {
                                let Some(pid) = owner_pid(owner).await else { return };
                                if !crate::sandbox::tcp_peer_allowed(addr, peer, pid, netns.as_deref()) {
                                    refused("tcp");
                                    return;
                                }
                            }
                            serve(state, stream).await
                        });
                    }
                    accepted = accept_unix(unix.as_ref()) => {
                        let Ok((stream, _)) = accepted else { continue };
                        let (state, owner) = (served.clone(), owner.clone());
                        conns.spawn(async move {
                            if let Some(owner) = owner {
                                let Some(pid) = owner_pid(owner).await else { return };
                                let allowed = crate::sandbox::namespace_of(pid)
                                    .is_some_and(|ns| crate::sandbox::unix_peer_allowed(&stream, &ns));
                                if !allowed {
                                    refused("unix");
                                    return;
                                }
                            }
                            serve(state, stream).await
                        });
                    }
                }
                while conns.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            socket_path,
            specialize: Mutex::new(Some(specialize_tx)),
            state,
            work,
            init,
            owner: check_peers.then_some(owner_tx),
            task,
        })
    }
}

/// The instance's launcher pid; a connection made before it is known waits for it.
async fn owner_pid(mut owner: tokio::sync::watch::Receiver<i32>) -> Option<i32> {
    let wait = owner.wait_for(|pid| *pid != 0);
    match tokio::time::timeout(std::time::Duration::from_secs(5), wait).await {
        Ok(Ok(pid)) => Some(*pid),
        _ => None,
    }
}

fn refused(transport: &str) {
    tracing::warn!(
        transport,
        "refused a Runtime API connection from a process outside the instance"
    );
}

/// A listener on a fresh Unix socket in `dir`, or `None` (no directory, or it failed): the
/// process then uses TCP only.
fn bind_unix(dir: Option<&Path>) -> Option<(PathBuf, tokio::net::UnixListener)> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let path = dir?.join(format!("{}.sock", NEXT.fetch_add(1, Ordering::Relaxed)));
    let _ = std::fs::remove_file(&path);
    match tokio::net::UnixListener::bind(&path) {
        Ok(l) => Some((path, l)),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "no Unix socket for the Runtime API; TCP only");
            None
        }
    }
}

/// Serves the Runtime API on one accepted connection (TCP or Unix) until it closes.
async fn serve<S>(state: Arc<ApiState>, stream: S)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| handle(state.clone(), req));
    let _ = hyper::server::conn::http1::Builder::new()
        // Pipelined requests (a response, then the next long poll) get their answers in one
        // write when both are ready; see the 202 in `handle`.
        .pipeline_flush(true)
        .serve_connection(TokioIo::new(stream), svc)
        .await;
}

async fn accept_unix(
    listener: Option<&tokio::net::UnixListener>,
) -> std::io::Result<(tokio::net::UnixStream, tokio::net::unix::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body.as_bytes())))
        .expect("static response parts are valid")
}

async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, usize> {
    let declared = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(n) = declared.filter(|n| *n > limit) {
        return Err(n);
    }
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(limit + 1),
    }
}

fn error_type_of(headers: &http::HeaderMap, body: &[u8]) -> String {
    if let Some(t) = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
    {
        return t.to_string();
    }
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("errorType")?.as_str().map(str::to_string))
        .unwrap_or_else(|| "Unhandled".to_string())
}

async fn handle(state: Arc<ApiState>, req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path().to_string();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            r#"{"errorMessage":"not found","errorType":"NotFound"}"#,
        ));
    };
    let method = req.method().clone();
    if method == Method::GET && rest == "invocation/next" {
        return Ok(next(&state).await);
    }
    if method == Method::GET && rest == "gust/specialize" {
        let rx = state.specialize.lock().await.take();
        return Ok(match rx {
            Some(rx) => match rx.await {
                Ok(body) => Response::builder()
                    .status(StatusCode::OK)
                    .header("content-type", "application/json")
                    .body(Full::new(body))
                    .expect("static response parts are valid"),
                Err(_) => reply(
                    StatusCode::GONE,
                    r#"{"errorMessage":"instance stopped","errorType":"Stopped"}"#,
                ),
            },
            None => reply(
                StatusCode::CONFLICT,
                r#"{"errorMessage":"already specialised","errorType":"InvalidState"}"#,
            ),
        });
    }
    if method == Method::POST && rest == "init/error" {
        let headers = req.headers().clone();
        let body = read_body(req, MAX_ERROR_BYTES).await.unwrap_or_default();
        let error_type = error_type_of(&headers, &body);
        if let Some(tx) = state.init.lock().expect("init lock").take() {
            let _ = tx.send(InitSignal::Failed { error_type, body });
        }
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    if method == Method::POST {
        if let Some(inv) = rest.strip_prefix("invocation/") {
            if let Some((id, kind)) = inv.rsplit_once('/') {
                let headers = req.headers().clone();
                let outcome = match kind {
                    "response" => match read_body(req, MAX_RESPONSE_BYTES).await {
                        Ok(body) => Outcome::Response(body),
                        Err(size) => Outcome::TooLarge(size),
                    },
                    "error" => {
                        let body = read_body(req, MAX_ERROR_BYTES).await.unwrap_or_default();
                        Outcome::Error {
                            error_type: error_type_of(&headers, &body),
                            body,
                        }
                    }
                    _ => {
                        return Ok(reply(
                            StatusCode::NOT_FOUND,
                            r#"{"errorMessage":"not found","errorType":"NotFound"}"#,
                        ))
                    }
                };
                let waiter = state.pending.lock().expect("pending lock").remove(id);
                return Ok(match waiter {
                    Some(tx) => {
                        let _ = tx.send(outcome);
                        // Let the woken invoker release the instance and the next waiting
                        // invocation queue its work before this 202 is written: a runtime that
                        // pipelined its next `/next` (Gust's bootstraps do) then gets the 202
                        // and its next event in one write, one wake-up instead of two
                        // (`pipeline_flush` keeps hyper from flushing the 202 alone while the
                        // `/next` is still in its read buffer). Under load this took the Node
                        // instances from 1.5 to 1.2 context switches per request and their
                        // CPU per request down by a tenth (bench/cpu_per_request.sh).
                        tokio::task::yield_now().await;
                        reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
                    }
                    None => reply(
                        StatusCode::BAD_REQUEST,
                        r#"{"errorMessage":"Invalid request ID","errorType":"InvalidRequestID"}"#,
                    ),
                });
            }
        }
    }
    Ok(reply(
        StatusCode::NOT_FOUND,
        r#"{"errorMessage":"not found","errorType":"NotFound"}"#,
    ))
}

async fn next(state: &ApiState) -> Response<Full<Bytes>> {
    // The first long poll means init is done.
    if let Some(tx) = state.init.lock().expect("init lock").take() {
        let _ = tx.send(InitSignal::Ready);
    }
    let work = {
        let mut rx = state.next.lock().await;
        // Cleared however the wait ends (an event, or the runtime hanging up).
        struct Parked<'a>(&'a tokio::sync::watch::Sender<bool>);
        impl Drop for Parked<'_> {
            fn drop(&mut self) {
                self.0.send_replace(false);
            }
        }
        state.at_next.send_replace(true);
        let _parked = Parked(&state.at_next);
        rx.recv().await
    };
    let Some(work) = work else {
        // The instance is stopping; the process is about to be killed.
        return reply(
            StatusCode::GONE,
            r#"{"errorMessage":"instance stopped","errorType":"Stopped"}"#,
        );
    };
    let Work {
        request_id,
        deadline_ms,
        function_arn,
        trace_id,
        client_context,
        payload,
        done,
    } = work;
    state
        .pending
        .lock()
        .expect("pending lock")
        .insert(request_id.clone(), done);
    *state.current.lock().expect("current lock") = Some(request_id.clone());
    let mut b = Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("lambda-runtime-aws-request-id", &*request_id)
        .header("lambda-runtime-deadline-ms", deadline_ms.to_string())
        .header("lambda-runtime-invoked-function-arn", &*function_arn);
    if let Some(t) = trace_id {
        b = b.header("lambda-runtime-trace-id", t);
    }
    if let Some(c) = client_context {
        b = b.header("lambda-runtime-client-context", c);
    }
    b.body(Full::new(payload)).unwrap_or_else(|_| {
        reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            r#"{"errorMessage":"bad header","errorType":"ServiceException"}"#,
        )
    })
}
