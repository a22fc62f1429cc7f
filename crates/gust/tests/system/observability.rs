//! Observability: one trace from the gateway through a function, its published event, the
//! queue and the subscriber; `gust logs -f` following a running invocation; metrics that
//! equal what the test did; log truncation that is marked, not silent.

use crate::support::*;
use std::io::{BufRead, BufReader};
use std::time::Duration;

const MANIFEST: &str = r#"
[app]
name = "obs"

[functions.front]
runtime = "nodejs20.x"
handler = "front.handler"
timeout = 10
publishes = ["work"]

[functions.back]
runtime = "python3.11"
handler = "back.main"

[functions.chatty]
runtime = "nodejs20.x"
handler = "chatty.handler"
timeout = 10

[[routes]]
route = "POST /front"
function = "front"

[[subscriptions]]
topic = "work"
function = "back"
name = "back-work"
"#;

const FRONT: &str = r#"
exports.handler = async (event) => {
  const res = await fetch(`${process.env.GUST_API}/gust/v1/events/work`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${process.env.GUST_TOKEN}`,
               "x-amzn-trace-id": process.env._X_AMZN_TRACE_ID },
    body: event.body,
  });
  if (res.status !== 202) throw new Error(`publish failed ${res.status}`);
  return { statusCode: 200, body: JSON.stringify({ traceparent: event.headers.traceparent, xray: process.env._X_AMZN_TRACE_ID }) };
};
"#;

const BACK: &str = r#"
import os

def main(event, context):
    print("back got", len(event["Records"]), "record(s), trace", os.environ.get("_X_AMZN_TRACE_ID"))
    return {}
"#;

const CHATTY: &str = r#"
exports.handler = async (event) => {
  if (event.flood) {
    const line = "x".repeat(1000);
    for (let i = 0; i < 400; i++) console.log(`${i} ${line}`);
    return "flooded";
  }
  if (event.fail) throw new Error("chatty failed");
  for (let i = 1; i <= (event.ticks || 0); i++) {
    console.log(`tick ${i}`);
    await new Promise((r) => setTimeout(r, 400));
  }
  return "done";
};
"#;

async fn app() -> TestApp {
    TestApp::start(&[
        ("gust.toml", MANIFEST),
        ("front.js", FRONT),
        ("back.py", BACK),
        ("chatty.js", CHATTY),
    ])
    .await
}

#[tokio::test]
async fn one_trace_spans_gateway_function_queue_and_subscriber() {
    let app = app().await;
    let incoming_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let incoming_span = "00f067aa0ba902b7";
    let r = app
        .client
        .post(app.url("/front"))
        .header("traceparent", format!("00-{incoming_trace}-{incoming_span}-01"))
        .body(r#"{"job":1}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["x-gust-trace-id"],
        incoming_trace,
        "the caller's trace is continued"
    );
    let seen = json(&r.text().await.unwrap());
    let function_tp = seen["traceparent"].as_str().unwrap().to_string();
    assert!(
        function_tp.starts_with(&format!("00-{incoming_trace}-")),
        "{function_tp}"
    );
    assert!(seen["xray"]
        .as_str()
        .unwrap()
        .starts_with("Root=1-4bf92f35-77b34da6a3ce929d0e0e4736;Parent="));

    let db = app.platform().telemetry.clone();
    let mut spans = Vec::new();
    for _ in 0..500 {
        db.flush().await;
        spans = db.trace(incoming_trace.into()).await.unwrap();
        if spans.iter().any(|s| s.name == "invoke back") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let by_name = |n: &str| {
        spans
            .iter()
            .find(|s| s.name == n)
            .unwrap_or_else(|| panic!("no span {n}: {spans:#?}"))
    };
    let server = by_name("POST /front");
    let front = by_name("invoke front");
    let queue = by_name("queue back-work");
    let deliver = by_name("deliver back-work");
    let back = by_name("invoke back");
    assert_eq!(server.parent_id.as_deref(), Some(incoming_span));
    assert_eq!(server.kind, "server");
    assert_eq!(front.parent_id.as_deref(), Some(server.span_id.as_str()));
    assert!(
        function_tp.contains(&front.span_id),
        "the function saw its own span as traceparent"
    );
    assert_eq!(
        queue.parent_id.as_deref(),
        Some(front.span_id.as_str()),
        "published from inside front"
    );
    assert_eq!(deliver.parent_id.as_deref(), Some(front.span_id.as_str()));
    assert_eq!(back.parent_id.as_deref(), Some(deliver.span_id.as_str()));
    assert!(spans.iter().all(|s| s.trace_id == incoming_trace));
    // Spans nest in time too.
    assert!(
        front.start_us >= server.start_us
            && front.start_us + front.duration_us as i64 <= server.start_us + server.duration_us as i64 + 1000
    );
    assert!(back.start_us >= deliver.start_us);

    // The subscriber's log line is found by the trace id, as `gust logs --trace` does.
    let mut lines = Vec::new();
    for _ in 0..200 {
        db.flush().await;
        lines = db
            .logs(gust_store::LogQuery {
                trace_id: Some(incoming_trace.into()),
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        if lines.iter().any(|l| l.line.contains("back got 1 record")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        lines
            .iter()
            .any(|l| l.line.contains("back got 1 record") && l.line.contains("4bf92f35")),
        "{lines:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn gust_logs_follow_shows_lines_of_a_running_invocation() {
    let app = app().await;
    let mut follower = std::process::Command::new(env!("CARGO_BIN_EXE_gust"))
        .args(["logs", "chatty", "-f", "--admin", &app.admin("")])
        .args(["--token", &app.operator_token()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = follower.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let running = {
        let req = app.op(reqwest::Method::POST, "/2015-03-31/functions/chatty/invocations");
        tokio::spawn(async move { req.body(r#"{"ticks":5}"#).send().await.unwrap().text().await.unwrap() })
    };
    // "tick 2" arrives while the invocation (2 s in all) is still running.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    while !got.iter().any(|l: &String| l.contains("tick 2")) {
        assert!(
            std::time::Instant::now() < deadline,
            "no tick 2 from gust logs -f: {got:?}"
        );
        // Never block the runtime thread: the platform under test runs on it.
        match rx.try_recv() {
            Ok(l) => got.push(l),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(!running.is_finished(), "the line was shown while the invocation ran");
    let line = got.iter().find(|l| l.contains("tick 2")).unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts[1], "chatty");
    assert_eq!(parts[2].len(), 36, "tagged with the request id: {line}");
    assert!(parts[0].ends_with('Z'), "tagged with the time: {line}");
    assert_eq!(running.await.unwrap(), "\"done\"");
    let _ = follower.kill();
    let _ = follower.wait();
    app.stop().await;
}

fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.trim().parse::<f64>().ok()))
        .map(|v| v as u64)
        .unwrap_or(0)
}

#[tokio::test]
async fn metrics_count_what_happened() {
    let app = app().await;
    for _ in 0..5 {
        let (status, fe, _) = app.invoke("chatty", "{}").await;
        assert_eq!((status, fe), (200, None));
    }
    for _ in 0..2 {
        let (_, fe, _) = app.invoke("chatty", r#"{"fail":true}"#).await;
        assert_eq!(fe.as_deref(), Some("Unhandled"));
    }
    let text = app.admin_text("/metrics").await;
    assert_eq!(
        metric(
            &text,
            r#"gust_invocations_total{function="chatty",trigger="direct",outcome="success"}"#
        ),
        5
    );
    assert_eq!(
        metric(
            &text,
            r#"gust_invocations_total{function="chatty",trigger="direct",outcome="error"}"#
        ),
        2
    );
    assert_eq!(
        metric(&text, r#"gust_invocation_duration_seconds_count{function="chatty"}"#),
        7
    );
    let cold = metric(&text, r#"gust_cold_starts_total{function="chatty",prewarmed="true"}"#)
        + metric(&text, r#"gust_cold_starts_total{function="chatty",prewarmed="false"}"#);
    assert_eq!(cold, 1, "one instance served all seven");
    assert_eq!(metric(&text, r#"gust_instances{function="chatty",state="idle"}"#), 1);
    assert!(text.contains("# TYPE gust_event_backlog gauge"));
    assert!(
        text.contains(r#"gust_event_backlog{subscription="back-work"} 0"#),
        "{text}"
    );

    // The invocation records say the same.
    let inv = json(&app.admin_text("/gust/v1/invocations?function=chatty&limit=100").await);
    let list = inv["invocations"].as_array().unwrap();
    assert_eq!(list.len(), 7);
    assert_eq!(list.iter().filter(|r| r["outcome"] == "error").count(), 2);
    assert_eq!(list.iter().filter(|r| r["cold_start"] == true).count(), 1);
    let cold = list.iter().find(|r| r["cold_start"] == true).unwrap();
    assert!(cold["init_ms"].as_f64().unwrap() > 0.0);
    assert!(list
        .iter()
        .all(|r| r["billed_ms"].as_u64().unwrap() >= 1 && r["memory_mb"] == 128));
    app.stop().await;
}

#[tokio::test]
async fn log_output_past_the_limit_is_truncated_with_a_marker() {
    let app = app().await;
    let (status, fe, body) = app.invoke("chatty", r#"{"flood":true}"#).await;
    assert_eq!((status, fe, body.as_str()), (200, None, "\"flooded\""));
    let db = app.platform().telemetry.clone();
    let request = {
        db.flush().await;
        db.invocations(Some("chatty".into()), 1).await.unwrap()[0]
            .request_id
            .clone()
    };
    let mut lines = Vec::new();
    for _ in 0..200 {
        db.flush().await;
        lines = db
            .logs(gust_store::LogQuery {
                request_id: Some(request.clone()),
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        if lines.iter().any(|l| l.line.contains("truncated")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The platform's own lines (`START`, `END`, `REPORT`) are not the function's output and
    // are not counted against it.
    let platform = ["START RequestId: ", "END RequestId: ", "REPORT RequestId: "];
    lines.retain(|l| !platform.iter().any(|p| l.line.starts_with(p)));
    let markers: Vec<_> = lines
        .iter()
        .filter(|l| l.line.starts_with("[gust] log output truncated"))
        .collect();
    assert_eq!(markers.len(), 1, "exactly one marker");
    assert_eq!(
        lines.last().unwrap().line,
        markers[0].line,
        "the marker is the last line kept"
    );
    let kept: usize = lines.iter().map(|l| l.line.len() + 1).sum();
    assert!(kept <= gust::telemetry::LOG_LIMIT_BYTES + 2_000, "kept {kept} bytes");
    assert!(lines.len() < 400, "not every line was kept");
    assert!(lines[0].line.starts_with("0 x"), "the first lines are kept");
    app.stop().await;
}

/// A minimal OTLP/HTTP receiver: decodes each export with the OpenTelemetry protobuf types.
async fn otlp_receiver() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<opentelemetry_proto::tonic::trace::v1::Span>>>,
) {
    use http_body_util::BodyExt;
    use prost::Message;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let store = store.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let store = store.clone();
                    async move {
                        assert_eq!(req.uri().path(), "/v1/traces");
                        assert_eq!(req.headers()["content-type"], "application/x-protobuf");
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let export =
                            opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest::decode(body)
                                .unwrap();
                        for rs in export.resource_spans {
                            let service = &rs.resource.as_ref().unwrap().attributes[0];
                            assert_eq!(service.key, "service.name");
                            for ss in rs.scope_spans {
                                store.lock().unwrap().extend(ss.spans);
                            }
                        }
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            bytes::Bytes::new(),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, received)
}

#[tokio::test]
async fn traces_are_exported_over_otlp_and_nest() {
    let (addr, received) = otlp_receiver().await;
    let dir = write_app(&[
        ("gust.toml", MANIFEST),
        ("front.js", FRONT),
        ("back.py", BACK),
        ("chatty.js", CHATTY),
    ]);
    let app = TestApp::start_configured(dir, |c| {
        c.otlp = Some(gust::otlp::OtlpConfig {
            traces_url: format!("http://{addr}/v1/traces"),
            headers: vec![],
            service_name: "gust-test".into(),
        })
    })
    .await;
    let r = app.post("/front", r#"{"job":2}"#).await;
    assert_eq!(r.status(), 200);
    let trace_hex = r.headers()["x-gust-trace-id"].to_str().unwrap().to_string();
    let trace: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&trace_hex[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let spans = || -> Vec<opentelemetry_proto::tonic::trace::v1::Span> {
        received
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.trace_id == trace)
            .cloned()
            .collect()
    };
    wait_for("the subscriber's span over OTLP", Duration::from_secs(15), || {
        spans().iter().any(|s| s.name == "invoke back")
    })
    .await;
    let spans = spans();
    let find = |n: &str| spans.iter().find(|s| s.name == n).unwrap_or_else(|| panic!("no {n}"));
    let (server, front, deliver, back) = (
        find("POST /front"),
        find("invoke front"),
        find("deliver back-work"),
        find("invoke back"),
    );
    assert!(server.parent_span_id.is_empty(), "the gateway span is the root");
    assert_eq!(front.parent_span_id, server.span_id);
    assert_eq!(deliver.parent_span_id, front.span_id);
    assert_eq!(back.parent_span_id, deliver.span_id);
    assert!(front.start_time_unix_nano >= server.start_time_unix_nano);
    assert!(front.end_time_unix_nano <= server.end_time_unix_nano + 1_000_000);
    assert_eq!(
        server.kind,
        opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32
    );
    app.stop().await;
}
