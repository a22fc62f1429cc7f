//! Every runtime Gust supports, each with a real process: Node (CommonJS, ESM, callback),
//! Python, and `provided` Rust functions built on lambda_runtime and lambda_http.

use crate::support::*;

const MANIFEST: &str = r#"
[app]
name = "runtimes"

[functions.cjs]
runtime = "nodejs20.x"
handler = "node/cjs.handler"

[functions.esm]
runtime = "nodejs20.x"
handler = "node/esm.handler"

[functions.esm-pkg]
runtime = "nodejs22.x"
handler = "index.handler"
dir = "esm-pkg"

[functions.callback]
runtime = "nodejs18.x"
handler = "node/callback.handler"

[functions.py]
runtime = "python3.11"
handler = "py/handler.main"

[functions.echo]
runtime = "provided.al2023"
dir = "echo"

[functions.http]
runtime = "provided.al2"
dir = "http"

[[routes]]
route = "GET /hello/{name}"
function = "http"

[[routes]]
route = "POST /py"
function = "py"
"#;

const CJS: &str = r#"
exports.handler = async (event, context) => {
  console.log("cjs says hi", context.awsRequestId);
  return {
    kind: "cjs",
    event,
    requestId: context.awsRequestId,
    functionName: context.functionName,
    remaining: context.getRemainingTimeInMillis(),
    arn: context.invokedFunctionArn,
    env: process.env.AWS_LAMBDA_FUNCTION_NAME,
    memory: context.memoryLimitInMB,
  };
};
"#;

const ESM: &str = r#"
export const handler = async (event, context) => ({ kind: "esm", event, requestId: context.awsRequestId });
"#;

const CALLBACK: &str = r#"
exports.handler = (event, context, callback) => {
  if (event.fail) return callback(new TypeError("bad input: " + event.fail));
  setTimeout(() => callback(null, { kind: "callback", event }), 5);
};
"#;

const PY: &str = r#"
import json, os

def main(event, context):
    print("py says hi", context.aws_request_id)
    if "raise" in event if isinstance(event, dict) else False:
        raise ValueError(event["raise"])
    if isinstance(event, dict) and event.get("version") == "2.0":
        body = json.loads(event.get("body") or "{}")
        return {"statusCode": 200, "body": json.dumps({"got": body, "route": event["routeKey"]})}
    return {
        "kind": "python",
        "event": event,
        "request_id": context.aws_request_id,
        "function_name": context.function_name,
        "remaining_positive": context.get_remaining_time_in_millis() > 0,
        "memory": context.memory_limit_in_mb,
    }
"#;

async fn app() -> TestApp {
    let dir = write_app(&[
        ("gust.toml", MANIFEST),
        ("node/cjs.js", CJS),
        ("node/esm.mjs", ESM),
        ("node/callback.js", CALLBACK),
        ("esm-pkg/package.json", r#"{"type":"module"}"#),
        (
            "esm-pkg/index.js",
            "export async function handler(event) { return { kind: 'esm-pkg', event }; }",
        ),
        ("py/handler.py", PY),
    ]);
    provided_fixture(dir.path(), "echo", "lambda-echo");
    provided_fixture(dir.path(), "http", "lambda-http-hello");
    TestApp::start_dir(dir).await
}

#[tokio::test]
async fn node_commonjs_esm_and_callback_handlers() {
    let app = app().await;
    let (status, fe, body) = app.invoke("cjs", r#"{"a":1}"#).await;
    assert_eq!((status, fe), (200, None), "{body}");
    let v = json(&body);
    assert_eq!(v["kind"], "cjs");
    assert_eq!(v["event"]["a"], 1);
    assert_eq!(v["functionName"], "cjs");
    assert_eq!(v["env"], "cjs");
    assert_eq!(v["memory"], "128");
    assert_eq!(v["arn"], "arn:aws:lambda:us-east-1:000000000000:function:cjs");
    let remaining = v["remaining"].as_i64().unwrap();
    assert!(remaining > 0 && remaining <= 3000, "remaining {remaining}");
    // stdout is captured and tagged with the request id.
    let req = v["requestId"].as_str().unwrap().to_string();
    wait_for("the cjs log line", std::time::Duration::from_secs(5), || {
        app.logs.find("cjs says hi").is_some()
    })
    .await;
    let line = app.logs.find("cjs says hi").unwrap();
    assert_eq!(line.request_id.as_deref(), Some(req.as_str()));
    assert_eq!(&*line.function, "cjs");

    let (_, fe, body) = app.invoke("esm", r#"{"b":2}"#).await;
    assert_eq!(fe, None, "{body}");
    assert_eq!(json(&body)["kind"], "esm");
    let (_, fe, body) = app.invoke("esm-pkg", r#"{"c":3}"#).await;
    assert_eq!(fe, None, "{body}");
    assert_eq!(json(&body)["event"]["c"], 3);
    let (_, fe, body) = app.invoke("callback", r#"{"d":4}"#).await;
    assert_eq!(fe, None, "{body}");
    assert_eq!(json(&body)["kind"], "callback");

    // A handler error follows Lambda's shape and the Invoke API's X-Amz-Function-Error.
    let (status, fe, body) = app.invoke("callback", r#"{"fail":"nope"}"#).await;
    assert_eq!((status, fe.as_deref()), (200, Some("Unhandled")));
    let v = json(&body);
    assert_eq!(v["errorType"], "TypeError");
    assert_eq!(v["errorMessage"], "bad input: nope");
    assert!(v["stackTrace"].is_array(), "{body}");
    app.stop().await;
}

/// The Node and Python bootstraps speak HTTP/1.1 themselves over their Unix socket, with the
/// next long poll pipelined behind each answer: events and answers of megabytes arrive in many
/// pieces, carry multi-byte UTF-8 (so byte and character lengths differ), and many invocations
/// in a row each get their own answer (also after a handler error).
#[tokio::test]
async fn bootstrap_clients_handle_large_payloads_and_back_to_back_invocations() {
    let app = app().await;
    let text = "héllo wörld 😀 ".repeat(100_000); // ~1.9 MB of UTF-8, fewer characters
    let payload = serde_json::json!({ "text": text }).to_string();
    for (function, request_id_key) in [("cjs", "requestId"), ("py", "request_id")] {
        let (status, fe, body) = app.invoke(function, &payload).await;
        assert_eq!(
            (status, fe),
            (200, None),
            "{function}: {}",
            &body[..body.len().min(300)]
        );
        let v = json(&body);
        assert_eq!(
            v["event"]["text"].as_str().map(str::len),
            Some(text.len()),
            "{function}"
        );
        assert_eq!(v["event"]["text"], text.as_str(), "{function}");

        let mut ids = std::collections::HashSet::new();
        for i in 0..200 {
            let (status, fe, body) = app.invoke(function, &format!(r#"{{"i":{i}}}"#)).await;
            assert_eq!((status, fe), (200, None), "{function}: {body}");
            let v = json(&body);
            assert_eq!(
                v["event"]["i"], i,
                "{function}: invocation {i} got another's answer: {body}"
            );
            assert!(
                ids.insert(v[request_id_key].as_str().unwrap().to_string()),
                "{function}: request ids repeat"
            );
        }
    }
    // After a handler error the Python instance goes on with the next invocation.
    let (_, fe, _) = app.invoke("py", r#"{"raise":"boom"}"#).await;
    assert_eq!(fe.as_deref(), Some("Unhandled"));
    let (_, fe, body) = app.invoke("py", r#"{"i":1}"#).await;
    assert_eq!((fe, json(&body)["event"]["i"].as_i64()), (None, Some(1)), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn python_handler_direct_and_over_http() {
    let app = app().await;
    let (status, fe, body) = app.invoke("py", r#"{"x":"y"}"#).await;
    assert_eq!((status, fe), (200, None), "{body}");
    let v = json(&body);
    assert_eq!(v["kind"], "python");
    assert_eq!(v["event"]["x"], "y");
    assert_eq!(v["function_name"], "py");
    assert_eq!(v["remaining_positive"], true);
    assert_eq!(v["memory"], 128);
    wait_for("the python log line", std::time::Duration::from_secs(5), || {
        app.logs.find("py says hi").is_some()
    })
    .await;
    assert_eq!(
        app.logs.find("py says hi").unwrap().request_id.as_deref(),
        v["request_id"].as_str()
    );

    let (_, fe, body) = app.invoke("py", r#"{"raise":"broken"}"#).await;
    assert_eq!(fe.as_deref(), Some("Unhandled"));
    let v = json(&body);
    assert_eq!(v["errorType"], "ValueError");
    assert_eq!(v["errorMessage"], "broken");

    let r = app.post("/py", r#"{"n":1}"#).await;
    assert_eq!(r.status(), 200);
    let v = json(&r.text().await.unwrap());
    assert_eq!(v["got"]["n"], 1);
    assert_eq!(v["route"], "POST /py");
    app.stop().await;
}

/// Whether this (test) process, which runs the platform, maps `path`.
fn mapped_here(path: &std::path::Path) -> bool {
    let path = path.canonicalize().unwrap();
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    maps.lines().any(|l| l.ends_with(path.to_str().unwrap()))
}

#[tokio::test]
async fn a_provided_executable_stays_in_memory_while_deployed_with_no_instance() {
    let app = app().await;
    let bootstrap = app.dir.path().join("echo/bootstrap");
    // Nothing was invoked, so no process maps it: the platform does, for the next cold start.
    wait_for(
        "the echo bootstrap to be mapped",
        std::time::Duration::from_secs(10),
        || mapped_here(&bootstrap),
    )
    .await;
    assert_eq!(app.platform().invoker.pool_stats("echo").unwrap().total, 0);
    let dir = tempfile::tempdir().unwrap();
    copy_dir(app.dir.path(), dir.path());
    app.stop().await;

    // Turned off, it is not (the same app, deployed with a budget of 0).
    let off = TestApp::start_configured(dir, |c| c.resident_code_bytes = 0).await;
    let bootstrap = off.dir.path().join("echo/bootstrap");
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(!mapped_here(&bootstrap));
    off.stop().await;
}

#[tokio::test]
async fn rust_lambda_runtime_and_lambda_http_run_unmodified() {
    let app = app().await;
    let (status, fe, body) = app.invoke("echo", r#"{"hello":"rust"}"#).await;
    assert_eq!((status, fe), (200, None), "{body}");
    let v = json(&body);
    assert_eq!(v["echo"]["hello"], "rust");
    assert_eq!(v["function_name"], "echo");
    assert_eq!(v["deadline_in_future"], true);
    assert!(!v["request_id"].as_str().unwrap().is_empty());

    let (status, fe, body) = app.invoke("echo", r#"{"fail":"on purpose"}"#).await;
    assert_eq!((status, fe.as_deref()), (200, Some("Unhandled")), "{body}");
    assert_eq!(json(&body)["errorMessage"], "on purpose");

    let r = app.get("/hello/gust?q=fast").await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-fixture"], "lambda_http");
    let v = json(&r.text().await.unwrap());
    assert_eq!(v["hello"], "gust");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["path"], "/hello/gust");
    assert_eq!(v["q"], "fast");
    app.stop().await;
}

#[tokio::test]
async fn prewarmed_runtimes_are_specialised_into_functions() {
    let dir = write_app(&[
        (
            "gust.toml",
            r#"
[app]
name = "prewarm"
environment = { SHARED = "yes" }

[functions.node-fn]
runtime = "nodejs20.x"
handler = "index.handler"
dir = "node-code"
environment = { ONLY_NODE = "1" }

[functions.py-fn]
runtime = "python3.12"
handler = "app.main"
dir = "py-code"
"#,
        ),
        (
            "node-code/index.js",
            "const cwdAtLoad = process.cwd();\nexports.handler = async (e, ctx) => ({ cwd: cwdAtLoad, name: process.env.AWS_LAMBDA_FUNCTION_NAME, shared: process.env.SHARED, only: process.env.ONLY_NODE, prewarm: process.env.GUST_PREWARM || null, native: process.env.GUST_NATIVE_LIB || null, root: process.env.LAMBDA_TASK_ROOT, req: ctx.awsRequestId });\n",
        ),
        (
            "py-code/app.py",
            "import os\n\ndef main(event, context):\n    return {'cwd': os.getcwd(), 'name': os.environ['AWS_LAMBDA_FUNCTION_NAME'], 'shared': os.environ.get('SHARED'), 'only': os.environ.get('ONLY_NODE')}\n",
        ),
    ]);
    let app = TestApp::start_dir(dir).await;
    let invoker = app.platform().invoker.clone();
    wait_for(
        "a prewarmed node and python runtime",
        std::time::Duration::from_secs(10),
        || invoker.prewarmed_ready() >= 2,
    )
    .await;

    // A ready spare has given back the resident pages of its read-only file mappings (most of
    // an idle interpreter's memory): it holds far fewer file pages than the same interpreter
    // idling on its own.
    let mut controls: Vec<(&str, std::process::Child)> = [
        ("node", &["-e", "setInterval(() => {}, 1e6)"][..]),
        ("python3", &["-c", "import time; time.sleep(100)"][..]),
    ]
    .into_iter()
    .map(|(program, args)| (program, std::process::Command::new(program).args(args).spawn().unwrap()))
    .collect();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await; // both idle by then
    for (program, control) in &mut controls {
        let program: &str = program;
        let idle = file_resident_kb(control.id() as i32).unwrap();
        let _ = control.kill();
        let _ = control.wait();
        let spare = invoker
            .prewarmed_pids()
            .into_iter()
            .find(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with(program)))
            .unwrap_or_else(|| panic!("a {program} spare"));
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let kb = file_resident_kb(spare).unwrap();
            if kb * 2 < idle {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the {program} spare keeps {kb} kB of file pages resident; an idle {program} keeps {idle} kB"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    }

    let out = invoker
        .invoke(gust_runtime::Invocation::new(
            "node-fn",
            r#"{}"#,
            gust_runtime::Trigger::Direct,
        ))
        .await
        .unwrap();
    assert!(
        out.cold_start && out.prewarmed,
        "the cold start used a prewarmed runtime"
    );
    let v = json(std::str::from_utf8(&out.payload).unwrap());
    let code = std::fs::canonicalize(app.dir.path().join("node-code")).unwrap();
    assert_eq!(v["cwd"], code.to_str().unwrap());
    assert_eq!(v["root"], code.to_str().unwrap());
    assert_eq!(v["name"], "node-fn");
    assert_eq!(v["shared"], "yes");
    assert_eq!(v["only"], "1");
    assert_eq!(
        v["prewarm"],
        serde_json::Value::Null,
        "GUST_PREWARM is not visible to the function"
    );
    assert_eq!(v["native"], serde_json::Value::Null, "nor is GUST_NATIVE_LIB");
    assert_eq!(v["req"], &*out.request_id);

    let out = invoker
        .invoke(gust_runtime::Invocation::new(
            "py-fn",
            r#"{}"#,
            gust_runtime::Trigger::Direct,
        ))
        .await
        .unwrap();
    assert!(out.cold_start && out.prewarmed);
    let v = json(std::str::from_utf8(&out.payload).unwrap());
    assert_eq!(v["name"], "py-fn");
    assert_eq!(v["shared"], "yes");
    assert_eq!(
        v["only"],
        serde_json::Value::Null,
        "one function's environment never leaks into another's"
    );
    assert!(v["cwd"].as_str().unwrap().ends_with("py-code"));
    // A replacement spare is started for the next cold start.
    wait_for("replacement spares", std::time::Duration::from_secs(10), || {
        invoker.prewarmed_ready() >= 2
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn every_invocation_gets_its_trace_id_in_the_environment_of_the_handler_and_its_children() {
    let files = [
        (
            "gust.toml",
            r#"
[app]
name = "trace-env"

[functions.node-fn]
runtime = "nodejs20.x"
handler = "index.handler"

[functions.py-fn]
runtime = "python3.12"
handler = "app.main"
"#,
        ),
        (
            "index.js",
            "const { execFileSync } = require('child_process');\nexports.handler = async () => ({ own: process.env._X_AMZN_TRACE_ID, child: execFileSync('sh', ['-c', 'printf %s \"$_X_AMZN_TRACE_ID\"']).toString(), native: process.env.GUST_NATIVE_LIB || null });\n",
        ),
        (
            "app.py",
            "import os, subprocess\n\ndef main(event, context):\n    child = subprocess.run(['sh', '-c', 'printf %s \"$_X_AMZN_TRACE_ID\"'], capture_output=True, text=True).stdout\n    return {'own': os.environ.get('_X_AMZN_TRACE_ID'), 'child': child, 'native': os.environ.get('GUST_NATIVE_LIB')}\n",
        ),
    ];
    // Spawned instances and specialised spares alike.
    for prewarm in [0, 1] {
        let app = TestApp::start_dir_with(write_app(&files), prewarm).await;
        let invoker = app.platform().invoker.clone();
        for function in ["node-fn", "py-fn"] {
            let mut seen = std::collections::HashSet::new();
            for _ in 0..3 {
                let out = invoker
                    .invoke(gust_runtime::Invocation::new(
                        function,
                        "{}",
                        gust_runtime::Trigger::Direct,
                    ))
                    .await
                    .unwrap();
                assert_eq!(out.function_error, None, "{function}: {:?}", out.payload);
                let v = json(std::str::from_utf8(&out.payload).unwrap());
                let own = v["own"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{function} (prewarm {prewarm}): {v}"));
                let root = format!("Root=1-{}-{};", &out.trace.trace_id[..8], &out.trace.trace_id[8..]);
                assert!(
                    own.starts_with(&root),
                    "{function}: {own} is this invocation's trace ({root})"
                );
                assert_eq!(v["child"], own, "{function}: a child process inherits it");
                assert_eq!(
                    v["native"],
                    serde_json::Value::Null,
                    "{function}: GUST_NATIVE_LIB is not visible"
                );
                assert!(
                    seen.insert(own.to_string()),
                    "{function}: a new trace id each invocation"
                );
            }
        }
        app.stop().await;
    }
}

/// Resident kilobytes of a process that are not anonymous memory: pages of mapped files.
fn file_resident_kb(pid: i32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = rollup.lines().find(|l| l.starts_with(name))?;
        line[name.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(field("Rss:")?.saturating_sub(field("Anonymous:")?))
}
