//! Where the platform's records go: invocation records, spans and function output are
//! stored (for `gust logs`, `gust invocations`, `gust trace`, `gust cost`) and function output
//! is also passed on to the terminal (or a test's sink).
//!
//! Function output is bounded per invocation: past [`LOG_LIMIT_BYTES`] the rest of that
//! invocation's output is dropped and one marker line says so (never silently).

use gust_model::{InvocationRecord, SpanRecord};
use gust_runtime::{LogLine, LogSink, Stream, Telemetry};
use gust_store::TelemetryDb;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Function output kept per invocation.
pub const LOG_LIMIT_BYTES: usize = 256 * 1024;
/// Longest single line kept; longer lines are cut and marked.
pub const LINE_LIMIT_BYTES: usize = 16 * 1024;

pub struct PlatformTelemetry {
    db: TelemetryDb,
    otlp: Option<crate::otlp::OtlpExporter>,
    forward: Arc<dyn LogSink>,
    limit: usize,
    /// Bytes seen per request id (and whether the marker was written), with last use.
    seen: Mutex<HashMap<Arc<str>, (usize, bool, Instant)>>,
}

impl PlatformTelemetry {
    pub fn new(
        db: TelemetryDb,
        forward: Arc<dyn LogSink>,
        limit: usize,
        otlp: Option<crate::otlp::OtlpExporter>,
    ) -> Arc<Self> {
        Arc::new(Self {
            db,
            otlp,
            forward,
            limit,
            seen: Mutex::new(HashMap::new()),
        })
    }

    pub fn db(&self) -> &TelemetryDb {
        &self.db
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn cut(line: &str, max: usize) -> String {
    if line.len() <= max {
        return line.to_string();
    }
    let mut end = max;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{} [gust: line cut at {max} bytes]", &line[..end])
}

impl LogSink for PlatformTelemetry {
    fn line(&self, mut l: LogLine) {
        let stderr = l.stream == Stream::Stderr;
        // Cut first: an invocation's budget counts what is stored, so one long line costs its
        // stored 16 KiB, not the bytes it was printed with.
        let mut text = cut(&l.line, LINE_LIMIT_BYTES);
        // The platform's own lines (`START`, `REPORT`, ...) are not the function's output.
        let counted = l.request_id.as_ref().filter(|_| l.stream != Stream::Platform);
        if let Some(req) = counted {
            let mut seen = self.seen.lock().expect("log limit lock");
            if seen.len() > 10_000 {
                let stale = Instant::now() - Duration::from_secs(600);
                seen.retain(|_, (_, _, at)| *at > stale);
            }
            let entry = seen.entry(req.clone()).or_insert((0, false, Instant::now()));
            entry.2 = Instant::now();
            if entry.0 >= self.limit {
                if entry.1 {
                    return;
                }
                entry.1 = true;
                text = format!(
                    "[gust] log output truncated: this invocation printed more than {} bytes",
                    self.limit
                );
            } else {
                entry.0 += text.len() + 1;
            }
        }
        // Secret values never reach stored logs or the terminal, even when a function prints one.
        let line = crate::secrets::redact(&text);
        self.db
            .record_log(now_ms(), &l.function, l.request_id.as_deref(), stderr, line.clone());
        l.line = line;
        self.forward.line(l);
    }
}

impl Telemetry for PlatformTelemetry {
    fn invocation(&self, record: InvocationRecord) {
        // The invoke span is stored inside the record; exporters get it as a span.
        if let Some(o) = &self.otlp {
            if let Some(span) = record.invoke_span() {
                o.export(span);
            }
        }
        self.db.record_invocation(record);
    }

    fn span(&self, span: SpanRecord) {
        if let Some(o) = &self.otlp {
            o.export(span.clone());
        }
        self.db.record_span(span);
    }
}
