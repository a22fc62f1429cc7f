#!/usr/bin/env python3
"""Gust benchmark harness: measures Gust, its peer and the baselines in one run.

Called by bench/run.sh once the binaries and tools exist (see bench/README.md). Python 3
standard library only. Every process it starts lives in its own session and is stopped on
exit, on error and on Ctrl-C/SIGTERM; every load loop is bounded by a duration and a timeout.

Output: one markdown table (medians over the runs), then the targets as PASS/MISS lines with
ratios against baselines measured in this same run, then an "Events" table (publish -> handler
-> ack on the embedded log, batch 1 and 10). Also written to bench/.work/results/.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
APPS = WORK / "apps"
LOGS = WORK / "logs"
RESULTS = WORK / "results"

VALID_USER = '{"email":"ada@example.com","name":"Ada"}'


# --------------------------------------------------------------------------------------------
# Modes


class Mode:
    """Sizes of one run. FULL is what BENCHMARKS.md reports; QUICK is for development."""

    def __init__(self, quick):
        self.name = "quick" if quick else "full"
        self.starts = 2 if quick else 5  # restarts per server: start-up, idle RSS, first request
        self.colds = 3 if quick else 6  # scale-to-zero cold starts per Gust restart
        self.proc_starts = 5 if quick else 20  # `node -e 0` / `python3 -c 0` samples
        self.runs = 1 if quick else 3  # measured wrk runs per system (median reported)
        self.duration = 3 if quick else 8  # seconds per wrk run at `conns` connections
        self.duration_c1 = 2 if quick else 3  # seconds per wrk run at 1 connection
        self.warmup = 1 if quick else 2  # seconds of unrecorded warm-up load before measuring
        self.conns = 16
        self.settle = 1.0  # seconds after ready before sampling idle RSS
        self.events = 1000 if quick else 10000  # events per end-to-end run (events systems)
        self.event_runs = 1 if quick else 3  # end-to-end runs per events system (median reported)
        self.event_singles = 200 if quick else 500  # sequential 1-event publishes (latency)


# --------------------------------------------------------------------------------------------
# Processes: every one started here is registered and stopped at exit.


class Procs:
    def __init__(self):
        self.live = []

    def start(self, name, argv, cwd=None, env=None):
        LOGS.mkdir(parents=True, exist_ok=True)
        log = open(LOGS / f"{name}.log", "ab")
        p = subprocess.Popen(
            [str(a) for a in argv],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # own process group: Ctrl-C reaches us, we stop them
        )
        log.close()
        p.bench_name = name
        self.live.append(p)
        return p

    def stop(self, p, grace=8.0):
        """SIGTERM the group (the platform's own graceful stop), then SIGKILL whatever of the
        process tree is left, including children that moved to process groups of their own."""
        tree = descendants(p.pid)
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(timeout=5)
        for pid in tree:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(reversed(self.live)):
            try:
                self.stop(p, grace=3.0)
            except Exception as e:  # keep stopping the others
                print(f"bench: could not stop {p.bench_name} ({p.pid}): {e}", file=sys.stderr)


PROCS = Procs()


def children_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses
        ppid = int(stat[stat.rfind(")") + 2 :].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def descendants(pid):
    kids = children_map()
    out, todo = [], [pid]
    while todo:
        for c in kids.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_rss_mb(pid):
    """Resident memory of a process and all its descendants, in MiB."""
    return sum(rss_kb(p) for p in [pid] + descendants(pid)) / 1024.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_tail(name, n=30):
    try:
        lines = (LOGS / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])
    except OSError:
        return "(no log)"


class BenchError(Exception):
    pass


def wait_ready(p, port, t0, timeout=60.0):
    """Milliseconds from `t0` (just before spawn) to the first HTTP response on `port`."""
    deadline = t0 + timeout
    probe = b"GET /__bench_ready HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2.0) as s:
                s.sendall(probe)
                if s.recv(5) == b"HTTP/":
                    return (time.perf_counter() - t0) * 1000.0
        except OSError:
            pass
        if p.poll() is not None:
            raise BenchError(f"{p.bench_name} exited with {p.returncode}:\n{log_tail(p.bench_name)}")
        if time.perf_counter() > deadline:
            raise BenchError(f"{p.bench_name} not answering on {port} after {timeout}s:\n{log_tail(p.bench_name)}")
        time.sleep(0.001)


def request(port, method, path, body=None, timeout=30.0):
    """One request on a new connection: (status, body, milliseconds)."""
    headers = {"content-type": "application/json"} if body is not None else {}
    t = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers)
        r = c.getresponse()
        data = r.read()
    finally:
        c.close()
    return r.status, data.decode("utf-8", "replace"), (time.perf_counter() - t) * 1000.0


# --------------------------------------------------------------------------------------------
# wrk

WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def wrk(url, conns, seconds, script=None, threads=1):
    argv = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    if script:
        argv += ["-s", str(script)]
    argv.append(url)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    p.bench_name = "wrk"
    PROCS.live.append(p)
    try:
        out, _ = p.communicate(timeout=seconds + 20)
    except subprocess.TimeoutExpired:
        PROCS.stop(p, grace=1.0)
        raise BenchError(f"wrk did not finish: {' '.join(argv)}")
    PROCS.live.remove(p)
    if p.returncode != 0:
        raise BenchError(f"wrk failed ({p.returncode}): {out}")
    res = {"rps": None, "p50": None, "p99": None, "requests": 0, "non2xx": 0, "errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for pct, key in (("50", "p50"), ("99", "p99")):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        if m:
            res[key] = float(m.group(1)) * WRK_UNITS[m.group(2)]
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = sum(int(x) for x in m.groups())
    if res["rps"] is None or res["p50"] is None:
        raise BenchError(f"cannot parse wrk output:\n{out}")
    return res


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def percentile(xs, q):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    k = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[k]


# --------------------------------------------------------------------------------------------
# Apps: generated under bench/.work/apps from bench/app (the handlers are the same files).


def toml_str(s):
    return json.dumps(s)


def gust_manifest(name, functions, routes, extra=""):
    """functions: {name: dict(runtime, handler, dir?, scaling?)}; routes: [(route, function)];
    extra: more manifest text (topics, subscriptions)."""
    out = [f"[app]\nname = {toml_str(name)}\n"]
    for fname, f in functions.items():
        out.append(f"[functions.{toml_str(fname)}]")
        out.append(f"runtime = {toml_str(f['runtime'])}")
        if f.get("handler"):
            out.append(f"handler = {toml_str(f['handler'])}")
        if f.get("dir"):
            out.append(f"dir = {toml_str(f['dir'])}")
        out.append("memory = 256\ntimeout = 5")
        s = f.get("scaling")
        if s:
            out.append(
                "scaling = { min_instances = 0, max_instances = %d, idle_timeout = %s, max_queue = 1000 }"
                % (s["max"], s["idle"])
            )
        out.append("")
    for route, fn in routes:
        out.append(f"[[routes]]\nroute = {toml_str(route)}\nfunction = {toml_str(fn)}\n")
    if extra:
        out.append(extra)
    return "\n".join(out)


# The cold-start function scales to zero 0.1 s after each request; the loaded one stays warm.
# After the admin API reports 0 instances the harness waits COLD_GAP more before the next cold
# request: whatever Gust does in the background after a stop has that long (real cold starts
# come after far longer idle periods).
COLD = {"max": 1, "idle": "0.1"}
WARM = {"max": 4, "idle": "300"}
COLD_GAP = 0.2


def write_app(name, manifest, files=(), echo=None):
    d = APPS / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    (d / "gust.toml").write_text(manifest)
    for f in files:
        shutil.copy2(BENCH / "app" / f, d / f)
    if echo:
        (d / "echo").mkdir()
        shutil.copy2(echo, d / "echo" / "bootstrap")
        os.chmod(d / "echo" / "bootstrap", 0o755)
    return d


def make_apps(echo_bin, py_version):
    apps = {}
    apps["gust-node"] = write_app(
        "gust-node",
        gust_manifest(
            "bench-node",
            {
                "hello": {"runtime": "nodejs20.x", "handler": "handler.hello", "scaling": COLD},
                "createUser": {"runtime": "nodejs20.x", "handler": "handler.createUser", "scaling": WARM},
            },
            [("GET /hello", "hello"), ("POST /users", "createUser")],
        ),
        files=["handler.js"],
    )
    py = f"python{py_version}"
    apps["gust-python"] = write_app(
        "gust-python",
        gust_manifest(
            "bench-python",
            {
                "hello": {"runtime": py, "handler": "handler.hello", "scaling": COLD},
                "createUser": {"runtime": py, "handler": "handler.create_user", "scaling": WARM},
            },
            [("GET /hello", "hello"), ("POST /users", "createUser")],
        ),
        files=["handler.py"],
    )
    apps["gust-provided"] = write_app(
        "gust-provided",
        gust_manifest(
            "bench-provided",
            {
                "hello": {"runtime": "provided.al2023", "dir": "echo", "scaling": COLD},
                "createUser": {"runtime": "provided.al2023", "dir": "echo", "scaling": WARM},
            },
            [("GET /hello", "hello"), ("POST /users", "createUser")],
        ),
        echo=echo_bin,
    )
    # Routing cost: the same target route alone, or among 1,000 (250 services x 4 routes:
    # literal and {param} paths, several methods), all on the Rust echo so that the gateway,
    # not the handler, dominates the request.
    echo_fn = {"echo": {"runtime": "provided.al2023", "dir": "echo", "scaling": WARM}}
    apps["gust-routes-1"] = write_app(
        "gust-routes-1", gust_manifest("bench-routes-1", echo_fn, [(ROUTE_TARGET, "echo")]), echo=echo_bin
    )
    many = []
    for i in range(250):
        many += [
            (f"GET /svc{i}/items", "echo"),
            (f"POST /svc{i}/items", "echo"),
            (f"GET /svc{i}/items/{{id}}", "echo"),
            (f"DELETE /svc{i}/items/{{id}}", "echo"),
        ]
    assert len(many) == 1000 and (ROUTE_TARGET, "echo") in many
    apps["gust-routes-1000"] = write_app(
        "gust-routes-1000", gust_manifest("bench-routes-1000", echo_fn, many), echo=echo_bin
    )
    # Idle memory per function: 1 vs 1,000 Node functions, each with its own route.
    for n in (1, 1000):
        fns = {f"fn{i}": {"runtime": "nodejs20.x", "handler": "handler.hello"} for i in range(n)}
        rts = [(f"GET /fn{i}/hello", f"fn{i}") for i in range(n)]
        apps[f"gust-fns-{n}"] = write_app(f"gust-fns-{n}", gust_manifest(f"bench-fns-{n}", fns, rts), files=["handler.js"])
    # Events: one topic, one subscription feeding the Rust echo (it returns its event, so every
    # delivery succeeds and costs the handler next to nothing), batch 1 or 10.
    for batch in EVENT_BATCHES:
        apps[f"gust-events-{batch}"] = write_app(
            f"gust-events-{batch}",
            gust_manifest(f"bench-events-{batch}", {EVENT_FUNCTION: {"runtime": "provided.al2023", "dir": "echo",
                                                                     "scaling": WARM}}, [],
                          extra=events_manifest(batch)),
            echo=echo_bin,
        )
    # Lambda authorizers: the same Node handler behind no authorizer, a cached one (TTL 300 s, so
    # every measured request is a cache hit) and an uncached one (TTL 0: one authorizer
    # invocation per request), in one Gust.
    auth_fns = {
        "hello": {"runtime": "nodejs20.x", "handler": "handler.hello", "scaling": WARM},
        "auth": {"runtime": "nodejs20.x", "handler": "authorizer.handler", "scaling": WARM},
    }
    auth_routes = "\n".join(
        f"[[routes]]\nroute = {toml_str(route)}\nfunction = \"hello\"\n"
        + (f"authorizer = {{ function = \"auth\", type = \"token\", ttl = {ttl} }}\n" if ttl is not None else "")
        for route, ttl in AUTH_ROUTES.values()
    )
    apps["gust-auth"] = write_app(
        "gust-auth", gust_manifest("bench-auth", auth_fns, [], extra=auth_routes), files=["handler.js", "authorizer.js"]
    )
    sls = APPS / "sls"
    if sls.exists():
        shutil.rmtree(sls)
    sls.mkdir(parents=True)
    for f in ("handler.js", "serverless.yml"):
        shutil.copy2(BENCH / "app" / f, sls / f)
    apps["sls"] = sls
    return apps


# Lambda authorizer rows: key -> (route, authorizer TTL or None for no authorizer).
AUTH_ROUTES = {
    "gust-auth-none": ("GET /plain", None),
    "gust-auth-cached": ("GET /cached", 300),
    "gust-auth-uncached": ("GET /uncached", 0),
}
AUTH_LABELS = {
    "gust-auth-none": "Gust — Node handler, no authorizer",
    "gust-auth-cached": "Gust — Node handler behind a Lambda authorizer, cached (TTL 300 s)",
    "gust-auth-uncached": "Gust — Node handler behind a Lambda authorizer, uncached (TTL 0)",
}


def auth_table(R):
    base = R.get("gust-auth-none", {}).get("p50_c1")
    rows = [
        "| route | p50 at 1 connection (ms) | added by the authorizer, p50 (ms) | req/s at 1 connection |",
        "|---|---:|---:|---:|",
    ]
    for key in AUTH_ROUTES:
        r = R.get(key)
        if not r or not r.get("load_c1"):
            continue
        p50 = r.get("p50_c1")
        added = "—" if key == "gust-auth-none" or base is None or p50 is None else fmt(p50 - base, 2)
        warn = " ⚠" if r.get("problems") or r.get("bad") else ""
        rows.append(f"| {r['label']}{warn} | {fmt(p50, 2)} | {added} | {fmt(r.get('rps_c1'), 0)} |")
    return "\n".join(rows)


REDEPLOY_FUNCTIONS = 10
REDEPLOY_ROUNDS = 10
# How often the steady client's run is interrupted by a redeploy (seconds).
REDEPLOY_EVERY = 0.5


def redeploy_app():
    """Ten Node functions, each in its own directory (so each has its own code revision), each
    behind `GET /fN`, answering the version written into its handler."""
    fns = "".join(
        f'[functions.f{i}]\nruntime = "nodejs20.x"\nhandler = "h.handler"\ndir = "f{i}"\n\n'
        f'[[routes]]\nroute = "GET /f{i}"\nfunction = "f{i}"\n\n'
        for i in range(REDEPLOY_FUNCTIONS)
    )
    d = write_app("gust-redeploy", f'[app]\nname = "bench-redeploy"\n\n{fns}')
    redeploy_write(d, "v0", range(REDEPLOY_FUNCTIONS))
    return d


def redeploy_write(app, version, which):
    for i in which:
        f = app / f"f{i}" / "h.js"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(f"exports.handler = async () => ({{ statusCode: 200, body: '{version}' }});\n")


def post_redeploy(admin_port):
    """`POST /gust/v1/deployments`: (ms until the answer, the answer)."""
    t0 = time.perf_counter()
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=60)
    try:
        c.request("POST", "/gust/v1/deployments", headers=admin_headers(admin_port))
        r = c.getresponse()
        body = r.read().decode("utf-8", "replace")
    finally:
        c.close()
    ms = (time.perf_counter() - t0) * 1000
    if r.status != 200:
        raise BenchError(f"POST /gust/v1/deployments answered {r.status}: {body[:300]}")
    return ms, json.loads(body)


def redeploy_table(R):
    r = R.get("gust-redeploy")
    if not r or not r.get("first"):
        return ""
    rows = [
        "| measure | p50 | p90 / p99 | notes |",
        "|---|---:|---:|---|",
        f"| redeploy of {REDEPLOY_FUNCTIONS} changed Node functions: request -> switched (ms) "
        f"| {fmt(median(r['switch']))} | {fmt(percentile(r['switch'], 90))} | {REDEPLOY_ROUNDS} rounds; each new function's first instance started before the switch |",
        f"| ... -> first request of the new version served (ms) | {fmt(median(r['first']))} "
        f"| {fmt(percentile(r['first'], 90))} | from the request to the redeploy |",
    ]
    for key, label in (("steady", "steady client, no redeploys"), ("during", f"same client, a redeploy of its function every {REDEPLOY_EVERY} s")):
        x = r.get(key)
        if x:
            rows.append(f"| {label}: latency (ms) | {fmt(x['p50'], 2)} | {fmt(x['p99'], 2)} (p99) "
                        f"| {fmt(x['rps'], 0)} req/s; {x['non2xx']} non-2xx, {x['errors']} socket errors"
                        + (f"; {x.get('redeploys', 0)} redeploys" if key == "during" else "") + " |")
    return "\n".join(rows)


ROUTE_TARGET = "GET /svc137/items/{id}"
ROUTE_URL = "/svc137/items/42"

EVENT_BATCHES = (1, 10)
EVENT_TOPIC = "bench"
EVENT_FUNCTION = "sink"
EVENT_SUBSCRIPTION = "bench-sink"


def events_manifest(batch):
    return (f"[topics.{EVENT_TOPIC}]\npublic = true\n\n"
            f"[[subscriptions]]\nname = {toml_str(EVENT_SUBSCRIPTION)}\ntopic = {toml_str(EVENT_TOPIC)}\n"
            f"function = {toml_str(EVENT_FUNCTION)}\nbatch_size = {batch}\nreport_batch_item_failures = false\n")


# --------------------------------------------------------------------------------------------
# Systems


class System:
    """A server under test. `launch(port)` returns (argv, cwd, env, extra ports)."""

    def __init__(self, key, label, kind):
        self.key = key
        self.label = label
        self.kind = kind  # gust | sls | plain

    def launch(self, port):
        raise NotImplementedError


class GustSystem(System):
    def __init__(self, key, label, gust, app, load_function="createUser", extra=()):
        super().__init__(key, label, "gust")
        self.gust, self.app, self.load_function, self.extra = gust, app, load_function, list(extra)

    def launch(self, port):
        self.admin = free_port()
        state = WORK / "state" / self.key
        if state.exists():
            shutil.rmtree(state)  # every start is a first `gust up`: runtime files, database
        state.parent.mkdir(parents=True, exist_ok=True)
        argv = [self.gust, "up", self.app, "--port", port, "--admin-port", self.admin, "--state", state] + self.extra
        ADMIN_TOKENS[self.admin] = state / "operator.token"  # written by gust up at its first start
        return argv, None, dict(os.environ)


class SlsSystem(System):
    def __init__(self, key, label, app, node, extra):
        super().__init__(key, label, "sls")
        self.app, self.node, self.extra = app, node, extra

    def launch(self, port):
        env = dict(os.environ)
        env.update(
            HOME=str(WORK / "home"),
            SLS_TELEMETRY_DISABLED="1",
            SLS_NOTIFICATIONS_MODE="off",
            SLS_DEPRECATION_DISABLE="*",
        )
        (WORK / "home").mkdir(parents=True, exist_ok=True)
        sls = WORK / "node_modules" / "serverless" / "bin" / "serverless.js"
        argv = [self.node, sls, "offline", "start", "--host", "127.0.0.1", "--httpPort", port,
                "--lambdaPort", free_port(), "--noSponsor"] + self.extra
        return argv, self.app, env


class PlainSystem(System):
    def __init__(self, key, label, argv_fn, cwd=None):
        super().__init__(key, label, "plain")
        self.argv_fn, self.cwd = argv_fn, cwd

    def launch(self, port):
        return self.argv_fn(port), self.cwd, dict(os.environ)


def start_system(sysm):
    port = free_port()
    argv, cwd, env = sysm.launch(port)
    t0 = time.perf_counter()
    p = PROCS.start(sysm.key, argv, cwd=cwd, env=env)
    ready_ms = wait_ready(p, port, t0)
    return p, port, ready_ms


# Admin port -> the operator token file of the Gust listening there (the operator API needs it).
ADMIN_TOKENS = {}


def admin_headers(admin_port):
    path = Path(ADMIN_TOKENS[admin_port])
    if not path.exists():
        return {}  # a Gust from before the operator token (`--before`) asks for none
    return {"Authorization": f"Bearer {path.read_text().strip()}"}


def gust_pool(admin_port, function):
    """{total, idle, waiting} of one function, from Gust's admin API."""
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    try:
        c.request("GET", "/gust/v1/functions", headers=admin_headers(admin_port))
        data = json.loads(c.getresponse().read())
    finally:
        c.close()
    for f in data.get("functions", []):
        if f.get("name") == function:
            return f["instances"]
    raise BenchError(f"function {function} not listed by the admin API")


def wait_scaled_to_zero(admin_port, function, timeout=10.0):
    deadline = time.perf_counter() + timeout
    while gust_pool(admin_port, function)["total"] != 0:
        if time.perf_counter() > deadline:
            raise BenchError(f"{function} did not scale to zero within {timeout}s")
        time.sleep(0.02)


def check_answers(sysm, port):
    """The systems must answer alike, or their numbers mean nothing."""
    if sysm.key == "floor":
        return
    st, body, _ = request(port, "POST", "/users", "{}")
    if sysm.key.startswith("gust-provided"):
        ok = st == 200 and '"body"' in body  # the echo returns the event
    else:
        ok = st == 400 and "Email is required" in body
    if not ok:
        raise BenchError(f"{sysm.label}: POST /users {{}} answered {st} {body[:200]}")
    st, body, _ = request(port, "POST", "/users", VALID_USER)
    want = 200 if sysm.key.startswith("gust-provided") else 201
    if st != want or "ada@example.com" not in body:
        raise BenchError(f"{sysm.label}: POST /users answered {st} {body[:200]}")


def measure_starts(sysm, mode, out, cold=True):
    """Restarts the system `mode.starts` times: start-up, idle RSS, first request after start,
    and for Gust, scale-to-zero cold starts. Returns the last process, still running."""
    r = out.setdefault(sysm.key, {"label": sysm.label})
    r.update(startup=[], rss=[], rss_main=[], first=[], cold=[])
    p = port = None
    for i in range(mode.starts):
        if p is not None:
            PROCS.stop(p)
        p, port, ready_ms = start_system(sysm)
        r["startup"].append(ready_ms)
        time.sleep(mode.settle)
        r["rss"].append(tree_rss_mb(p.pid))
        r["rss_main"].append(rss_kb(p.pid) / 1024.0)
        if not cold:
            continue
        st, body, ms = request(port, "GET", "/hello")
        if st != 200:
            raise BenchError(f"{sysm.label}: GET /hello answered {st} {body[:200]}")
        r["first"].append(ms)
        if sysm.kind == "gust":
            for _ in range(mode.colds):
                wait_scaled_to_zero(sysm.admin, "hello")
                time.sleep(COLD_GAP)
                st, body, ms = request(port, "GET", "/hello")
                if st != 200:
                    raise BenchError(f"{sysm.label}: GET /hello answered {st} {body[:200]}")
                r["cold"].append(ms)
        elif sysm.kind == "sls":
            r["cold"].append(ms)  # its cold start is the first request after start
    print(f"  {sysm.label}: start-up {fmt(median(r['startup']))} ms, idle RSS {fmt(median(r['rss']))} MB"
          + (f", first request {fmt(median(r['first']))} ms" if r["first"] else "")
          + (f", cold p50 {fmt(median(r['cold']))} ms" if r["cold"] else ""), flush=True)
    return p, port


class Server:
    """A running system under load: warms it, checks it after each load run, restarts it when
    a run left it unable to answer (which is recorded and shown, never hidden)."""

    def __init__(self, sysm, p, port, method, path, body, record):
        self.sysm, self.p, self.port = sysm, p, port
        self.method, self.path, self.body = method, path, body
        self.record = record  # the system's result dict: problems are appended to it
        self.broken = False

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}{self.path}"

    def warm(self, conns, seconds):
        """Unrecorded load from `conns` threads whose requests all complete (no request is
        cut off mid-flight, unlike a load generator stopping at its deadline)."""
        deadline = time.perf_counter() + seconds
        counts, errors = [], []

        def loop():
            n = 0
            c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
            headers = {"content-type": "application/json"} if self.body else {}
            try:
                while time.perf_counter() < deadline:
                    c.request(self.method, self.path, body=self.body, headers=headers)
                    r = c.getresponse()
                    r.read()
                    if r.status >= 300:
                        errors.append(r.status)
                    n += 1
            except Exception as e:  # reported below
                errors.append(repr(e))
            finally:
                c.close()
            counts.append(n)

        threads = [threading.Thread(target=loop, daemon=True) for _ in range(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 15)
        if errors:
            raise BenchError(f"{self.sysm.label}: warm-up got {len(errors)} errors, e.g. {errors[:3]}")

    def problem(self):
        """None if the system is idle and answering after a load run, else what is wrong."""
        if self.sysm.kind == "gust":
            deadline = time.perf_counter() + 2.0
            while True:
                st = gust_pool(self.sysm.admin, self.sysm.load_function)
                busy = st["total"] - st["idle"]
                if busy == 0 and st["waiting"] == 0:
                    break
                if time.perf_counter() > deadline:
                    return (f"after the load generator closed its connections, `{self.sysm.load_function}` kept "
                            f"{busy} of {st['total']} instances busy and {st['waiting']} waiters for 2 s")
                time.sleep(0.05)
        try:
            st, body, _ = request(self.port, self.method, self.path, self.body, timeout=3.0)
        except OSError as e:
            return f"no answer within 3 s after a load run ({e!r})"
        if st >= 300:
            return f"answers {st} after a load run: {body[:120]}"
        return None

    def restart(self):
        PROCS.stop(self.p)
        self.p, self.port, _ = start_system(self.sysm)
        self.broken = False

    def run(self, mode, conns, seconds, script):
        """One recorded wrk run on a healthy, warm system."""
        if self.broken:
            self.restart()
            self.warm(mode.conns, mode.warmup)
        res = wrk(self.url, conns, seconds, script)
        why = self.problem()
        if why:
            self.record.setdefault("problems", []).append(why)
            print(f"  ! {self.sysm.label}: {why}; it is restarted and warmed up before any further run", flush=True)
            self.broken = True
        return res


def measure_loads(servers, mode):
    """Warm-up, then `mode.runs` rounds at `mode.conns` connections and `mode.runs` at 1, each
    round one run of every server in turn."""
    lua = BENCH / "post_users.lua"
    for srv in servers:
        srv.warm(mode.conns, mode.warmup)
        srv.record["load"], srv.record["load_c1"] = [], []
    for conns, seconds, key in ((mode.conns, mode.duration, "load"), (1, mode.duration_c1, "load_c1")):
        for _ in range(mode.runs):
            for srv in servers:
                srv.record[key].append(srv.run(mode, conns, seconds, lua))
    for srv in servers:
        r = srv.record
        summarize_load(r)
        print(f"  {srv.sysm.label}: {fmt(r['rps'], 0)} req/s, p50 {fmt(r['p50'])} ms, p99 {fmt(r['p99'])} ms "
              f"@{mode.conns}; p50 {fmt(r['p50_c1'])} ms @1" + bad_note(r), flush=True)


def summarize_load(r):
    r["rps"] = median(x["rps"] for x in r["load"])
    r["p50"] = median(x["p50"] for x in r["load"])
    r["p99"] = median(x["p99"] for x in r["load"])
    if r.get("load_c1"):
        r["p50_c1"] = median(x["p50"] for x in r["load_c1"])
    r["bad"] = sum(x["non2xx"] + x["errors"] + (x["requests"] == 0) for x in r["load"] + r.get("load_c1", []))
    r["total"] = sum(x["requests"] for x in r["load"] + r.get("load_c1", []))


def bad_note(r):
    return f"  [{r['bad']} non-2xx/socket errors of {r['total']}]" if r.get("bad") else ""


# --------------------------------------------------------------------------------------------
# Events: publish -> subscription -> handler -> ack, on the embedded log.

EVENTS_PER_REQUEST = 100  # CloudEvents batch mode: one request (and one transaction) per 100 events
EVENT_PUBLISHERS = 4  # concurrent publishing threads, each on its own keep-alive connection
EVENT_POLL = 0.02  # seconds between backlog polls
EVENT_DRAIN_TIMEOUT = 120.0  # seconds a run may take from the first publish to an empty backlog


def admin_json(admin_port, path):
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    try:
        c.request("GET", path, headers=admin_headers(admin_port))
        r = c.getresponse()
        data = r.read()
        if r.status != 200:
            raise BenchError(f"admin API GET {path} answered {r.status}: {data[:200]!r}")
        return json.loads(data)
    finally:
        c.close()


def subscription_state(admin_port, name=EVENT_SUBSCRIPTION):
    """{backlog, dead_letters, ...} of one subscription, from the admin API."""
    for s in admin_json(admin_port, "/gust/v1/subscriptions").get("subscriptions", []):
        if s.get("name") == name:
            return s
    raise BenchError(f"subscription {name} not listed by the admin API")


METRIC_LINE = re.compile(r"^(\w+)\{([^}]*)\}\s+(\S+)\s*$")


def deliveries(admin_port, name=EVENT_SUBSCRIPTION):
    """{result: count} of gust_event_deliveries_total for one subscription, from /metrics."""
    c = http.client.HTTPConnection("127.0.0.1", admin_port, timeout=5)
    try:
        c.request("GET", "/metrics", headers=admin_headers(admin_port))  # an operator endpoint
        text = c.getresponse().read().decode("utf-8", "replace")
    finally:
        c.close()
    out = {}
    for line in text.splitlines():
        m = METRIC_LINE.match(line)
        if not m or m.group(1) != "gust_event_deliveries_total":
            continue
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
        if labels.get("subscription") == name:
            out[labels.get("result", "?")] = out.get(labels.get("result", "?"), 0) + int(float(m.group(3)))
    return out


def wait_drained(admin_port, deadline, publishing_done=lambda: True):
    """Polls the backlog every EVENT_POLL s until the publishers are done and it is 0; returns
    the perf_counter time at which the empty backlog was seen."""
    while True:
        done = publishing_done()
        st = subscription_state(admin_port)
        if done and st["backlog"] == 0:
            return time.perf_counter(), st
        if time.perf_counter() > deadline:
            raise BenchError(f"subscription backlog still {st['backlog']} (dead letters {st.get('dead_letters')}) "
                             f"at the deadline; publishing {'done' if done else 'not done'}")
        time.sleep(EVENT_POLL)


def ce_batch(run, start, n):
    return json.dumps([
        {"specversion": "1.0", "id": f"{run}-{i}", "source": "/bench", "type": "bench.event",
         "datacontenttype": "application/json", "data": {"i": i}}
        for i in range(start, start + n)
    ])


def publish_bulk(port, admin_port, run, n):
    """Publishes `n` events (EVENTS_PER_REQUEST per request, EVENT_PUBLISHERS threads) and waits
    for the subscription to drain. Returns a dict of figures."""
    bodies = [ce_batch(run, i, min(EVENTS_PER_REQUEST, n - i)) for i in range(0, n, EVENTS_PER_REQUEST)]
    lock = threading.Lock()
    todo = list(range(len(bodies)))
    errors, acked, finished = [], [0], []
    go = threading.Event()
    deadline_holder = [None]

    def publisher():
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            go.wait(10)
            while True:
                with lock:
                    if not todo or errors:
                        break
                    k = todo.pop(0)
                if time.perf_counter() > deadline_holder[0]:
                    errors.append("publish deadline passed")
                    break
                c.request("POST", f"/events/{EVENT_TOPIC}", body=bodies[k],
                          headers={"content-type": "application/cloudevents-batch+json"})
                r = c.getresponse()
                data = r.read()
                if r.status != 202:
                    errors.append(f"{r.status} {data[:200]!r}")
                    break
                got = json.loads(data).get("events", [])
                dup = sum(1 for e in got if e.get("duplicate"))
                if dup:
                    errors.append(f"{dup} events reported duplicate")
                with lock:
                    acked[0] += len(got)
        except Exception as e:  # reported below
            errors.append(repr(e))
        finally:
            c.close()
            with lock:
                finished.append(time.perf_counter())

    threads = [threading.Thread(target=publisher, daemon=True) for _ in range(EVENT_PUBLISHERS)]
    for t in threads:
        t.start()
    time.sleep(0.05)  # every thread is waiting on `go`
    t0 = time.perf_counter()
    deadline = t0 + EVENT_DRAIN_TIMEOUT
    deadline_holder[0] = deadline
    go.set()
    t_end, st = wait_drained(admin_port, deadline, lambda: len(finished) == len(threads) or bool(errors))
    for t in threads:
        t.join(5)
    if errors:
        raise BenchError(f"publishing failed: {errors[:3]}")
    if acked[0] != n:
        raise BenchError(f"{acked[0]} of {n} events acknowledged by the gateway")
    published = max(finished)
    return {"events": n, "publish_s": published - t0, "e2e_s": t_end - t0,
            "publish_eps": n / (published - t0), "e2e_eps": n / (t_end - t0), "dead_letters": st.get("dead_letters")}


def publish_singles(port, n):
    """`n` sequential 1-event publishes (plain JSON) on one keep-alive connection: milliseconds each."""
    xs = []
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        for i in range(n):
            body = json.dumps({"single": i})
            t = time.perf_counter()
            c.request("POST", f"/events/{EVENT_TOPIC}", body=body, headers={"content-type": "application/json"})
            r = c.getresponse()
            data = r.read()
            xs.append((time.perf_counter() - t) * 1000.0)
            if r.status != 202:
                raise BenchError(f"single publish answered {r.status}: {data[:200]!r}")
    finally:
        c.close()
    return xs


def measure_events(sysm, mode, out, batch):
    """End-to-end events/s (first publish -> empty backlog) over `mode.event_runs` runs of
    `mode.events` events, every delivery checked on /metrics; then single-publish latency."""
    r = out.setdefault(sysm.key, {"label": sysm.label})
    r.update(batch=batch, runs=[], problems=r.get("problems", []))
    p, port, ready = start_system(sysm)
    r["startup"] = [ready]
    admin = sysm.admin
    # Warm-up (unrecorded): spawns the function's instances and checks delivery works at all.
    warm = publish_bulk(port, admin, "warm", 200)
    base = deliveries(admin)
    if base.get("success", 0) != 200 or base.get("failure", 0):
        raise BenchError(f"warm-up: 200 events published, deliveries {base}")
    for i in range(mode.event_runs):
        res = publish_bulk(port, admin, f"run{i}", mode.events)
        now = deliveries(admin)
        res["success"] = now.get("success", 0) - base.get("success", 0)
        res["failure"] = now.get("failure", 0) - base.get("failure", 0)
        res["backpressure"] = now.get("backpressure", 0) - base.get("backpressure", 0)
        base = now
        r["runs"].append(res)
        if res["success"] != mode.events or res["failure"] or res["dead_letters"]:
            r["problems"].append(f"run {i + 1}: {mode.events} events published, {res['success']} delivered with "
                                 f"success, {res['failure']} failed, {res['dead_letters']} dead letters")
        print(f"  run {i + 1}: {fmt(res['e2e_eps'], 0)} events/s end to end ({fmt(res['e2e_s'], 2)} s), "
              f"publish {fmt(res['publish_eps'], 0)} events/s; deliveries: {res['success']} ok, {res['failure']} failed, "
              f"{res['backpressure']} back-pressure", flush=True)
        time.sleep(0.5)
    xs = publish_singles(port, mode.event_singles)
    r["single"] = xs
    wait_drained(admin, time.perf_counter() + 30)
    now = deliveries(admin)
    if now.get("success", 0) - base.get("success", 0) != mode.event_singles:
        r["problems"].append(f"{mode.event_singles} single publishes, {now.get('success', 0) - base.get('success', 0)} delivered")
    r["e2e_eps"] = median(x["e2e_eps"] for x in r["runs"])
    r["publish_eps"] = median(x["publish_eps"] for x in r["runs"])
    r["e2e_s"] = median(x["e2e_s"] for x in r["runs"])
    r["single_p50"], r["single_p99"] = percentile(xs, 50), percentile(xs, 99)
    r["delivered"] = sum(x["success"] for x in r["runs"])
    r["failed"] = sum(x["failure"] for x in r["runs"])
    r["backpressure"] = sum(x["backpressure"] for x in r["runs"])
    print(f"  {sysm.label}: {fmt(r['e2e_eps'], 0)} events/s end to end, publish p50 {fmt(r['single_p50'], 2)} ms, "
          f"p99 {fmt(r['single_p99'], 2)} ms", flush=True)
    PROCS.stop(p)


def events_table(R, mode):
    rows = [
        f"| system | batch size | events per run | end-to-end events/s | first publish -> backlog 0 (s) "
        f"| publish events/s ({EVENTS_PER_REQUEST} per request, {EVENT_PUBLISHERS} connections) "
        f"| publish p50 / p99, 1 event per request (ms) | delivered ok / failed (all runs) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in EVENT_ORDER:
        r = R.get(key)
        if not r or not r.get("runs"):
            continue
        warn = " ⚠" if r.get("problems") else ""
        rows.append(
            f"| {r['label']} | {r['batch']} | {mode.events:,} | {fmt(r.get('e2e_eps'), 0)}{warn} | {fmt(r.get('e2e_s'), 2)} "
            f"| {fmt(r.get('publish_eps'), 0)} | {fmt(r.get('single_p50'), 2)} / {fmt(r.get('single_p99'), 2)} "
            f"| {r.get('delivered', 0):,} / {r.get('failed', 0):,} |"
        )
    return "\n".join(rows)


EVENT_ORDER = [f"gust-events-{b}" for b in EVENT_BATCHES]


def proc_start(argv, n, env=None, check=True):
    subprocess.run(argv, check=check, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # page cache warm
    xs = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(argv, check=check, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        xs.append((time.perf_counter() - t) * 1000.0)
    return xs


def closed_port():
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Report


def fmt(x, digits=1):
    if x is None:
        return "—"
    if digits == 0:
        return f"{x:,.0f}"
    if abs(x) < 10 and digits == 1:
        return f"{x:.2f}"
    return f"{x:,.{digits}f}"


def machine():
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "memory": mem, "kernel": platform.release()}


def loadavg():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def targets(R):
    """[(PASS|MISS|N/A, text)] for each target of the performance issue."""
    g = lambda k, f: R.get(k, {}).get(f)  # noqa: E731
    cold = lambda k: median(R.get(k, {}).get("cold", []))  # noqa: E731
    out = []

    def add(ok, text):
        out.append(("N/A" if ok is None else ("PASS" if ok else "MISS"), text))

    gn, sd = cold("gust-node"), cold("sls-default")
    rr = ratio(gn, sd)
    add(None if rr is None else rr <= 1 / 3,
        f"Node cold start p50 <= 1/3 of serverless-offline default's first request: "
        f"{fmt(gn)} ms vs {fmt(sd)} ms = {fmt(rr, 3)}x (target <= 0.333x)")
    ne = median(g("node-e0", "cold") or [])
    rr = ratio(gn, ne)
    add(None if rr is None else gn < ne,
        f"Node cold start p50 below `node -e 0`: {fmt(gn)} ms vs {fmt(ne)} ms = {fmt(rr, 2)}x (target < 1x)")
    gp, pe = cold("gust-python"), median(g("python-c0", "cold") or [])
    rr = ratio(gp, pe)
    add(None if rr is None else gp < pe,
        f"Python cold start p50 below `python3 -c 0`: {fmt(gp)} ms vs {fmt(pe)} ms = {fmt(rr, 2)}x (target < 1x)")
    gr = cold("gust-provided")
    es = median(g("echo-start", "cold") or [])
    own = f" (the binary's own start without a platform: {fmt(es)} ms)" if es is not None else ""
    add(None if gr is None else gr < 5.0,
        f"provided (Rust) cold start p50 < 5 ms: {fmt(gr)} ms = {fmt(ratio(gr, 5.0), 2)}x of 5 ms{own}")
    tn, ts, ti = g("gust-node", "rps"), g("sls-default", "rps"), g("sls-inprocess", "rps")
    rr = ratio(tn, ts)
    add(None if rr is None else rr >= 5,
        f"Node warm throughput >= 5x serverless-offline default: {fmt(tn, 0)} vs {fmt(ts, 0)} req/s = {fmt(rr, 2)}x")
    rr = ratio(tn, ti)
    add(None if rr is None else rr >= 3,
        f"Node warm throughput >= 3x serverless-offline --useInProcess: {fmt(tn, 0)} vs {fmt(ti, 0)} req/s = {fmt(rr, 2)}x")
    a1, b1 = g("gust-node", "p50_c1"), g("node-http", "p50_c1")
    a16, b16 = g("gust-node", "p50"), g("node-http", "p50")
    added = None if a1 is None or b1 is None else a1 - b1
    added16 = None if a16 is None or b16 is None else a16 - b16
    add(None if added is None else added <= 0.5,
        f"p50 latency added over the plain Node server <= 0.5 ms (1 connection, no queueing): "
        f"{fmt(a1, 3)} - {fmt(b1, 3)} = {fmt(added, 3)} ms = {fmt(ratio(added, 0.5), 2)}x of 0.5 ms "
        f"(at {R.get('_conns', 16)} connections: {fmt(a16, 3)} - {fmt(b16, 3)} = {fmt(added16, 3)} ms)")
    mg, ms = g("gust-node", "rss_p50"), g("sls-default", "rss_p50")
    rr = ratio(mg, ms)
    add(None if rr is None else rr <= 0.2,
        f"Gust idle RSS <= 1/5 of serverless-offline's: {fmt(mg)} MB vs {fmt(ms)} MB = {fmt(rr, 3)}x (target <= 0.2x)")
    sg, ss = g("gust-node", "startup_p50"), g("sls-default", "startup_p50")
    rr = ratio(sg, ss)
    add(None if rr is None else rr <= 0.1,
        f"Gust start-up <= 1/10 of serverless-offline's: {fmt(sg)} ms vs {fmt(ss)} ms = {fmt(rr, 4)}x (target <= 0.1x)")
    r1, r1000 = g("gust-routes-1", "rps"), g("gust-routes-1000", "rps")
    cost = None if r1 is None or r1000 is None else (r1 - r1000) / r1
    add(None if cost is None else cost <= 0.10,
        f"1,000 routes cost <= 10% throughput vs 1 route: {fmt(r1000, 0)} vs {fmt(r1, 0)} req/s = "
        f"{fmt(None if cost is None else cost * 100, 1)}% ({fmt(ratio(r1000, r1), 3)}x)")
    f1, f1000 = g("gust-fns-1", "rss_p50"), g("gust-fns-1000", "rss_p50")
    extra = None if f1 is None or f1000 is None else f1000 - f1
    add(None if extra is None else extra <= 20,
        f"1,000 idle functions add <= 20 MB: {fmt(f1000)} - {fmt(f1)} = {fmt(extra)} MB = {fmt(ratio(extra, 20), 2)}x of 20 MB")
    for kind in ("node", "python", "provided"):
        on, off = cold(f"gust-{kind}"), cold(f"gust-{kind}-unconfined")
        extra = None if on is None or off is None else on - off
        add(None if extra is None else extra <= 1.0,
            f"sandbox: {kind} cold start p50 adds <= 1 ms: {fmt(on, 2)} - {fmt(off, 2)} = {fmt(extra, 2)} ms")
    tn, tu = g("gust-node", "rps"), g("gust-node-unconfined", "rps")
    rr = ratio(tn, tu)
    add(None if rr is None else rr >= 0.95,
        f"sandbox: Node warm throughput within 5% of unconfined: {fmt(tn, 0)} vs {fmt(tu, 0)} req/s = {fmt(rr, 3)}x")
    if "gust-node-before" in R:
        # `--before REV`: an earlier Gust built from REV, run unconfined beside this one's
        # `--sandbox off` row (the earlier binary may predate the sandbox and its flags).
        tb = g("gust-node-before", "rps")
        rb = ratio(tu, tb)
        add(None if rb is None else rb >= 0.95,
            f"Node warm throughput, this build (`--sandbox off`) vs `{R.get('_before_rev', 'before')}`: "
            f"{fmt(tu, 0)} vs {fmt(tb, 0)} req/s = {fmt(rb, 3)}x (target >= 0.95x)")
    return out


def table(R, mode):
    rows = [
        "| system | start-up p50 (ms) | idle RSS p50 (MB) | of which platform process (MB) | 1st request after start p50 (ms) | cold start p50 / p90 (ms) "
        f"| warm req/s @{mode.conns} | p50 / p99 @{mode.conns} (ms) | p50 @1 (ms) | req/s vs sls default |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    sd = R.get("sls-default", {}).get("rps")
    for key in ORDER:
        r = R.get(key)
        if not r:
            continue
        cold = r.get("cold") or []
        cold_s = f"{fmt(median(cold))} / {fmt(percentile(cold, 90))}" if len(cold) > 1 else fmt(median(cold))
        lat = f"{fmt(r.get('p50'))} / {fmt(r.get('p99'))}" if r.get("p50") is not None else "—"
        rps = fmt(r.get("rps"), 0) + (" ⚠" if r.get("bad") or r.get("problems") else "")
        same_load = not key.startswith("gust-routes")  # the routing rows run another request
        rel = f"{ratio(r.get('rps'), sd):.2f}x" if r.get("rps") and sd and same_load else "—"
        rows.append(
            f"| {r['label']} | {fmt(r.get('startup_p50'))} | {fmt(r.get('rss_p50'))} | {fmt(r.get('rss_main_p50'))} "
            f"| {fmt(median(r.get('first') or []))} "
            f"| {cold_s} | {rps} | {lat} | {fmt(r.get('p50_c1'), 2) if r.get('p50_c1') is not None else '—'} | {rel} |"
        )
    return "\n".join(rows)


ORDER = [
    "gust-node", "gust-python", "gust-provided", "gust-node-unconfined", "gust-python-unconfined",
    "gust-provided-unconfined", "gust-node-before", "gust-node-nofreeze", "gust-node-freeze0", "sls-default", "sls-inprocess",
    "node-http", "floor",
    "node-e0", "python-c0", "echo-start", "gust-routes-1", "gust-routes-1000", "gust-fns-1", "gust-fns-1000",
]


def finish(R):
    for r in R.values():
        if isinstance(r, dict):
            if r.get("startup"):
                r["startup_p50"] = median(r["startup"])
            if r.get("rss"):
                r["rss_p50"] = median(r["rss"])
                r["rss_main_p50"] = median(r["rss_main"])


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs for development")
    ap.add_argument("--gust", required=True, help="release gust binary")
    ap.add_argument("--echo", required=True, help="lambda-echo fixture binary (the provided function)")
    ap.add_argument("--floor", required=True, help="static floor server binary")
    ap.add_argument("--only", default="", help="comma-separated system keys to run (development)")
    ap.add_argument("--gust-before", default="", help="an earlier release gust binary: adds the gust-node-before row")
    ap.add_argument("--before-rev", default="before", help="what --gust-before was built from (for the report)")
    ap.add_argument("--command", default="bench/run.sh", help="command line to print in the report")
    args = ap.parse_args()
    mode = Mode(args.quick)
    only = set(filter(None, args.only.split(",")))
    want = lambda k: not only or k in only  # noqa: E731

    node = os.path.realpath(shutil.which("node") or "node")
    python = subprocess.run(["python3", "-c", "import sys;print(sys.executable)"], capture_output=True,
                            text=True, check=True).stdout.strip()
    py_version = subprocess.run([python, "-c", "import sys;print('%d.%d' % sys.version_info[:2])"],
                                capture_output=True, text=True, check=True).stdout.strip()
    if LOGS.exists():
        shutil.rmtree(LOGS)
    apps = make_apps(args.echo, py_version)
    started = time.perf_counter()
    R = {"_conns": mode.conns, "_before_rev": args.before_rev}
    info = machine()
    load_before = loadavg()
    print(f"bench: {mode.name} mode on {info['nproc']} x {info['cpu']}, {info['memory']}; node {node}, python {python}",
          flush=True)

    # Process start of the bare interpreters: the floor under any cold start that spawns one.
    for key, label, argv in (("node-e0", "`node -e 0` (process start)", [node, "-e", "0"]),
                             ("python-c0", "`python3 -c 0` (process start)", [python, "-c", "0"])):
        if want(key):
            xs = proc_start(argv, mode.proc_starts)
            R[key] = {"label": label, "cold": xs}
            print(f"  {label}: p50 {fmt(median(xs))} ms", flush=True)
    # The provided function's own start, no platform: lambda-echo with a Runtime API address
    # nothing listens on starts, initialises lambda_runtime, fails its first connection and
    # exits. What a provided cold start costs above this is Gust's share (and the first
    # invocation's round trips).
    if want("echo-start"):
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{closed_port()}",
               "AWS_LAMBDA_FUNCTION_NAME": "echo", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
               "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_STREAM_NAME": "bench",
               "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/echo"}
        xs = proc_start([args.echo], mode.proc_starts, env=env, check=False)
        label = "`lambda-echo` process start, no platform (to its refused first connection)"
        R["echo-start"] = {"label": label, "cold": xs}
        print(f"  {label}: p50 {fmt(median(xs))} ms", flush=True)

    systems = [
        GustSystem("gust-node", "Gust — Node.js handler", args.gust, apps["gust-node"]),
        GustSystem("gust-python", "Gust — Python handler", args.gust, apps["gust-python"]),
        GustSystem("gust-provided", "Gust — provided (Rust lambda-echo)", args.gust, apps["gust-provided"]),
        # The same three unconfined (`--sandbox off`), for the sandbox's cost in the same run.
        GustSystem("gust-node-unconfined", "Gust — Node.js handler, `--sandbox off`", args.gust, apps["gust-node"],
                   extra=["--sandbox", "off"]),
        GustSystem("gust-python-unconfined", "Gust — Python handler, `--sandbox off`", args.gust, apps["gust-python"],
                   extra=["--sandbox", "off"]),
        GustSystem("gust-provided-unconfined", "Gust — provided (Rust lambda-echo), `--sandbox off`", args.gust,
                   apps["gust-provided"], extra=["--sandbox", "off"]),
        *([GustSystem("gust-node-before", f"Gust — Node.js handler, built from `{args.before_rev}`",
                      args.gust_before, apps["gust-node"])] if args.gust_before else []),
        # Freezing idle instances (on by default, 10 ms after an invocation): off, and at once.
        GustSystem("gust-node-nofreeze", "Gust — Node.js handler, `--freeze-idle-after off`", args.gust,
                   apps["gust-node"], extra=["--freeze-idle-after", "off"]),
        GustSystem("gust-node-freeze0", "Gust — Node.js handler, `--freeze-idle-after 0`", args.gust,
                   apps["gust-node"], extra=["--freeze-idle-after", "0"]),
        SlsSystem("sls-default", "serverless-offline 13 — default (worker threads)", apps["sls"], node, []),
        SlsSystem("sls-inprocess", "serverless-offline 13 — `--useInProcess`", apps["sls"], node, ["--useInProcess"]),
        PlainSystem("node-http", "plain Node.js `http` server, same handler",
                    lambda port: [node, BENCH / "app" / "server.js", port], cwd=BENCH / "app"),
        PlainSystem("floor", "static floor (Rust hyper, `return 200`)", lambda port: [args.floor, port]),
    ]
    failures = []

    def guarded(keys, label, fn):
        """Runs one section; a failure is recorded against its rows and the run goes on."""
        try:
            fn()
        except BenchError as e:
            msg = str(e).strip()
            print(f"  ! {label} FAILED: {msg}", flush=True)
            failures.append((label, msg.splitlines()[0][:300]))
            for k in keys:
                R.setdefault(k, {"label": label}).setdefault("problems", []).append("failed: " + msg.splitlines()[0][:200])
            PROCS.stop_all()  # only this section's processes are running

    # Start-up, memory and cold starts one system at a time; the systems stay up (idle) for the
    # load runs, which then go round-robin: run 1 of every system, then run 2 of every system,
    # ... so that a machine whose speed drifts over the minutes of a run (a shared host) slows
    # Gust and its baselines alike, and the ratios hold.
    loaded = []

    def start_one(sysm):
        p, port = measure_starts(sysm, mode, R, cold=sysm.key != "floor")
        check_answers(sysm, port)
        loaded.append(Server(sysm, p, port, "POST", "/users", VALID_USER, R[sysm.key]))

    for sysm in systems:
        if want(sysm.key):
            print(f"- {sysm.label}", flush=True)
            guarded([sysm.key], sysm.label, lambda: start_one(sysm))
    if loaded:
        print("- load runs, round-robin over: " + ", ".join(srv.sysm.key for srv in loaded), flush=True)
        guarded([srv.sysm.key for srv in loaded], "load runs", lambda: measure_loads(loaded, mode))
    for srv in loaded:
        PROCS.stop(srv.p)

    # Routing: both apps up at once, measured alternately so drift hits both alike.
    def routes():
        pair = []
        for n in (1, 1000):
            sysm = GustSystem(f"gust-routes-{n}", f"Gust — {n:,} route{'s' if n > 1 else ''} (Rust echo, `{ROUTE_TARGET}`)",
                              args.gust, apps[f"gust-routes-{n}"], load_function="echo")
            R[sysm.key] = {"label": sysm.label, "load": []}
            p, port, ready = start_system(sysm)
            R[sysm.key]["startup"] = [ready]
            st, body, _ = request(port, "GET", ROUTE_URL)
            if st != 200 or '"id":"42"' not in body.replace(" ", ""):
                raise BenchError(f"{sysm.label}: GET {ROUTE_URL} answered {st} {body[:300]}")
            pair.append(Server(sysm, p, port, "GET", ROUTE_URL, None, R[sysm.key]))
        for srv in pair:
            srv.warm(mode.conns, mode.warmup)
        for _ in range(mode.runs):
            for srv in pair:
                R[srv.sysm.key]["load"].append(srv.run(mode, mode.conns, mode.duration, None))
        for srv in pair:
            summarize_load(R[srv.sysm.key])
            print(f"  {srv.sysm.label}: {fmt(R[srv.sysm.key]['rps'], 0)} req/s" + bad_note(R[srv.sysm.key]), flush=True)
            PROCS.stop(srv.p)

    if want("gust-routes-1") or want("gust-routes-1000"):
        print("- Gust routes: 1 vs 1,000", flush=True)
        guarded(["gust-routes-1", "gust-routes-1000"], "Gust routes: 1 vs 1,000", routes)

    # Lambda authorizers: the latency they add at 1 connection, the three routes of one Gust
    # measured alternately (so drift hits them alike).
    def authorizers():
        sysm = GustSystem("gust-auth", "Gust — Lambda authorizers", args.gust, apps["gust-auth"], load_function="hello")
        p, port, _ = start_system(sysm)
        lua = BENCH / "auth_header.lua"
        for key, (route, _) in AUTH_ROUTES.items():
            path = route.split(" ", 1)[1]
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                c.request("GET", path, headers={"Authorization": "Bearer bench-token"})
                r = c.getresponse()
                body = r.read().decode("utf-8", "replace")
            finally:
                c.close()
            if r.status != 200 or "hello" not in body:
                raise BenchError(f"{AUTH_LABELS[key]}: GET {path} answered {r.status} {body[:200]}")
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                c.request("GET", path)
                r = c.getresponse()
                r.read()
            finally:
                c.close()
            if (r.status == 401) != (key != "gust-auth-none"):
                raise BenchError(f"{AUTH_LABELS[key]}: GET {path} without a token answered {r.status}")
            R[key] = {"label": AUTH_LABELS[key], "load_c1": []}
            wrk(f"http://127.0.0.1:{port}{path}", mode.conns, mode.warmup, lua)  # warm-up, unrecorded
        for _ in range(mode.runs):
            for key, (route, _) in AUTH_ROUTES.items():
                url = f"http://127.0.0.1:{port}{route.split(' ', 1)[1]}"
                R[key]["load_c1"].append(wrk(url, 1, mode.duration_c1, lua))
        for key in AUTH_ROUTES:
            r = R[key]
            r["p50_c1"] = median(x["p50"] for x in r["load_c1"])
            r["rps_c1"] = median(x["rps"] for x in r["load_c1"])
            r["bad"] = sum(x["non2xx"] + x["errors"] for x in r["load_c1"])
            print(f"  {r['label']}: p50 {fmt(r['p50_c1'], 2)} ms @1, {fmt(r['rps_c1'], 0)} req/s" + bad_note(r), flush=True)
        PROCS.stop(p)

    if any(want(k) for k in AUTH_ROUTES):
        print("- Gust Lambda authorizers: none, cached, uncached", flush=True)
        guarded(list(AUTH_ROUTES), "Gust Lambda authorizers", authorizers)

    # Redeploys: how long a switch takes, and what a steady client sees during redeploys.
    def redeploys():
        app = redeploy_app()
        sysm = GustSystem("gust-redeploy", "Gust — redeploy (10 Node functions)", args.gust, app, load_function="f0")
        r = R.setdefault("gust-redeploy", {"label": sysm.label})
        r.update(switch=[], first=[])
        p, port, _ = start_system(sysm)
        st, body, _ = request(port, "GET", "/f0")
        if st != 200 or body != "v0":
            raise BenchError(f"GET /f0 answered {st} {body[:200]}")
        for k in range(1, REDEPLOY_ROUNDS + 1):
            redeploy_write(app, f"v{k}", range(REDEPLOY_FUNCTIONS))
            t0 = time.perf_counter()
            ms, d = post_redeploy(sysm.admin)
            if len(d.get("replaced", [])) != REDEPLOY_FUNCTIONS:
                raise BenchError(f"round {k}: expected {REDEPLOY_FUNCTIONS} functions redeployed, got {d}")
            st, body, _ = request(port, "GET", "/f0")
            first = (time.perf_counter() - t0) * 1000
            if st != 200 or body != f"v{k}":
                raise BenchError(f"round {k}: GET /f0 after the redeploy answered {st} {body[:200]}")
            r["switch"].append(ms)
            r["first"].append(first)
        print(f"  redeploy of {REDEPLOY_FUNCTIONS} functions: p50 {fmt(median(r['switch']))} ms to switch, "
              f"{fmt(median(r['first']))} ms to the first request served", flush=True)
        url = f"http://127.0.0.1:{port}/f0"
        wrk(url, 4, mode.warmup)  # warm-up, unrecorded
        r["steady"] = wrk(url, 4, mode.duration)
        stop = threading.Event()
        count = [0]

        def redeployer():
            v = 100
            while not stop.is_set():
                v += 1
                redeploy_write(app, f"v{v}", [0])
                post_redeploy(sysm.admin)
                count[0] += 1
                stop.wait(REDEPLOY_EVERY)

        t = threading.Thread(target=redeployer, daemon=True)
        t.start()
        try:
            r["during"] = wrk(url, 4, mode.duration)
        finally:
            stop.set()
            t.join(timeout=30)
        r["during"]["redeploys"] = count[0]
        for key in ("steady", "during"):
            x = r[key]
            if x["non2xx"] or x["errors"]:
                r.setdefault("problems", []).append(f"{key}: {x['non2xx']} non-2xx, {x['errors']} socket errors")
        print(f"  steady client p50/p99 {fmt(r['steady']['p50'], 2)}/{fmt(r['steady']['p99'], 2)} ms; during "
              f"{count[0]} redeploys {fmt(r['during']['p50'], 2)}/{fmt(r['during']['p99'], 2)} ms, "
              f"{r['during']['non2xx']} non-2xx", flush=True)
        PROCS.stop(p)

    if want("gust-redeploy"):
        print("- Gust redeploys", flush=True)
        guarded(["gust-redeploy"], "Gust redeploys", redeploys)

    # Idle memory of deployed functions: 1 vs 1,000, nothing invoked.
    def idle_fns(sysm):
        p, _ = measure_starts(sysm, mode, R, cold=False)
        PROCS.stop(p)

    for n in (1, 1000):
        key = f"gust-fns-{n}"
        if want(key):
            print(f"- Gust, {n:,} idle Node function(s)", flush=True)
            sysm = GustSystem(key, f"Gust — {n:,} idle Node function{'s' if n > 1 else ''} ({n:,} route{'s' if n > 1 else ''})",
                              args.gust, apps[key])
            guarded([key], sysm.label, lambda: idle_fns(sysm))

    # Events: publish -> subscription -> Rust echo -> ack, batch 1 and batch 10.
    for batch in EVENT_BATCHES:
        key = f"gust-events-{batch}"
        if want(key):
            sysm = GustSystem(key, f"Gust — events, batch {batch} (Rust lambda-echo)", args.gust, apps[key],
                              load_function=EVENT_FUNCTION)
            print(f"- {sysm.label}", flush=True)
            guarded([key], sysm.label, lambda: measure_events(sysm, mode, R, batch))

    finish(R)
    elapsed = time.perf_counter() - started
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    tab = table(R, mode)
    tg = targets(R)
    notes = [
        f"Mode: {mode.name}; medians over {mode.starts} starts (start-up, idle RSS, first request), "
        f"{mode.starts * mode.colds} Gust cold starts (scale to zero via idle_timeout = 0.1 s, wait until the admin API "
        f"reports 0 instances, then {COLD_GAP} s more), {mode.proc_starts} interpreter starts, {mode.runs} wrk runs of {mode.duration} s at "
        f"{mode.conns} connections and {mode.runs} of {mode.duration_c1} s at 1 connection (1 thread, after {mode.warmup} s warm-up).",
        "Load: `POST /users` with a valid body (201; the Rust echo answers 200); routing rows: `GET /svc137/items/42`. "
        "Load runs go round-robin (run 1 of every system, then run 2, ...), all systems up and idle between their runs, "
        "so drift in the machine's speed during the run hits every system alike. "
        "Cold start: `GET /hello` on a new connection; serverless-offline's cold start is its first request after start. "
        "Warm-up: unrecorded requests from 16 threads that all complete; after each wrk run the system must be idle "
        "and answering, else it is restarted (listed under Problems). ⚠: non-2xx answers, socket errors or problems.",
    ] if any(k in R for k in ORDER) else []
    notes += [
        f"Harness time: {elapsed:.0f} s. Load average (1/5/15 min) before: {load_before}; after: {loadavg()} "
        "(anything else running on the machine shares its cores with the systems measured).",
    ]
    report = [f"Date: {date}  ",
              f"Machine: {info['nproc']} CPUs, {info['cpu']}, {info['memory']} RAM, Linux {info['kernel']}  ",
              f"Command: `{args.command}`", ""]
    if any(k in R for k in ORDER):
        report += [tab, "", "Targets:", ""]
        report += [f"- **{v}** {t}" for v, t in tg]
    if any(R.get(k, {}).get("runs") for k in EVENT_ORDER):
        report += ["", "Events:", "", events_table(R, mode)]
        notes.append(
            f"Events: topic `{EVENT_TOPIC}`, one subscription (sqs shape, report_batch_item_failures = false) feeding the "
            f"Rust lambda-echo as `provided.al2023` (max_instances = 4). After an unrecorded warm-up of 200 events, "
            f"{mode.event_runs} run(s) of {mode.events:,} events published through `POST /events/{EVENT_TOPIC}` on the "
            f"gateway in CloudEvents batch mode ({EVENTS_PER_REQUEST} per request, {EVENT_PUBLISHERS} threads on keep-alive "
            f"connections); end-to-end events/s = events / (first publish -> the admin API reports backlog 0, polled every "
            f"{int(EVENT_POLL * 1000)} ms), median of the runs; `gust_event_deliveries_total` (success) on /metrics must "
            f"grow by exactly the events published (else ⚠). Publish latency: {mode.event_singles} sequential plain-JSON "
            f"1-event publishes on one keep-alive connection after the runs drained (202 is sent after the commit).")
    if R.get("gust-redeploy", {}).get("first"):
        report += ["", "Redeploys:", "", redeploy_table(R)]
        notes.append(
            f"Redeploys: one Gust with {REDEPLOY_FUNCTIONS} Node functions, each in its own directory behind `GET /fN`. "
            f"{REDEPLOY_ROUNDS} rounds of: write a new handler into every function, `POST /gust/v1/deployments` "
            f"(`gust redeploy`), then `GET /f0` must answer the new version; `switch` is the POST's duration (every "
            f"changed function's first instance is started before it answers), `first request` adds that GET. Then "
            f"wrk at 4 connections on `GET /f0` for {mode.duration} s without redeploys, and again while another "
            f"thread rewrites `f0`'s handler and redeploys every {REDEPLOY_EVERY} s (each redeploy replaces the "
            f"function under load: its old instances drain while new requests go to the new one).")
    if any(R.get(k, {}).get("load_c1") for k in AUTH_ROUTES):
        report += ["", "Lambda authorizers:", "", auth_table(R)]
        notes.append(
            f"Lambda authorizers: one Gust, `GET /plain`, `/cached` and `/uncached` on the same Node handler "
            f"(`handler.hello`); the last two behind a Node TOKEN authorizer (`bench/app/authorizer.js`, an Allow "
            f"policy) with `ttl = 300` and `ttl = 0`. `Authorization: Bearer bench-token` on every request, so the "
            f"cached route answers from the authorizer cache and the uncached one invokes the authorizer every time. "
            f"{mode.runs} wrk run(s) of {mode.duration_c1} s at 1 connection per route, alternating routes, after "
            f"{mode.warmup} s warm-up each at {mode.conns} connections; added = p50 minus the no-authorizer p50.")
    problems = [(r["label"], why) for k, r in R.items() if isinstance(r, dict) for why in r.get("problems", [])]
    if problems:
        report += ["", "Problems seen (⚠; after a problem in a load run the system was restarted and warmed up before its next run):", ""]
        report += [f"- {label}: {why}" for label, why in problems]
    report += [""] + [f"_{n}_" for n in notes]
    text = "\n".join(report)
    print("\n" + text, flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{mode.name}.md").write_text(text + "\n")
    (RESULTS / f"{mode.name}.json").write_text(json.dumps({"date": date, "machine": info, "mode": mode.name,
                                                           "results": R}, indent=1, default=str))
    print(f"\n(written to {RESULTS / (mode.name + '.md')} and .json)")
    if failures:
        raise BenchError(f"{len(failures)} section(s) failed: " + "; ".join(label for label, _ in failures))


def on_signal(signum, _frame):
    # One interruption is enough: a second signal must not cut the cleanup short.
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


if __name__ == "__main__":
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, on_signal)
    code = 0
    try:
        main()
    except KeyboardInterrupt as e:
        print(f"\nbench: interrupted ({e}); stopping everything it started", file=sys.stderr)
        code = 130
    except BenchError as e:
        print(f"\nbench: error: {e}", file=sys.stderr)
        code = 1
    finally:
        # Ignore further Ctrl-C while cleaning up, so that nothing is left running.
        for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        PROCS.stop_all()
    sys.exit(code)
