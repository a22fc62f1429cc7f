//! The sandbox against a hostile function: one that runs whatever its request tells it.
//! Each test starts Gust with `--sandbox strict`, so it fails loudly where confinement is not
//! in force rather than passing on an open host.

use crate::support::*;
use gust_runtime::sandbox::SandboxMode;
use std::time::Duration;

/// `op`: `read` a file, `write` a file, `sh` a shell command (stdout, stderr, status), `env`.
const HOSTILE: &str = r#"
const fs = require('fs');
const { spawnSync } = require('child_process');
exports.handler = async (event) => {
  try {
    switch (event.op) {
      case 'read': return { ok: true, data: fs.readFileSync(event.path, 'utf8').slice(0, 4096) };
      case 'write': fs.writeFileSync(event.path, 'x'); return { ok: true };
      case 'sh': {
        const r = spawnSync('/bin/sh', ['-c', event.cmd], { encoding: 'utf8', timeout: event.timeoutMs || 20000 });
        return { ok: r.status === 0, status: r.status, signal: r.signal, out: r.stdout, err: r.stderr };
      }
      case 'env': return { ok: true, env: process.env };
      case 'alloc': { const b = Buffer.alloc(event.mb << 20, 1); return { ok: true, n: b.length }; }
      case 'kill': process.kill(event.pid, 'SIGKILL'); return { ok: true };
      case 'fetch': {
        const http = require('http');
        return await new Promise((resolve) => {
          const req = http.get('http://' + event.addr + '/2018-06-01/runtime/invocation/next', (res) => resolve({ ok: true, status: res.statusCode }));
          req.on('error', (e) => resolve({ ok: false, err: e.code || String(e) }));
          req.setTimeout(3000, () => { req.destroy(); resolve({ ok: false, err: 'timeout' }); });
        });
      }
    }
  } catch (e) { return { ok: false, err: e.code || String(e) }; }
  return { ok: false, err: 'unknown op' };
};
"#;

const MANIFEST: &str = r#"
[app]
name = "hostile"

[functions.hostile]
runtime = "nodejs20.x"
handler = "hostile.handler"
memory = 128
timeout = 30

# The same code with room for a full /tmp and a thousand processes.
[functions.roomy]
runtime = "nodejs20.x"
handler = "hostile.handler"
memory = 1024
timeout = 30

[functions.victim]
runtime = "nodejs20.x"
handler = "victim.handler"
environment = { VICTIM_MARKER = "victim-secret-4711" }

[functions.pyvictim]
runtime = "python3.11"
handler = "pyvictim.main"
"#;

const VICTIM: &str = r#"
exports.handler = async () => ({ api: process.env.AWS_LAMBDA_RUNTIME_API, uid: process.getuid(), pid: process.pid });
"#;

const PYVICTIM: &str = r#"
import os
def main(event, context):
    return {"api": os.environ["AWS_LAMBDA_RUNTIME_API"], "uid": os.getuid(), "task": os.getcwd(),
            "init": open("/proc/1/cmdline", "rb").read().split(b"\0")[0].decode()}
"#;

async fn start(prewarm: usize) -> TestApp {
    let dir = write_app(&[
        ("gust.toml", MANIFEST),
        ("hostile.js", HOSTILE),
        ("victim.js", VICTIM),
        ("pyvictim.py", PYVICTIM),
    ]);
    TestApp::start_configured(dir, |c| {
        c.prewarm_per_runtime = prewarm;
        c.sandbox.mode = SandboxMode::Strict;
        // As `gust up` runs them by default: from a snapshot of their code.
        c.code = gust::revision::CodeMode::Snapshot;
    })
    .await
}

async fn call(app: &TestApp, function: &str, event: serde_json::Value) -> serde_json::Value {
    let (status, fe, body) = app.invoke(function, &event.to_string()).await;
    assert_eq!(status, 200, "{function} {event}: {body}");
    assert_eq!(fe, None, "{function} {event}: {body}");
    json(&body)
}

async fn sh(app: &TestApp, cmd: &str) -> serde_json::Value {
    call(app, "hostile", serde_json::json!({"op": "sh", "cmd": cmd})).await
}

async fn roomy_sh(app: &TestApp, cmd: &str) -> serde_json::Value {
    call(app, "roomy", serde_json::json!({"op": "sh", "cmd": cmd})).await
}

#[tokio::test]
async fn a_hostile_function_cannot_read_keys_state_or_other_code_and_cannot_write_outside_tmp() {
    let app = start(1).await;
    let state = app.platform().state_dir.clone();
    assert!(state.join("master.key").exists() || state.join("state.db").exists());
    // The read operation works: its own code is readable at /var/task.
    let own = call(
        &app,
        "hostile",
        serde_json::json!({"op": "read", "path": "/var/task/hostile.js"}),
    )
    .await;
    assert_eq!(own["ok"], true, "{own}");
    for path in [
        state.join("master.key"),
        state.join("state.db"),
        state.join("telemetry.db"),
        "/var/task/.gust/master.key".into(),
        "/var/task/.gust/state.db".into(),
        state.join("runtime/node/bootstrap.cjs.tmp"),
    ] {
        let r = call(&app, "hostile", serde_json::json!({"op": "read", "path": path})).await;
        assert_eq!(r["ok"], false, "{} was readable: {r}", path.display());
    }
    // The host's other files (another app's code would be here) are not in its world.
    let r = call(
        &app,
        "hostile",
        serde_json::json!({"op": "read", "path": app.dir.path().join("victim.js")}),
    )
    .await;
    assert_eq!(r["ok"], false, "the app's host path is visible: {r}");
    // Nor the host root its init keeps for a moment while the instance starts.
    let r = call(
        &app,
        "hostile",
        serde_json::json!({"op": "read", "path": "/.gust-host/root/etc/passwd"}),
    )
    .await;
    assert_eq!(r["ok"], false, "{r}");
    let r = call(
        &app,
        "hostile",
        serde_json::json!({"op": "read", "path": "/root/.bashrc"}),
    )
    .await;
    assert_eq!(r["ok"], false, "{r}");

    // Writes: its own /tmp only. The shared bootstrap and its own code are read-only.
    let tmp = call(
        &app,
        "hostile",
        serde_json::json!({"op": "write", "path": "/tmp/scratch"}),
    )
    .await;
    assert_eq!(tmp["ok"], true, "{tmp}");
    let bootstrap = app.platform().state_dir.join("runtime/node/bootstrap.cjs");
    for path in [
        bootstrap.clone(),
        "/var/task/hostile.js".into(),
        "/etc/gust-was-here".into(),
        "/usr/x".into(),
    ] {
        let r = call(&app, "hostile", serde_json::json!({"op": "write", "path": path})).await;
        assert_eq!(r["ok"], false, "{} was writable: {r}", path.display());
    }
    assert!(
        !std::fs::read_to_string(&bootstrap).unwrap().ends_with('x'),
        "the bootstrap was changed"
    );
    // /tmp is bounded by ephemeral_storage (512 MB by default); it is memory, so the
    // function needs the room.
    let full = roomy_sh(&app, "dd if=/dev/zero of=/tmp/big bs=1M count=600 2>&1; rm -f /tmp/big").await;
    assert!(full["out"].as_str().unwrap().contains("No space left"), "{full}");
    app.stop().await;
}

#[tokio::test]
async fn a_hostile_function_cannot_see_signal_or_rob_gust_and_other_instances() {
    let app = start(1).await;
    let victim = call(&app, "victim", serde_json::json!({})).await;
    let hostile_env = call(&app, "hostile", serde_json::json!({"op": "env"})).await;

    // Its own user, not Gust's, and not the other instance's.
    let me = sh(&app, "id -u").await;
    let my_uid: u32 = me["out"].as_str().unwrap().trim().parse().unwrap();
    assert_ne!(my_uid, nix::unistd::getuid().as_raw());
    assert_ne!(victim["uid"].as_u64().unwrap() as u32, my_uid);

    // It sees only its own processes: no Gust, no victim, no environ of either.
    let ps = sh(
        &app,
        "for p in /proc/[0-9]*; do cat $p/cmdline | tr '\\0' ' '; echo; done",
    )
    .await;
    let listing = ps["out"].as_str().unwrap();
    assert!(listing.contains("hostile") || listing.contains("node"), "{listing}");
    assert!(!listing.contains("victim"), "{listing}");
    let environs = sh(&app, "cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'").await;
    let environs = environs["out"].as_str().unwrap();
    assert!(
        environs.contains("AWS_LAMBDA_FUNCTION_NAME=hostile"),
        "the scan works: {environs}"
    );
    assert!(
        !environs.contains("victim-secret-4711"),
        "read the victim's environment"
    );
    assert!(hostile_env["env"].get("VICTIM_MARKER").is_none());

    // No way out through the kernel: no new user namespace, no mount, no privileges.
    let escape = sh(
        &app,
        "unshare -Ur true 2>&1; echo rc=$?; grep -E '^(CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status",
    )
    .await;
    let escape = escape["out"].as_str().unwrap();
    assert!(!escape.contains("rc=0"), "created a user namespace: {escape}");
    assert!(
        escape.contains("CapEff:\t0000000000000000") && escape.contains("CapBnd:\t0000000000000000"),
        "{escape}"
    );
    assert!(
        escape.contains("NoNewPrivs:\t1") && escape.contains("Seccomp:\t2"),
        "{escape}"
    );

    // Gust's pid does not exist in its world: the kill fails, Gust and the victim serve on.
    let gust = std::process::id();
    let kill = call(&app, "hostile", serde_json::json!({"op": "kill", "pid": gust})).await;
    assert_eq!(kill["ok"], false, "{kill}");
    let again = call(&app, "victim", serde_json::json!({})).await;
    assert_eq!(again["pid"], victim["pid"], "the victim's instance was disturbed");

    // The victim's Runtime API: from the hostile function, and from a plain local process,
    // the connection is closed without an answer; the victim still serves.
    let api = victim["api"].as_str().unwrap().to_string();
    let stolen = call(&app, "hostile", serde_json::json!({"op": "fetch", "addr": api})).await;
    assert_eq!(stolen["ok"], false, "{stolen}");
    let local = reqwest::Client::new()
        .get(format!("http://{api}/2018-06-01/runtime/invocation/next"))
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(local.is_err(), "a local process got an answer: {local:?}");
    let py = call(&app, "pyvictim", serde_json::json!({})).await;
    let stolen = call(&app, "hostile", serde_json::json!({"op": "fetch", "addr": py["api"]})).await;
    assert_eq!(stolen["ok"], false, "{stolen}");
    assert_eq!(call(&app, "victim", serde_json::json!({})).await["pid"], victim["pid"]);
    assert_eq!(call(&app, "pyvictim", serde_json::json!({})).await["api"], py["api"]);
    app.stop().await;
}

#[tokio::test]
async fn children_count_against_the_limits_and_leftovers_end_with_the_instance() {
    let app = start(0).await;
    // A child allocating 400 MB in a 128 MB function is killed by the memory limit.
    let hog = sh(
        &app,
        "python3 -c 'b = b\"x\" * (400 << 20); print(len(b))'; echo status=$?",
    )
    .await;
    let out = hog["out"].as_str().unwrap();
    assert!(out.contains("status=137"), "the child held 400 MB: {hog}");

    // A fork bomb stops at the pids limit (1,024 with the function's own); the function lives.
    let bomb = roomy_sh(
        &app,
        "python3 -c '
import os, signal
kids = []
try:
    for i in range(1500):
        kids.append(os.posix_spawn(\"/bin/sleep\", [\"sleep\", \"30\"], {}))
except OSError:
    pass
print(len(kids))
for k in kids:
    os.kill(k, signal.SIGKILL)
    os.waitpid(k, 0)
'",
    )
    .await;
    let started: usize = bomb["out"]
        .as_str()
        .unwrap()
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{bomb}"));
    assert!(started > 100 && started < 1024, "{bomb}");

    // Orphaned children are reaped by the instance's init: no zombies pile up.
    let zombies = sh(
        &app,
        "for i in 1 2 3 4 5; do (true &) ; done; sleep 0.3; grep -l '^State:.Z' /proc/[0-9]*/status | wc -l",
    )
    .await;
    assert_eq!(zombies["out"].as_str().unwrap().trim(), "0", "{zombies}");

    // A detached leftover runs on while the instance lives, and ends with it.
    let marker = "31415.9";
    sh(&app, &format!("setsid sleep {marker} > /dev/null 2>&1 &")).await;
    let leftover = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
        })
    };
    assert!(leftover(), "the leftover should run while its instance lives");
    // The function itself over its memory: the cgroup's out-of-memory kill is reported as
    // Lambda reports it, and the instance goes, leftovers included.
    let (status, fe, body) = app.invoke("hostile", r#"{"op":"alloc","mb":300}"#).await;
    assert_eq!((status, fe.as_deref()), (200, Some("Unhandled")), "{body}");
    assert_eq!(json(&body)["errorType"], "Runtime.OutOfMemory", "{body}");
    wait_for("the leftover to end with its instance", Duration::from_secs(10), || {
        !leftover()
    })
    .await;
    // Gust serves throughout, and the function again from a new instance.
    assert!(call(&app, "victim", serde_json::json!({})).await["uid"].is_u64());
    assert_eq!(
        call(&app, "hostile", serde_json::json!({"op": "alloc", "mb": 8})).await["ok"],
        true
    );
    app.stop().await;
}

#[tokio::test]
async fn python_node_and_prewarmed_instances_run_unmodified_inside() {
    // Prewarmed spares: specialised into the sandbox of their function.
    let app = start(1).await;
    let py = call(&app, "pyvictim", serde_json::json!({})).await;
    assert_eq!(py["task"], "/var/task", "{py}");
    assert!(py["init"].as_str().unwrap().ends_with("gust-sandbox"), "{py}");
    assert_ne!(py["uid"], 0);
    let node = call(&app, "victim", serde_json::json!({})).await;
    assert_ne!(node["uid"], 0);
    let (n, p) = (
        app.platform().invoker.pool_stats("victim").unwrap(),
        app.platform().invoker.pool_stats("pyvictim").unwrap(),
    );
    assert_eq!((n.total, p.total), (1, 1));
    app.stop().await;
}

/// `awslambdaric` (PyPI), installed once under `target/` and copied into the function's code.
fn awslambdaric() -> std::path::PathBuf {
    static DIR: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = target_dir().join("..").join("pydeps-ric");
        pip_install_into(&dir, "awslambdaric", "awslambdaric");
        dir
    })
    .clone()
}

#[tokio::test]
async fn the_official_rust_and_python_runtime_clients_run_unmodified_inside() {
    let dir = write_app(&[
        (
            "gust.toml",
            "[app]\nname = \"clients\"\n\n[functions.echo]\nruntime = \"provided.al2023\"\ndir = \"echo\"\n\n[functions.ric]\nruntime = \"provided.al2023\"\ndir = \"ric\"\n",
        ),
        (
            "ric/bootstrap",
            "#!/bin/sh\nexport PYTHONPATH=/var/task/deps\nexec python3 -m awslambdaric app.handler\n",
        ),
        (
            "ric/app.py",
            "import os\ndef handler(event, context):\n    return {\"echo\": event, \"uid\": os.getuid(), \"cwd\": os.getcwd(), \"request_id\": context.aws_request_id}\n",
        ),
    ]);
    // The Rust binary is a link to the build's output, outside the code: shown at its target.
    provided_fixture(dir.path(), "echo", "lambda-echo");
    copy_dir(&awslambdaric(), &dir.path().join("ric/deps"));
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path().join("ric/bootstrap"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let app = TestApp::start_configured(dir, |c| c.sandbox.mode = SandboxMode::Strict).await;
    let (status, fe, body) = app.invoke("echo", r#"{"hello":"rust"}"#).await;
    assert_eq!((status, fe), (200, None), "{body}");
    let v = json(&body);
    assert_eq!(v["echo"]["hello"], "rust");
    assert_eq!(v["deadline_in_future"], true);
    let (status, fe, body) = app.invoke("echo", r#"{"fail":"on purpose"}"#).await;
    assert_eq!((status, fe.as_deref()), (200, Some("Unhandled")), "{body}");

    let (status, fe, body) = app.invoke("ric", r#"{"hello":"ric"}"#).await;
    assert_eq!((status, fe), (200, None), "{body}");
    let v = json(&body);
    assert_eq!(v["echo"]["hello"], "ric");
    assert_eq!(v["cwd"], "/var/task");
    assert_ne!(v["uid"], 0);
    assert!(!v["request_id"].as_str().unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_confined_instance_ends_when_gust_is_killed() {
    let app = write_app(&[
        (
            "gust.toml",
            "[app]\nname = \"orphans\"\n[functions.forker]\nruntime = \"nodejs20.x\"\nhandler = \"forker.handler\"\n[[routes]]\nroute = \"GET /fork\"\nfunction = \"forker\"\n",
        ),
        (
            "forker.js",
            "const { spawn } = require('node:child_process');\nexports.handler = async () => { spawn('setsid', ['sleep', '2718.28'], { stdio: 'ignore', detached: true }).unref(); return { statusCode: 200, body: 'ok' }; };",
        ),
    ]);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(app.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let state = tempfile::tempdir().unwrap();
    let mut gust = GustUp::start_with(app.path(), state.path(), &["--sandbox", "strict"]).await;
    let r = reqwest::get(format!("{}/fork", gust.gateway)).await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let leftover = || {
        std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| String::from_utf8_lossy(&c).contains("2718.28"))
        })
    };
    wait_for("the detached child to start", Duration::from_secs(10), leftover).await;
    // Killed while frozen (idle): under cgroup v1 its processes act on SIGKILL only once
    // thawed, which the orphan watchdog does after killing the groups.
    // (A prewarmed spare, the other child, is never frozen.)
    let gust_pid = gust.pid().as_raw() as u32;
    wait_for("the idle instance to be frozen", Duration::from_secs(10), || {
        children_of(gust_pid)
            .iter()
            .any(|p| crate::freezer::instance_freezer_dir(*p).is_some_and(|d| crate::freezer::frozen(&d)))
    })
    .await;
    gust.kill_9().await;
    // It left the process group, but not the pid namespace: it ends with the instance.
    wait_for("the detached child to end with Gust", Duration::from_secs(10), || {
        !leftover()
    })
    .await;
}

#[tokio::test]
async fn a_provided_cold_start_takes_a_prewarmed_sandbox() {
    let dir = write_app(&[(
        "gust.toml",
        "[app]\nname = \"spare\"\n\n[functions.echo]\nruntime = \"provided.al2023\"\ndir = \"echo\"\n",
    )]);
    // A real file this time (a link out of the code cannot be shown to a spare).
    std::fs::create_dir_all(dir.path().join("echo")).unwrap();
    std::fs::copy(fixture_bin("lambda-echo"), dir.path().join("echo/bootstrap")).unwrap();
    let app = TestApp::start_configured(dir, |c| {
        c.sandbox.mode = SandboxMode::Strict;
        c.prewarm_per_runtime = 1;
    })
    .await;
    let invoker = app.platform().invoker.clone();
    wait_for("a prewarmed sandbox", Duration::from_secs(10), || {
        invoker.prewarmed_ready() >= 1
    })
    .await;
    // A spare is background work: the smallest CPU weight until it is given a function.
    // (The launcher joins its cgroup itself, just after it starts.)
    let spare = invoker.prewarmed_pids()[0];
    wait_for(
        "the spare in its cgroup, at the smallest CPU weight",
        Duration::from_secs(10),
        || cpu_shares(spare) == 2,
    )
    .await;
    let out = invoker
        .invoke(gust_runtime::Invocation::new(
            "echo",
            r#"{"hello":"spare"}"#,
            gust_runtime::Trigger::Direct,
        ))
        .await
        .unwrap();
    assert!(
        out.cold_start && out.prewarmed,
        "the cold start used the prewarmed sandbox"
    );
    let v = json(std::str::from_utf8(&out.payload).unwrap());
    assert_eq!(v["echo"]["hello"], "spare");
    assert_eq!(v["function_name"], "echo");
    // Its init over, the instance (the spare it was) has the weight of its memory: 128 MB of
    // the 1,769 MB that make a vCPU's 1,024 shares.
    assert_eq!(cpu_shares(spare), 128 * 1024 / 1769, "the instance's CPU weight");
    // A new spare is made ready for the next cold start.
    wait_for("the spare to be replaced", Duration::from_secs(10), || {
        invoker.prewarmed_ready() >= 1
    })
    .await;
    app.stop().await;
}

/// The uid a Gust without root runs as in the next test (`nobody`).
const UNPRIVILEGED: u32 = 65534;

/// `gust up` as an unprivileged user, stderr kept: the exit status if it stopped within `within`.
fn gust_up_unprivileged(
    app: &std::path::Path,
    state: &std::path::Path,
    mode: &str,
    stderr: &std::path::Path,
) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    std::process::Command::new(env!("CARGO_BIN_EXE_gust"))
        .args(gust_up_args(app, state))
        .args(["--sandbox", mode])
        .env("HOME", state)
        .uid(UNPRIVILEGED)
        .gid(UNPRIVILEGED)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(stderr).unwrap())
        .spawn()
        .unwrap()
}

/// A directory the unprivileged user owns.
fn unprivileged_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let id = Some(nix::unistd::Uid::from_raw(UNPRIVILEGED));
    nix::unistd::chown(d.path(), id, Some(nix::unistd::Gid::from_raw(UNPRIVILEGED))).unwrap();
    d
}

#[tokio::test]
async fn without_root_instances_are_confined_by_a_user_namespace_and_what_is_off_is_named() {
    let dir = write_app(&[
        ("gust.toml", MANIFEST),
        ("hostile.js", HOSTILE),
        ("victim.js", VICTIM),
        ("pyvictim.py", PYVICTIM),
    ]);
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let logs = tempfile::tempdir().unwrap();

    // Without root there are no cgroups to write here (this host's are root's): `strict`
    // refuses to start, naming the protection and why.
    let state = unprivileged_dir();
    let refused_log = logs.path().join("strict.log");
    let mut refused = gust_up_unprivileged(dir.path(), state.path(), "strict", &refused_log);
    let status = tokio::task::spawn_blocking(move || refused.wait().unwrap())
        .await
        .unwrap();
    let text = std::fs::read_to_string(&refused_log).unwrap();
    assert!(!status.success(), "strict started without root: {text}");
    assert!(
        text.contains("--sandbox strict") && text.contains("resource limits is off"),
        "the refusal names what is off: {text}"
    );

    // `auto` starts, says in one line per protection what is off and why, and confines with a
    // user namespace.
    let state = unprivileged_dir();
    let log = logs.path().join("auto.log");
    let mut child = gust_up_unprivileged(dir.path(), state.path(), "auto", &log);
    let info = state.path().join("gust.json");
    let mut v = serde_json::Value::Null;
    wait_for("the unprivileged gust up to be ready", Duration::from_secs(60), || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "gust up exited early ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        v = std::fs::read_to_string(&info)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(serde_json::Value::Null);
        v["admin"].is_string()
    })
    .await;
    let gust_pid = child.id();
    let stop = scopeguard(child);
    let admin = v["admin"].as_str().unwrap().to_string();
    let token = std::fs::read_to_string(state.path().join("operator.token"))
        .unwrap()
        .trim()
        .to_string();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("sandbox: resource limits is off"), "{text}");
    assert!(text.contains("instances are confined"), "{text}");
    let client = reqwest::Client::new();
    let call = |function: &'static str, event: serde_json::Value| {
        let (client, admin, token) = (client.clone(), admin.clone(), token.clone());
        async move {
            let r = client
                .post(format!("{admin}/2015-03-31/functions/{function}/invocations"))
                .bearer_auth(token)
                .body(event.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            assert!(r.headers().get("x-amz-function-error").is_none());
            json(&r.text().await.unwrap())
        }
    };
    let sh = |cmd: &str| call("hostile", serde_json::json!({"op": "sh", "cmd": cmd}));

    // Its code is at /var/task; Gust's state (same uid outside!) is not in its world.
    let own = call(
        "hostile",
        serde_json::json!({"op": "read", "path": "/var/task/hostile.js"}),
    )
    .await;
    assert_eq!(own["ok"], true, "{own}");
    assert!(state.path().join("master.key").exists() || state.path().join("state.db").exists());
    for path in [
        state.path().join("master.key"),
        state.path().join("state.db"),
        state.path().join("operator.token"),
    ] {
        let r = call("hostile", serde_json::json!({"op": "read", "path": path})).await;
        assert_eq!(r["ok"], false, "{} was readable: {r}", path.display());
    }
    for path in ["/var/task/hostile.js", "/etc/gust-was-here"] {
        let r = call("hostile", serde_json::json!({"op": "write", "path": path})).await;
        assert_eq!(r["ok"], false, "{path} was writable: {r}");
    }
    let tmp = call("hostile", serde_json::json!({"op": "write", "path": "/tmp/scratch"})).await;
    assert_eq!(tmp["ok"], true, "{tmp}");

    // It sees its own processes only; Gust cannot be signalled; the victim's environment and
    // Runtime API stay out of reach.
    let victim = call("victim", serde_json::json!({})).await;
    let ps = sh("for p in /proc/[0-9]*; do cat $p/cmdline | tr '\\0' ' '; echo; done").await;
    let listing = ps["out"].as_str().unwrap();
    assert!(listing.contains("node"), "the scan works: {listing}");
    assert!(!listing.contains("victim") && !listing.contains("gust up"), "{listing}");
    let environs = sh("cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'").await;
    assert!(!environs["out"].as_str().unwrap().contains("victim-secret-4711"));
    let kill = call("hostile", serde_json::json!({"op": "kill", "pid": gust_pid})).await;
    assert_eq!(kill["ok"], false, "{kill}");
    let stolen = call("hostile", serde_json::json!({"op": "fetch", "addr": victim["api"]})).await;
    assert_eq!(stolen["ok"], false, "{stolen}");
    let escape = sh("grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status").await;
    let escape = escape["out"].as_str().unwrap();
    assert!(
        escape.contains("NoNewPrivs:\t1") && escape.contains("Seccomp:\t2"),
        "{escape}"
    );
    let again = call("victim", serde_json::json!({})).await;
    assert_eq!(again["pid"], victim["pid"], "the victim's instance was disturbed");
    assert!(pid_alive(gust_pid as i32), "Gust was killed");
    drop(stop);
}

/// Kills and reaps the child when dropped (a failed assertion included).
fn scopeguard(child: std::process::Child) -> impl Drop {
    struct Guard(std::process::Child);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    Guard(child)
}

/// `cpu.shares` of the cgroup v1 `cpu` controller that process `pid` is in.
fn cpu_shares(pid: i32) -> u64 {
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let rel = own
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrls.split(',').any(|c| c == "cpu").then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no cpu cgroup for {pid}: {own}"));
    let file = format!("/sys/fs/cgroup/cpu{rel}/cpu.shares");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{file}: {e}"))
        .trim()
        .parse()
        .unwrap()
}
