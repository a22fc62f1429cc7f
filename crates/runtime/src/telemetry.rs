//! Where the runtime reports what it did: invocation records and spans go to a
//! [`Telemetry`] sink (the binary stores them), counters and histograms to [`Metrics`].
//!
//! The metrics registry is Gust's own and per platform, not a global recorder: several
//! platforms in one test process keep separate counts, and the Prometheus text format needs
//! nothing more than this. Every metric name is a constant in [`names`].

use gust_model::{InvocationRecord, SpanRecord};
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;

/// Receives what the runtime and the events machinery report. Must not block.
pub trait Telemetry: Send + Sync + 'static {
    fn invocation(&self, record: InvocationRecord);
    fn span(&self, span: SpanRecord);
}

/// Drops everything (for embedders that keep no records).
#[derive(Debug, Default)]
pub struct NoTelemetry;

impl Telemetry for NoTelemetry {
    fn invocation(&self, _: InvocationRecord) {}
    fn span(&self, _: SpanRecord) {}
}

/// Metric names, in one place (Prometheus conventions: `_total` counters, base units).
pub mod names {
    pub const INVOCATIONS: &str = "gust_invocations_total";
    pub const INVOCATION_DURATION: &str = "gust_invocation_duration_seconds";
    pub const COLD_STARTS: &str = "gust_cold_starts_total";
    pub const INIT_DURATION: &str = "gust_init_duration_seconds";
    pub const THROTTLES: &str = "gust_throttles_total";
    pub const INSTANCES: &str = "gust_instances";
    pub const POOL_QUEUE: &str = "gust_pool_queue_length";
    pub const EVENTS_PUBLISHED: &str = "gust_events_published_total";
    pub const EVENT_DELIVERIES: &str = "gust_event_deliveries_total";
    pub const EVENT_RETRIES: &str = "gust_event_retries_total";
    pub const DEAD_LETTERS: &str = "gust_dead_letters_total";
    pub const EVENT_BACKLOG: &str = "gust_event_backlog";
    pub const DLQ_DEPTH: &str = "gust_dlq_depth";
    pub const SOURCE_UP: &str = "gust_source_up";
    pub const SOURCE_LAG: &str = "gust_source_lag";
    pub const SOURCE_RECEIVED: &str = "gust_source_messages_total";
    pub const SCHEDULE_FIRES: &str = "gust_schedule_fires_total";
    pub const SCHEDULE_MISSES: &str = "gust_schedule_misses_total";

    /// `(name, type, help)` for the exposition's `# HELP`/`# TYPE` lines.
    pub const ALL: [(&str, &str, &str); 18] = [
        (INVOCATIONS, "counter", "Invocations by function, trigger and outcome"),
        (INVOCATION_DURATION, "histogram", "Time in the function per invocation"),
        (COLD_STARTS, "counter", "Invocations that had to start an instance"),
        (INIT_DURATION, "histogram", "Instance init time on cold starts"),
        (
            THROTTLES,
            "counter",
            "Invocations refused with 429 (instances and queue full)",
        ),
        (INSTANCES, "gauge", "Instances by state (busy, idle)"),
        (POOL_QUEUE, "gauge", "Invocations waiting for an instance"),
        (EVENTS_PUBLISHED, "counter", "Events accepted per topic"),
        (
            EVENT_DELIVERIES,
            "counter",
            "Delivery attempts per subscription and result",
        ),
        (EVENT_RETRIES, "counter", "Records scheduled for another attempt"),
        (DEAD_LETTERS, "counter", "Records moved to a dead-letter queue"),
        (EVENT_BACKLOG, "gauge", "Records waiting per subscription"),
        (DLQ_DEPTH, "gauge", "Dead letters per subscription"),
        (
            SOURCE_UP,
            "gauge",
            "1 while a broker source is connected, 0 while it reconnects",
        ),
        (
            SOURCE_LAG,
            "gauge",
            "Messages a broker holds that a source subscription has not finished",
        ),
        (
            SOURCE_RECEIVED,
            "counter",
            "Messages read from a broker source (redeliveries included)",
        ),
        (SCHEDULE_FIRES, "counter", "Schedule ticks that ran"),
        (
            SCHEDULE_MISSES,
            "counter",
            "Schedule ticks dropped (missed, or skipped on overlap)",
        ),
    ];
}

/// Histogram bucket bounds in seconds: 1 ms .. 60 s.
const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0,
];

type Labels = Vec<(&'static str, String)>;

#[derive(Default)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Default)]
struct Registry {
    counters: BTreeMap<(&'static str, Labels), u64>,
    gauges: BTreeMap<(&'static str, Labels), f64>,
    histograms: BTreeMap<(&'static str, Labels), Histogram>,
}

#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn labels(l: &[(&'static str, &str)]) -> Labels {
    l.iter().map(|(k, v)| (*k, v.to_string())).collect()
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn fmt_labels(l: &Labels, extra: Option<(&str, String)>) -> String {
    let mut parts: Vec<String> = l.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
    if let Some((k, v)) = extra {
        parts.push(format!("{k}=\"{v}\""));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("{{{}}}", parts.join(","))
    }
}

impl Metrics {
    pub fn incr(&self, name: &'static str, l: &[(&'static str, &str)], by: u64) {
        let mut r = self.registry.lock().expect("metrics lock");
        *r.counters.entry((name, labels(l))).or_default() += by;
    }

    pub fn gauge(&self, name: &'static str, l: &[(&'static str, &str)], value: f64) {
        let mut r = self.registry.lock().expect("metrics lock");
        r.gauges.insert((name, labels(l)), value);
    }

    pub fn observe(&self, name: &'static str, l: &[(&'static str, &str)], seconds: f64) {
        let mut r = self.registry.lock().expect("metrics lock");
        let h = r.histograms.entry((name, labels(l))).or_default();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                h.counts[i] += 1;
            }
        }
        h.sum += seconds;
        h.count += 1;
    }

    /// A counter's current value (tests and status output).
    pub fn counter(&self, name: &'static str, l: &[(&'static str, &str)]) -> u64 {
        let r = self.registry.lock().expect("metrics lock");
        r.counters.get(&(name, labels(l))).copied().unwrap_or(0)
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render(&self) -> String {
        let r = self.registry.lock().expect("metrics lock");
        let mut out = String::new();
        for (name, kind, help) in names::ALL {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for ((n, l), v) in r.counters.iter().filter(|((n, _), _)| *n == name) {
                let _ = writeln!(out, "{n}{} {v}", fmt_labels(l, None));
            }
            for ((n, l), v) in r.gauges.iter().filter(|((n, _), _)| *n == name) {
                let _ = writeln!(out, "{n}{} {v}", fmt_labels(l, None));
            }
            for ((n, l), h) in r.histograms.iter().filter(|((n, _), _)| *n == name) {
                for (i, bound) in BUCKETS.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "{n}_bucket{} {}",
                        fmt_labels(l, Some(("le", bound.to_string()))),
                        h.counts[i]
                    );
                }
                let _ = writeln!(
                    out,
                    "{n}_bucket{} {}",
                    fmt_labels(l, Some(("le", "+Inf".into()))),
                    h.count
                );
                let _ = writeln!(out, "{n}_sum{} {}", fmt_labels(l, None), h.sum);
                let _ = writeln!(out, "{n}_count{} {}", fmt_labels(l, None), h.count);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.incr(
            names::INVOCATIONS,
            &[("function", "f"), ("trigger", "http"), ("outcome", "success")],
            2,
        );
        m.observe(names::INVOCATION_DURATION, &[("function", "f")], 0.003);
        m.gauge(names::INSTANCES, &[("function", "f"), ("state", "idle")], 1.0);
        let text = m.render();
        assert!(
            text.contains("gust_invocations_total{function=\"f\",trigger=\"http\",outcome=\"success\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("gust_invocation_duration_seconds_bucket{function=\"f\",le=\"0.0025\"} 0\n"));
        assert!(text.contains("gust_invocation_duration_seconds_bucket{function=\"f\",le=\"0.005\"} 1\n"));
        assert!(text.contains("gust_invocation_duration_seconds_count{function=\"f\"} 1\n"));
        assert!(text.contains("gust_instances{function=\"f\",state=\"idle\"} 1\n"));
        assert!(text.contains("# TYPE gust_throttles_total counter"));
        assert_eq!(
            m.counter(
                names::INVOCATIONS,
                &[("function", "f"), ("trigger", "http"), ("outcome", "success")]
            ),
            2
        );
    }
}
