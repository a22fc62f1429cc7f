//! `network = "none"`: an instance with no network but its Runtime API and the platform API
//! (`sandbox/netns.rs`), beside a default function that keeps the host's. Started with
//! `--sandbox strict` (as root), as `sandbox.rs`.

use crate::support::*;
use gust_runtime::sandbox::SandboxMode;
use std::time::Duration;

/// `connect`: a TCP connection to `host:port`; `kv`: a put then a get through `GUST_API`;
/// `env`: what it was given; `ifaces`: its network interfaces and routes.
const NET: &str = r#"
const net = require('net');
const fs = require('fs');
const os = require('os');
function connect(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (r) => { s.destroy(); resolve(r); };
    s.on('connect', () => done({ ok: true }));
    s.on('error', (e) => done({ ok: false, err: e.code || String(e) }));
    s.setTimeout(3000, () => done({ ok: false, err: 'timeout' }));
  });
}
exports.handler = async (event) => {
  switch (event.op) {
    case 'connect': return await connect(event.host, event.port);
    case 'env': return { api: process.env.GUST_API, runtime: process.env.AWS_LAMBDA_RUNTIME_API };
    case 'ifaces': {
      const names = Object.keys(os.networkInterfaces());
      const routes = fs.readFileSync('/proc/net/route', 'utf8').trim().split('\n').length - 1;
      // Only with nothing but loopback is a non-loopback address tried: no packet can leave.
      const outside = names.every((n) => n === 'lo') && routes === 0 ? await connect('192.0.2.1', 80) : null;
      return { names, routes, outside };
    }
    case 'kv': {
      const url = `${process.env.GUST_API}/gust/v1/kv/${encodeURIComponent(event.key)}`;
      const auth = { authorization: `Bearer ${process.env.GUST_TOKEN}` };
      const put = await fetch(url, { method: 'PUT', headers: auth, body: event.value });
      const got = await fetch(url, { headers: auth });
      return { put: put.status, get: got.status, value: await got.text() };
    }
  }
  return { ok: false, err: 'unknown op' };
};
"#;

const MANIFEST: &str = r#"
[app]
name = "net"

[functions.sealed]
runtime = "nodejs20.x"
handler = "net.handler"
network = "none"
timeout = 20

[functions.open]
runtime = "nodejs20.x"
handler = "net.handler"
network = "default"
timeout = 20

# A runtime client of its own over TCP (AWS_LAMBDA_RUNTIME_API only, as the official ones).
[functions.tcp]
runtime = "provided.al2023"
dir = "tcp"
network = "none"
"#;

/// A minimal Runtime API client on `AWS_LAMBDA_RUNTIME_API` (TCP, one kept-alive connection).
const TCP_CLIENT: &str = r#"
const http = require('http');
const api = process.env.AWS_LAMBDA_RUNTIME_API;
const [host, port] = api.split(':');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
function call(method, path, body) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host, port: Number(port), method, path, agent }, (res) => {
      let data = '';
      res.on('data', (c) => (data += c));
      res.on('end', () => resolve({ headers: res.headers, body: data }));
    });
    r.on('error', reject);
    r.end(body);
  });
}
(async () => {
  for (;;) {
    const next = await call('GET', '/2018-06-01/runtime/invocation/next');
    const id = next.headers['lambda-runtime-aws-request-id'];
    const answer = { api, event: JSON.parse(next.body), unix: process.env.GUST_RUNTIME_API_SOCKET || null };
    await call('POST', `/2018-06-01/runtime/invocation/${id}/response`, JSON.stringify(answer));
  }
})();
"#;

/// The app's directory: both Node functions' code and the TCP client's.
fn app_dir() -> tempfile::TempDir {
    let dir = write_app(&[
        ("gust.toml", MANIFEST),
        ("net.js", NET),
        ("tcp/bootstrap", "#!/bin/sh\nexec node /var/task/client.js\n"),
        ("tcp/client.js", TCP_CLIENT),
    ]);
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path().join("tcp"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.path().join("tcp/bootstrap"), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

async fn call(app: &TestApp, function: &str, event: serde_json::Value) -> serde_json::Value {
    let (status, fe, body) = app.invoke(function, &event.to_string()).await;
    assert_eq!(status, 200, "{function} {event}: {body}");
    assert_eq!(fe, None, "{function} {event}: {body}");
    json(&body)
}

fn port_of(addr: &str) -> u16 {
    let authority = addr.trim_start_matches("http://");
    authority.rsplit(':').next().unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_network_none_function_reaches_only_its_runtime_api_and_the_platform_api() {
    let dir = app_dir();
    let app = TestApp::start_configured(dir, |c| {
        c.prewarm_per_runtime = 1;
        c.sandbox.mode = SandboxMode::Strict;
    })
    .await;
    let admin = app.platform().admin_addr;

    // Its Runtime API and GUST_API are addresses of its own namespace, not the host's.
    let env = call(&app, "sealed", serde_json::json!({"op": "env"})).await;
    let (api, runtime) = (env["api"].as_str().unwrap(), env["runtime"].as_str().unwrap());
    assert!(api.starts_with("http://127.0.0.1:"), "{env}");
    assert_ne!(
        port_of(api),
        admin.port(),
        "GUST_API is the relay inside, not the admin address: {env}"
    );
    let open_env = call(&app, "open", serde_json::json!({"op": "env"})).await;
    assert_eq!(open_env["api"], format!("http://{admin}"), "{open_env}");

    // A listener of the test's on the host's loopback, on a port the sealed instance does not
    // itself listen on inside (so a refusal there means "not reachable", not "taken").
    let listener = loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = l.local_addr().unwrap().port();
        if p != port_of(api) && p != port_of(runtime) {
            break l;
        }
    };
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();

    let sealed = call(
        &app,
        "sealed",
        serde_json::json!({"op": "connect", "host": "127.0.0.1", "port": port}),
    )
    .await;
    assert_eq!(sealed["ok"], false, "the sealed function reached the host: {sealed}");
    assert_eq!(sealed["err"], "ECONNREFUSED", "{sealed}");
    // Nor the admin address itself, other than through its relay.
    let to_admin = call(
        &app,
        "sealed",
        serde_json::json!({"op": "connect", "host": "127.0.0.1", "port": admin.port()}),
    )
    .await;
    assert_eq!(to_admin["ok"], false, "{to_admin}");
    match listener.accept() {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the test's listener saw a connection from the sealed function: {other:?}"),
    }

    // Nothing but loopback, no route: any other address is unreachable.
    let ifaces = call(&app, "sealed", serde_json::json!({"op": "ifaces"})).await;
    assert_eq!(ifaces["names"], serde_json::json!(["lo"]), "{ifaces}");
    assert_eq!(ifaces["routes"], 0, "{ifaces}");
    assert_eq!(ifaces["outside"]["ok"], false, "{ifaces}");
    assert_eq!(ifaces["outside"]["err"], "ENETUNREACH", "{ifaces}");

    // The default function in the same app does reach the test's listener.
    let open = call(
        &app,
        "open",
        serde_json::json!({"op": "connect", "host": "127.0.0.1", "port": port}),
    )
    .await;
    assert_eq!(open["ok"], true, "{open}");
    let mut seen = false;
    wait_for("the default function's connection", Duration::from_secs(10), || {
        seen |= listener.accept().is_ok();
        seen
    })
    .await;

    // The platform API with its own token: a put then a get, in the same store the others use.
    let kv = call(
        &app,
        "sealed",
        serde_json::json!({"op": "kv", "key": "sealed/greeting", "value": "hello from inside"}),
    )
    .await;
    assert!(kv["put"].as_u64().is_some_and(|s| (200..300).contains(&s)), "{kv}");
    assert_eq!(kv["get"], 200, "{kv}");
    assert_eq!(kv["value"], "hello from inside", "{kv}");

    // Invocations keep working on the same instance (its Runtime API inside).
    for i in 0..3 {
        let again = call(&app, "sealed", serde_json::json!({"op": "env"})).await;
        assert_eq!(again["runtime"], runtime, "invocation {i}: {again}");
    }

    // A client that speaks TCP only reaches its Runtime API inside the namespace (its
    // connection passes the peer check there), invocation after invocation.
    let mut apis = Vec::new();
    for i in 0..3 {
        let v = call(&app, "tcp", serde_json::json!({"n": i})).await;
        assert_eq!(v["event"]["n"], i, "{v}");
        assert_eq!(v["unix"], serde_json::Value::Null, "{v}");
        apis.push(v["api"].as_str().unwrap().to_string());
    }
    assert!(apis.iter().all(|a| a == &apis[0]), "one instance: {apis:?}");
    app.stop().await;
}

#[tokio::test]
async fn a_network_none_function_is_refused_where_instances_are_not_confined() {
    let dir = app_dir();
    let mut config = gust::PlatformConfig::new(dir.path());
    config.sandbox.mode = SandboxMode::Off;
    config.gateway_addr = "127.0.0.1:0".parse().unwrap();
    config.admin_addr = "127.0.0.1:0".parse().unwrap();
    let err = gust::Platform::start_with_sink(config, std::sync::Arc::new(MemorySink::default()))
        .await
        .expect_err("a network = \"none\" function must not start unconfined");
    let text = format!("{err:#}");
    assert!(text.contains("function `sealed`"), "{text}");
    assert!(text.contains("network = \"none\" needs the sandbox"), "{text}");
}
