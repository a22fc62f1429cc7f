//! `GET /gust/v1/logs/stream`: function output as server-sent events, for the console's live
//! tail (and any client that speaks `text/event-stream`).
//!
//! Each stream is a task that reads new lines from the telemetry store after the last id it
//! sent, then waits until a line is recorded ([`gust_store::TelemetryDb::watch_logs`]), a
//! keep-alive is due, or Gust shuts down. Reading the store rather than a broadcast of lines
//! means a slow client loses nothing and costs nothing while it lags (the channel to it is
//! bounded; the task waits), and `Last-Event-ID` resumes exactly where a dropped connection
//! stopped. At most [`MAX_STREAMS`] are open at once; past that, `503 TooManyStreams`.

use super::{Admin, Body};
use crate::codes::ErrorCode;
use crate::error::ApiError;
use crate::routes::percent_decode;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub const MAX_STREAMS: usize = 32;
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Lines recorded close together go out in one read.
const COALESCE: Duration = Duration::from_millis(50);
const BATCH: usize = 500;

/// The open streams and the signal that ends them.
pub struct Streams {
    open: Arc<AtomicUsize>,
    closed: tokio::sync::watch::Sender<bool>,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            open: Arc::default(),
            closed: tokio::sync::watch::Sender::new(false),
        }
    }
}

impl Streams {
    pub fn close(&self) {
        self.closed.send_replace(true);
    }
}

/// Counts a stream while it is open.
struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn event(line: &gust_store::LogRow) -> Bytes {
    let json = serde_json::to_string(&gust_api::LogLine {
        id: line.id,
        ts_ms: line.ts_ms,
        function: line.function.clone(),
        request_id: line.request_id.clone(),
        stream: line.stream.clone(),
        line: line.line.clone(),
    })
    .expect("log lines serialise");
    // JSON has no raw newlines, so one `data:` line holds it.
    Bytes::from(format!("id: {}\ndata: {json}\n\n", line.id))
}

impl Admin {
    pub(super) fn log_stream(&self, req: &Request<Incoming>) -> Result<Response<Body>, ApiError> {
        let db = self
            .telemetry
            .clone()
            .ok_or_else(|| ApiError::new(ErrorCode::TelemetryDisabled, "telemetry is not kept on this Gust"))?;
        let function = req.uri().query().and_then(|q| {
            q.split('&').find_map(|p| {
                let (k, v) = p.split_once('=')?;
                (k == "function" && !v.is_empty()).then(|| percent_decode(v))
            })
        });
        let resume = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok());
        let open = self.streams.open.clone();
        if open.fetch_add(1, Ordering::Relaxed) >= MAX_STREAMS {
            open.fetch_sub(1, Ordering::Relaxed);
            return Err(ApiError::new(
                ErrorCode::TooManyStreams,
                format!("{MAX_STREAMS} log streams are open; close one or retry later"),
            ));
        }
        let slot = Slot(open);
        let mut closed = self.streams.closed.subscribe();
        let mut recorded = db.watch_logs();
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let started_ms = chrono::Utc::now().timestamp_millis();
        tokio::spawn(async move {
            let _slot = slot;
            let mut after = resume;
            if tx.send(Bytes::from_static(b"retry: 1000\n\n")).await.is_err() {
                return;
            }
            loop {
                if *closed.borrow() {
                    return;
                }
                let q = gust_store::LogQuery {
                    function: function.clone(),
                    // From now on, unless resuming after a line already sent.
                    since_ms: after.is_none().then_some(started_ms),
                    after_id: after,
                    limit: BATCH,
                    ..Default::default()
                };
                let lines = match db.logs(q).await {
                    Ok(lines) => lines,
                    Err(e) => {
                        tracing::warn!(error = %e, "the log stream cannot read the store; it ends");
                        return;
                    }
                };
                let full = lines.len() == BATCH;
                for line in &lines {
                    if tx.send(event(line)).await.is_err() {
                        return;
                    }
                    after = Some(line.id);
                }
                if full {
                    continue;
                }
                tokio::select! {
                    changed = recorded.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        tokio::time::sleep(COALESCE).await;
                    }
                    _ = tokio::time::sleep(KEEP_ALIVE) => {
                        if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                            return;
                        }
                    }
                    _ = closed.changed() => return,
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(http::header::CONTENT_TYPE, "text/event-stream")
            .header(http::header::CACHE_CONTROL, "no-store")
            .body(Body::Chunks(rx))
            .expect("static response parts are valid"))
    }
}
