//! What Gust records about its work: one record per invocation, spans of a trace, and W3C
//! trace context. Plain data: the runtime produces it, the store keeps it, the CLI shows it.

use std::fmt;

/// One invocation, written once by the Invoker for every trigger.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationRecord {
    pub request_id: String,
    pub function: String,
    /// `http`, `event`, `schedule`, `direct`, `async`.
    pub trigger: String,
    /// Epoch milliseconds when the invocation was accepted.
    pub start_ms: i64,
    /// Time in the function (microseconds), excluding any wait for an instance.
    pub duration_us: u64,
    /// Duration rounded up to the millisecond, as Lambda bills.
    pub billed_ms: u64,
    pub memory_mb: u32,
    pub cold_start: bool,
    pub init_us: Option<u64>,
    /// `success`, `error` (the handler reported one), `timeout`, `crash`, `out_of_memory`,
    /// `init_error`, `too_large`, `platform_error`.
    pub outcome: String,
    pub error_type: Option<String>,
    pub trace_id: Option<String>,
    /// The invocation's own span (`invoke <function>`). It is kept with the record, not as a
    /// row of its own: one write per invocation instead of two. [`Self::invoke_span`] rebuilds it.
    pub span: Option<InvokeSpan>,
}

/// What the `invoke <function>` span has beyond its invocation record.
#[derive(Debug, Clone, PartialEq)]
pub struct InvokeSpan {
    pub span_id: String,
    /// The span that caused the invocation (the gateway request, the event delivery).
    pub parent_id: Option<String>,
    /// Epoch microseconds when the invocation was accepted (the span starts there).
    pub accepted_us: i64,
    /// Time spent waiting for an instance before the function ran.
    pub wait_us: u64,
}

impl InvocationRecord {
    /// The `invoke <function>` span of this invocation: from acceptance (including any wait for
    /// an instance) to the function's answer. `None` for records without trace context.
    pub fn invoke_span(&self) -> Option<SpanRecord> {
        let s = self.span.as_ref()?;
        Some(SpanRecord {
            trace_id: self.trace_id.clone()?,
            span_id: s.span_id.clone(),
            parent_id: s.parent_id.clone(),
            name: format!("invoke {}", self.function),
            kind: "internal".into(),
            start_us: s.accepted_us,
            duration_us: s.wait_us + self.duration_us,
            error: self.outcome != "success",
            attributes: vec![
                ("faas.invocation_id".into(), self.request_id.clone()),
                ("faas.trigger".into(), self.trigger.clone()),
                ("faas.coldstart".into(), self.cold_start.to_string()),
                ("gust.outcome".into(), self.outcome.clone()),
                ("gust.wait_us".into(), s.wait_us.to_string()),
            ],
        })
    }
}

/// One span of a trace.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    /// `server`, `internal`, `consumer`, `producer`.
    pub kind: String,
    /// Epoch microseconds.
    pub start_us: i64,
    pub duration_us: u64,
    pub error: bool,
    pub attributes: Vec<(String, String)>,
}

/// A W3C `traceparent`: `00-<32 hex trace id>-<16 hex span id>-<flags>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub span_id: String,
    pub sampled: bool,
}

fn random_hex(bytes: usize) -> String {
    let mut out = String::with_capacity(bytes * 2);
    while out.len() < bytes * 2 {
        use std::fmt::Write as _;
        let _ = write!(out, "{:032x}", uuid_random());
    }
    out.truncate(bytes * 2);
    if out.bytes().all(|b| b == b'0') {
        out.replace_range(0..1, "1"); // all-zero ids are invalid
    }
    out
}

/// 128 random bits without a dependency: the OS randomness behind `RandomState`, mixed.
fn uuid_random() -> u128 {
    use std::hash::{BuildHasher, Hasher};
    let mut a = std::collections::hash_map::RandomState::new().build_hasher();
    a.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    let hi = a.finish();
    let mut b = std::collections::hash_map::RandomState::new().build_hasher();
    b.write_u64(hi);
    (hi as u128) << 64 | b.finish() as u128
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

impl TraceParent {
    /// A new trace (the edge starts one when the request carries none).
    ///
    /// As in AWS X-Ray, the trace id starts with the epoch seconds (8 hex digits) and the other
    /// 24 hex digits are random: `to_xray` then gives a well-formed X-Ray root, and trace ids
    /// started here sort by time, so storing and indexing them appends instead of touching
    /// random pages of the telemetry database.
    pub fn new_root() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0) as u32;
        Self {
            trace_id: format!("{secs:08x}{}", random_hex(12)),
            span_id: random_hex(8),
            sampled: true,
        }
    }

    /// A new span in the same trace.
    pub fn child(&self) -> Self {
        Self {
            trace_id: self.trace_id.clone(),
            span_id: random_hex(8),
            sampled: self.sampled,
        }
    }

    /// Parses a `traceparent` header; `None` for anything malformed (then a new trace starts).
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().split('-');
        let (version, trace, span, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if !is_hex(version, 2) || version == "ff" || !is_hex(trace, 32) || !is_hex(span, 16) || !is_hex(flags, 2) {
            return None;
        }
        if trace.bytes().all(|b| b == b'0') || span.bytes().all(|b| b == b'0') {
            return None;
        }
        Some(Self {
            trace_id: trace.into(),
            span_id: span.into(),
            sampled: u8::from_str_radix(flags, 16).ok()? & 1 == 1,
        })
    }

    /// From an X-Ray header (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`),
    /// which Lambda functions see as `_X_AMZN_TRACE_ID`.
    pub fn from_xray(s: &str) -> Option<Self> {
        let mut root = None;
        let mut parent = None;
        let mut sampled = true;
        for part in s.split(';') {
            match part.trim().split_once('=') {
                Some(("Root", v)) => root = Some(v.strip_prefix("1-")?.replace('-', "")),
                Some(("Parent", v)) => parent = Some(v.to_string()),
                Some(("Sampled", v)) => sampled = v == "1",
                _ => {}
            }
        }
        let (trace_id, span_id) = (root?.to_ascii_lowercase(), parent?.to_ascii_lowercase());
        (is_hex(&trace_id, 32) && is_hex(&span_id, 16)).then_some(Self {
            trace_id,
            span_id,
            sampled,
        })
    }

    /// The `Lambda-Runtime-Trace-Id` / `_X_AMZN_TRACE_ID` form of this context.
    pub fn to_xray(&self) -> String {
        format!(
            "Root=1-{}-{};Parent={};Sampled={}",
            &self.trace_id[..8],
            &self.trace_id[8..],
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trips_and_maps_to_xray() {
        let t = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01").unwrap();
        assert_eq!(t.to_string(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let x = t.to_xray();
        assert_eq!(
            x,
            "Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1"
        );
        assert_eq!(TraceParent::from_xray(&x), Some(t.clone()));
        let c = t.child();
        assert_eq!(c.trace_id, t.trace_id);
        assert_ne!(c.span_id, t.span_id);
        for bad in [
            "",
            "00-xyz-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
        ] {
            assert!(TraceParent::parse(bad).is_none(), "{bad}");
        }
        let r = TraceParent::new_root();
        assert!(TraceParent::parse(&r.to_string()).is_some());
        assert_ne!(TraceParent::new_root().trace_id, r.trace_id);
    }

    #[test]
    fn new_trace_ids_start_with_the_epoch_seconds_like_xray() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let r = TraceParent::new_root();
        let secs = u64::from_str_radix(&r.trace_id[..8], 16).unwrap();
        assert!(secs >= before && secs <= before + 5, "{} vs {before}", r.trace_id);
        let xray = r.to_xray();
        assert!(xray.starts_with(&format!("Root=1-{secs:08x}-")), "{xray}");
        // The random part differs between traces started in the same second.
        assert_ne!(TraceParent::new_root().trace_id[8..], r.trace_id[8..]);
    }
}
