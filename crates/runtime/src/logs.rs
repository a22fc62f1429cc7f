//! Function stdout/stderr, tagged with the request it belongs to.

use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// One line a function printed.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub function: Arc<str>,
    pub instance: u64,
    /// The invocation running when the line was printed; `None` during init or between calls.
    pub request_id: Option<Arc<str>>,
    pub stream: Stream,
    pub line: String,
}

/// Where captured function output goes. The binary decides (terminal, state database).
pub trait LogSink: Send + Sync + 'static {
    fn line(&self, line: LogLine);
}

/// Writes function output as `tracing` events (target `function`).
#[derive(Debug, Default)]
pub struct TracingLogSink;

impl LogSink for TracingLogSink {
    fn line(&self, l: LogLine) {
        let req = l.request_id.as_deref().unwrap_or("-");
        match l.stream {
            Stream::Stdout => {
                tracing::info!(target: "function", function = %l.function, request_id = req, "{}", l.line)
            }
            Stream::Stderr => {
                tracing::warn!(target: "function", function = %l.function, request_id = req, "{}", l.line)
            }
        }
    }
}
