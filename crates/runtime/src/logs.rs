//! Function stdout/stderr, tagged with the request it belongs to, and the platform's own
//! per-invocation lines in Lambda's words (`START`, `END`, `REPORT`, timeouts, crashes,
//! out-of-memory kills), which tools that read Lambda logs parse.
//!
//! [`Tail`] keeps the last [`TAIL_BYTES`] of the lines of the invocations someone asked it
//! to follow: the Lambda API's `X-Amz-Log-Type: Tail`. It sits after redaction and the
//! per-invocation budget (the binary puts it behind its telemetry sink), so a tail holds what
//! `gust logs` holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
    /// A line the platform wrote about the invocation (`START`, `REPORT`, a timeout): never
    /// counted against the function's output budget.
    Platform,
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
            Stream::Stdout | Stream::Platform => {
                tracing::info!(target: "function", function = %l.function, request_id = req, "{}", l.line)
            }
            Stream::Stderr => {
                tracing::warn!(target: "function", function = %l.function, request_id = req, "{}", l.line)
            }
        }
    }
}

/// How much of an invocation's log `X-Amz-Log-Type: Tail` returns, as Lambda: the last 4 KB.
pub const TAIL_BYTES: usize = 4 * 1024;

/// The platform lines of one invocation, as Lambda writes them.
pub(crate) mod platform {
    use super::*;

    pub(crate) fn start(request_id: &str) -> String {
        format!("START RequestId: {request_id} Version: $LATEST")
    }

    pub(crate) fn end(request_id: &str) -> String {
        format!("END RequestId: {request_id}")
    }

    /// What one invocation cost, in Lambda's `REPORT` format: fields separated by tabs (one
    /// after the last too), durations in ms with two decimals, billed in whole ms, memory in
    /// MB; `Init Duration` only on a cold start.
    pub(crate) struct Report {
        pub duration: Duration,
        pub billed: Duration,
        pub memory_mb: u32,
        pub max_memory_used_mb: u64,
        pub init: Option<Duration>,
    }

    fn ms(d: Duration) -> String {
        format!("{:.2}", d.as_secs_f64() * 1000.0)
    }

    pub(crate) fn report(request_id: &str, r: &Report) -> String {
        let mut line = format!(
            "REPORT RequestId: {request_id}\tDuration: {} ms\tBilled Duration: {} ms\tMemory Size: {} MB\tMax Memory Used: {} MB\t",
            ms(r.duration),
            r.billed.as_millis(),
            r.memory_mb,
            r.max_memory_used_mb
        );
        if let Some(init) = r.init {
            line.push_str(&format!("Init Duration: {} ms\t", ms(init)));
        }
        line
    }

    /// Lambda's timeout line: `<time> <request id> Task timed out after 3.00 seconds`.
    pub(crate) fn timed_out(request_id: &str, timeout: Duration) -> String {
        let now = chrono_like_now();
        format!(
            "{now} {request_id} Task timed out after {:.2} seconds",
            timeout.as_secs_f64()
        )
    }

    /// Lambda's line for a runtime that exited mid-invocation, then its error type on a line
    /// of its own (`Runtime.ExitError`, `Runtime.OutOfMemory`).
    pub(crate) fn exited(request_id: &str, detail: &str, error_type: &str) -> [String; 2] {
        [
            format!("RequestId: {request_id} Error: Runtime exited with error: {detail}"),
            error_type.to_string(),
        ]
    }

    /// Lambda's line for an init that failed: `INIT_REPORT Init Duration: ... Phase: init
    /// Status: error Error Type: ...`, then the error itself.
    pub(crate) fn init_failed(
        request_id: &str,
        init: Option<Duration>,
        error_type: &str,
        message: &str,
    ) -> Vec<String> {
        let mut lines = Vec::new();
        if let Some(init) = init {
            lines.push(format!(
                "INIT_REPORT Init Duration: {} ms\tPhase: init\tStatus: error\tError Type: {error_type}",
                ms(init)
            ));
        }
        lines.push(format!("RequestId: {request_id} Error: {message}"));
        lines.push(error_type.to_string());
        lines
    }

    /// UTC now as `2026-12-07T15:29:25.123Z`, without a date crate.
    fn chrono_like_now() -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let secs = now.as_secs() as i64;
        let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + i64::from(month <= 2);
        format!(
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            now.subsec_millis()
        )
    }
}

/// Keeps the tail of the log of the invocations it was asked to follow, and passes every line
/// on to the sink behind it.
pub struct Tail {
    inner: Arc<dyn LogSink>,
    /// How many invocations are followed: lines skip the lock when none is.
    following: AtomicUsize,
    logs: Mutex<HashMap<Arc<str>, String>>,
}

impl std::fmt::Debug for Tail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tail")
            .field("following", &self.following.load(Ordering::Relaxed))
            .finish()
    }
}

impl Tail {
    pub fn new(inner: Arc<dyn LogSink>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            following: AtomicUsize::new(0),
            logs: Mutex::new(HashMap::new()),
        })
    }

    /// Starts keeping the lines of `request_id` (before the invocation starts).
    pub fn follow(&self, request_id: &str) {
        let mut logs = self.logs.lock().expect("tail lock");
        if logs.insert(request_id.into(), String::new()).is_none() {
            self.following.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Stops following `request_id` and gives its last [`TAIL_BYTES`] (whole characters).
    pub fn take(&self, request_id: &str) -> String {
        let mut logs = self.logs.lock().expect("tail lock");
        match logs.remove(request_id) {
            Some(text) => {
                self.following.fetch_sub(1, Ordering::AcqRel);
                last_bytes(&text, TAIL_BYTES).to_string()
            }
            None => String::new(),
        }
    }
}

/// The last `max` bytes of `text`, starting at a character boundary.
fn last_bytes(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

impl LogSink for Tail {
    fn line(&self, l: LogLine) {
        if self.following.load(Ordering::Acquire) > 0 {
            if let Some(id) = &l.request_id {
                let mut logs = self.logs.lock().expect("tail lock");
                if let Some(text) = logs.get_mut(id) {
                    text.push_str(&l.line);
                    text.push('\n');
                    // Bounded however much the invocation prints: cut back to the tail now
                    // and then, not at every line.
                    if text.len() > 4 * TAIL_BYTES {
                        *text = last_bytes(text, TAIL_BYTES).to_string();
                    }
                }
            }
        }
        self.inner.line(l);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_has_lambdas_fields_and_separators() {
        let r = platform::Report {
            duration: Duration::from_micros(1234),
            billed: Duration::from_millis(2),
            memory_mb: 128,
            max_memory_used_mb: 40,
            init: Some(Duration::from_micros(5672)),
        };
        assert_eq!(
            platform::report("id-1", &r),
            "REPORT RequestId: id-1\tDuration: 1.23 ms\tBilled Duration: 2 ms\tMemory Size: 128 MB\tMax Memory Used: 40 MB\tInit Duration: 5.67 ms\t"
        );
        let warm = platform::Report { init: None, ..r };
        assert!(!platform::report("id-1", &warm).contains("Init"));
        assert_eq!(platform::start("id-1"), "START RequestId: id-1 Version: $LATEST");
        assert_eq!(platform::end("id-1"), "END RequestId: id-1");
        let t = platform::timed_out("id-1", Duration::from_secs(3));
        assert!(t.ends_with(" id-1 Task timed out after 3.00 seconds"), "{t}");
        assert_eq!(
            t.len(),
            "2026-12-07T15:29:25.123Z".len() + " id-1 Task timed out after 3.00 seconds".len()
        );
    }

    #[derive(Default)]
    struct Nothing;
    impl LogSink for Nothing {
        fn line(&self, _: LogLine) {}
    }

    fn line(id: &str, text: &str) -> LogLine {
        LogLine {
            function: "f".into(),
            instance: 1,
            request_id: Some(id.into()),
            stream: Stream::Stdout,
            line: text.into(),
        }
    }

    #[test]
    fn tail_keeps_the_last_bytes_of_followed_invocations_only() {
        let tail = Tail::new(Arc::new(Nothing));
        tail.line(line("a", "before"));
        tail.follow("a");
        tail.line(line("b", "other"));
        for i in 0..2000 {
            tail.line(line("a", &format!("line é {i}")));
        }
        let text = tail.take("a");
        assert!(
            text.len() <= TAIL_BYTES && text.len() > TAIL_BYTES - 20,
            "{}",
            text.len()
        );
        assert!(text.ends_with("line é 1999\n"));
        assert!(!text.contains("before") && !text.contains("other"));
        assert_eq!(tail.take("a"), "");
        assert_eq!(tail.following.load(Ordering::Relaxed), 0);
    }
}
