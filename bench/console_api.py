#!/usr/bin/env python3
"""The console's page loads over HTTP with 1,000,000 invocation records stored (issue #21).

Starts `gust up examples/shop` on a copy of a telemetry database holding the records (the one
`cargo bench -p gust-store --bench console` builds and caches under the target directory),
logs in as the console does (the operator token, then the session cookie), and times each API
call the overview and a function page make: server time as seen by a keep-alive client on
loopback, p50/p99 over N calls, and each page's calls made one after the other (the browser
makes them at once, so a page load is at most that sum).

    python3 bench/console_api.py --gust target/release/gust \\
        --db target/gust-bench/console-telemetry-v2.db [--calls 200]

Python 3 standard library only.
"""

import argparse
import http.client
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def percentile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gust", required=True)
    ap.add_argument("--db", required=True, help="a telemetry database with the records")
    ap.add_argument("--calls", type=int, default=200)
    args = ap.parse_args()

    db = Path(args.db)
    records = sqlite3.connect(db).execute("SELECT COUNT(*), MAX(start_ms) FROM invocations").fetchone()
    fn = sqlite3.connect(db).execute("SELECT function FROM invocations LIMIT 1").fetchone()[0]
    work = Path(tempfile.mkdtemp(prefix="gust-console-bench-"))
    state = work / "state"
    state.mkdir()
    shutil.copy(db, state / "telemetry.db")
    app = work / "shop"
    shutil.copytree(ROOT / "examples" / "shop", app, ignore=shutil.ignore_patterns(".gust", "node_modules"))
    proc = subprocess.Popen(
        [args.gust, "up", str(app), "--state", str(state), "--port", "0", "--admin-port", "0",
         "--sandbox", "off", "--keep-invocations", "5000000"],
        stdout=subprocess.DEVNULL, stderr=open(work / "gust.log", "w"), start_new_session=True)
    try:
        info = state / "gust.json"
        deadline = time.time() + 60
        while not info.exists():
            if proc.poll() is not None or time.time() > deadline:
                sys.exit(f"gust did not start; see {work / 'gust.log'}")
            time.sleep(0.1)
        admin = urllib.parse.urlparse(json.loads(info.read_text())["admin"])
        token = (state / "operator.token").read_text().strip()
        conn = http.client.HTTPConnection(admin.hostname, admin.port)
        conn.request("POST", "/console/login", body=urllib.parse.urlencode({"token": token}),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        r = conn.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie").split(";")[0]
        headers = {"Cookie": cookie}

        # The newest record's hour and day, as the console asks at that time.
        now = records[1] + 1
        hour = now - 3_600_000
        day = now - 86_400_000
        step_h = (now // 60_000 + 1) * 60_000
        step_d = (now // 300_000 + 1) * 300_000
        pages = {
            "overview, 1 h": [
                "/gust/v1/status",
                "/gust/v1/functions",
                f"/gust/v1/stats?since_ms={step_h - 3_600_000}",
                f"/gust/v1/series?since_ms={step_h - 3_600_000}&until_ms={step_h}&step_s=60",
            ],
            "overview, 24 h": [
                "/gust/v1/status",
                "/gust/v1/functions",
                f"/gust/v1/stats?since_ms={step_d - 86_400_000}",
                f"/gust/v1/series?since_ms={step_d - 86_400_000}&until_ms={step_d}&step_s=300",
            ],
            "function page, 1 h": [
                "/gust/v1/functions/register-user",
                f"/gust/v1/series?function={fn}&since_ms={step_h - 3_600_000}&until_ms={step_h}&step_s=60",
                f"/gust/v1/invocations?function={fn}&since_ms={hour}&limit=50",
            ],
            "function page, errors only, 24 h": [
                "/gust/v1/functions/register-user",
                f"/gust/v1/series?function={fn}&since_ms={step_d - 86_400_000}&until_ms={step_d}&step_s=300",
                f"/gust/v1/invocations?function={fn}&outcome=error&since_ms={day}&limit=50",
            ],
        }

        def call(path):
            t = time.perf_counter()
            conn.request("GET", path, headers=headers)
            r = conn.getresponse()
            body = r.read()
            took = (time.perf_counter() - t) * 1000
            if r.status != 200:
                sys.exit(f"GET {path}: {r.status} {body[:300]!r}")
            return took

        print(f"{records[0]:,} invocation records; {args.calls} calls of each after 5 untimed\n")
        print("| page | call | p50 (ms) | p99 (ms) |")
        print("|---|---|---:|---:|")
        for page, paths in pages.items():
            totals = []
            per = {p: [] for p in paths}
            for p in paths:
                for _ in range(5):
                    call(p)
            for _ in range(args.calls):
                total = 0.0
                for p in paths:
                    took = call(p)
                    per[p].append(took)
                    total += took
                totals.append(total)
            for p in paths:
                short = p.split("?")[0] + ("?" + p.split("?")[1][:40] + "..." if "?" in p else "")
                print(f"| {page} | `GET {short}` | {statistics.median(per[p]):.2f} | {percentile(per[p], 0.99):.2f} |")
            print(f"| {page} | **all, one after another** | **{statistics.median(totals):.2f}** | **{percentile(totals, 0.99):.2f}** |")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
