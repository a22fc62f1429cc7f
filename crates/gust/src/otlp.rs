//! OTLP trace export (OTLP/HTTP with protobuf, the protocol's default) when the standard
//! `OTEL_EXPORTER_OTLP_*` variables ask for it, so Jaeger or any OpenTelemetry collector shows
//! the whole chain. The messages are the OpenTelemetry project's own (`opentelemetry-proto`);
//! spans are batched (up to 512, or every second) and sent off the request path.

use gust_model::SpanRecord;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{
    span::SpanKind, status::StatusCode, ResourceSpans, ScopeSpans, Span, Status,
};
use prost::Message;
use std::time::Duration;
use tokio::sync::mpsc;

/// Where and how to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpConfig {
    /// Full URL of the traces endpoint (`http://collector:4318/v1/traces`).
    pub traces_url: String,
    pub headers: Vec<(String, String)>,
    pub service_name: String,
}

impl OtlpConfig {
    /// Reads `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as is) or `OTEL_EXPORTER_OTLP_ENDPOINT`
    /// (`/v1/traces` appended), `OTEL_EXPORTER_OTLP_HEADERS` (`k=v,k2=v2`) and
    /// `OTEL_SERVICE_NAME`. `None` when no endpoint is set or `OTEL_TRACES_EXPORTER=none`.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Option<Self>, String> {
        if get("OTEL_TRACES_EXPORTER").as_deref() == Some("none") || get("OTEL_SDK_DISABLED").as_deref() == Some("true")
        {
            return Ok(None);
        }
        let traces_url = match (
            get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
            get("OTEL_EXPORTER_OTLP_ENDPOINT"),
        ) {
            (Some(t), _) if !t.is_empty() => t,
            (_, Some(e)) if !e.is_empty() => format!("{}/v1/traces", e.trim_end_matches('/')),
            _ => return Ok(None),
        };
        let protocol = get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"));
        if let Some(p) = protocol.filter(|p| p != "http/protobuf") {
            return Err(format!(
                "OTEL_EXPORTER_OTLP_PROTOCOL={p} is not supported: Gust exports with http/protobuf (port 4318 on collectors)"
            ));
        }
        if !traces_url.starts_with("http://") && !traces_url.starts_with("https://") {
            return Err(format!(
                "OTLP endpoint `{traces_url}` must be an http:// or https:// URL"
            ));
        }
        let headers = get("OTEL_EXPORTER_OTLP_HEADERS")
            .unwrap_or_default()
            .split(',')
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            })
            .filter(|(k, _)| !k.is_empty())
            .collect();
        Ok(Some(Self {
            traces_url,
            headers,
            service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "gust".into()),
        }))
    }
}

fn hex_bytes(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The type an attribute Gust writes has in OTLP. Span records keep attributes as text (that
/// is how `telemetry.db` stores them and `gust trace` shows them); the exporter gives these
/// keys their OpenTelemetry types back, so a backend can sum, compare and filter them as
/// numbers and booleans. Every other key is a string.
const TYPED_ATTRIBUTES: &[(&str, AttributeType)] = &[
    ("http.response.status_code", AttributeType::Int),
    ("gust.wait_us", AttributeType::Int),
    ("gust.attempt", AttributeType::Int),
    ("messaging.batch.message_count", AttributeType::Int),
    ("faas.coldstart", AttributeType::Bool),
    ("prewarmed", AttributeType::Bool),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AttributeType {
    Int,
    Bool,
}

/// `value` as the OTLP value its key's type says; a value that does not parse as that type
/// stays a string rather than being lost.
fn typed(key: &str, value: &str) -> any_value::Value {
    let kind = TYPED_ATTRIBUTES.iter().find(|(k, _)| *k == key).map(|(_, t)| *t);
    match kind {
        Some(AttributeType::Int) => match value.parse::<i64>() {
            Ok(n) => any_value::Value::IntValue(n),
            Err(_) => any_value::Value::StringValue(value.into()),
        },
        Some(AttributeType::Bool) => match value {
            "true" => any_value::Value::BoolValue(true),
            "false" => any_value::Value::BoolValue(false),
            _ => any_value::Value::StringValue(value.into()),
        },
        None => any_value::Value::StringValue(value.into()),
    }
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(typed(key, value)),
        }),
        ..Default::default()
    }
}

/// Maps Gust's span records to one OTLP export request.
pub fn export_request(spans: &[SpanRecord], service_name: &str) -> ExportTraceServiceRequest {
    let spans = spans
        .iter()
        .map(|s| {
            let start = (s.start_us.max(0) as u64) * 1000;
            Span {
                trace_id: hex_bytes(&s.trace_id),
                span_id: hex_bytes(&s.span_id),
                parent_span_id: s.parent_id.as_deref().map(hex_bytes).unwrap_or_default(),
                name: s.name.clone(),
                kind: match s.kind.as_str() {
                    "server" => SpanKind::Server,
                    "client" => SpanKind::Client,
                    "producer" => SpanKind::Producer,
                    "consumer" => SpanKind::Consumer,
                    _ => SpanKind::Internal,
                } as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + s.duration_us * 1000,
                attributes: s.attributes.iter().map(|(k, v)| kv(k, v)).collect(),
                status: Some(Status {
                    message: String::new(),
                    code: if s.error { StatusCode::Error } else { StatusCode::Unset } as i32,
                }),
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", service_name)],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "gust".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Hands spans to the export task; never blocks the caller.
#[derive(Debug, Clone)]
pub struct OtlpExporter {
    tx: mpsc::Sender<SpanRecord>,
}

impl OtlpExporter {
    pub fn start(config: OtlpConfig) -> Self {
        let (tx, rx) = mpsc::channel(16_384);
        tokio::spawn(export_loop(config, rx));
        Self { tx }
    }

    pub fn export(&self, span: SpanRecord) {
        // A full queue means the collector cannot keep up: drop rather than slow invocations.
        let _ = self.tx.try_send(span);
    }
}

async fn export_loop(config: OtlpConfig, mut rx: mpsc::Receiver<SpanRecord>) {
    let client = reqwest::Client::new();
    let mut warned = false;
    loop {
        let Some(first) = rx.recv().await else { return };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while batch.len() < 512 {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                _ => break,
            }
        }
        let body = export_request(&batch, &config.service_name).encode_to_vec();
        let mut req = client
            .post(&config.traces_url)
            .header("content-type", "application/x-protobuf")
            .timeout(Duration::from_secs(10))
            .body(body);
        for (k, v) in &config.headers {
            req = req.header(k, v);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => warned = false,
            Ok(r) if !warned => {
                warned = true;
                tracing::warn!(status = %r.status(), url = %config.traces_url, "the OTLP collector refused spans");
            }
            Err(e) if !warned => {
                warned = true;
                tracing::warn!(error = %e, url = %config.traces_url, "cannot reach the OTLP collector; spans are dropped until it answers");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_standard_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(OtlpConfig::from_env(env(&[])), Ok(None));
        let c = OtlpConfig::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1, b=2"),
            ("OTEL_SERVICE_NAME", "shop"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(c.traces_url, "http://c:4318/v1/traces");
        assert_eq!(c.headers, vec![("a".into(), "1".into()), ("b".into(), "2".into())]);
        assert_eq!(c.service_name, "shop");
        let c = OtlpConfig::from_env(env(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t/x")]))
            .unwrap()
            .unwrap();
        assert_eq!(c.traces_url, "http://t/x");
        assert!(OtlpConfig::from_env(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        ]))
        .is_err());
        assert_eq!(
            OtlpConfig::from_env(env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c"),
                ("OTEL_TRACES_EXPORTER", "none")
            ])),
            Ok(None)
        );
    }

    #[test]
    fn maps_spans_to_otlp() {
        let s = SpanRecord {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: "00f067aa0ba902b7".into(),
            parent_id: None,
            name: "GET /x".into(),
            kind: "server".into(),
            start_us: 1_000,
            duration_us: 500,
            error: true,
            attributes: vec![
                ("k".into(), "v".into()),
                ("http.response.status_code".into(), "404".into()),
                ("faas.coldstart".into(), "true".into()),
                ("gust.wait_us".into(), "not a number".into()),
            ],
        };
        let req = export_request(&[s], "gust");
        let bytes = req.encode_to_vec();
        let back = ExportTraceServiceRequest::decode(&bytes[..]).unwrap();
        let span = &back.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.span_id, vec![0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7]);
        assert!(span.parent_span_id.is_empty());
        assert_eq!(span.kind, SpanKind::Server as i32);
        assert_eq!(
            (span.start_time_unix_nano, span.end_time_unix_nano),
            (1_000_000, 1_500_000)
        );
        assert_eq!(span.status.as_ref().unwrap().code, StatusCode::Error as i32);
        let values: Vec<_> = span
            .attributes
            .iter()
            .map(|a| a.value.as_ref().unwrap().value.clone().unwrap())
            .collect();
        assert_eq!(
            values,
            [
                any_value::Value::StringValue("v".into()),
                any_value::Value::IntValue(404),
                any_value::Value::BoolValue(true),
                any_value::Value::StringValue("not a number".into()),
            ]
        );
    }
}
