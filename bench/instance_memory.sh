#!/usr/bin/env bash
# Memory of Gust's function processes, the two figures BENCHMARKS.md quotes for them:
#
#   bench/instance_memory.sh growth [node|python]   one warm instance under load (wrk -c4, four
#       5 s runs): its VmRSS after each run; an instance whose memory grows per invocation shows
#       it here (the glibc setenv growth did: about 150 bytes a request).
#   bench/instance_memory.sh cold BIN [BIN ...]     the first GET /hello 1.5 s after `gust up`
#       (served by the prewarmed spare), 10 starts of each binary alternated: the spare's RSS
#       before and after, the minor faults it took, the time; then the median time per binary.
#
# GUST_BIN (default target/release/gust, or $CARGO_TARGET_DIR) for `growth`. Needs wrk (bench/run.sh
# installs it).
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
GUST_BIN=${GUST_BIN:-${CARGO_TARGET_DIR:-$BENCH/../target}/release/gust}
mode=${1:-}
shift || true
dir=$(mktemp -d)
gust_pid=
cleanup() { [[ -n "$gust_pid" ]] && kill "$gust_pid" 2>/dev/null && wait "$gust_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT

app() { # runtime handler-file handler route
  rm -rf "$dir/app" && mkdir -p "$dir/app" && cp "$BENCH/app/$2" "$dir/app/"
  cat > "$dir/app/gust.toml" <<TOML
[app]
name = "instance-memory"

[functions.f]
runtime = "$1"
handler = "$3"
memory = 256
scaling = { max_instances = 1, idle_timeout = 300 }

[[routes]]
route = "$4"
function = "f"
TOML
}

up() { # bin port prewarm
  rm -rf "$dir/state"
  "$1" up "$dir/app" --port "$2" --admin-port 0 --prewarm "$3" --state "$dir/state" >"$dir/gust.log" 2>&1 &
  gust_pid=$!
}

down() { kill "$gust_pid" 2>/dev/null; wait "$gust_pid" 2>/dev/null || true; gust_pid=; }

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

case "$mode" in
  growth)
    command -v wrk >/dev/null || { echo "instance_memory.sh: wrk is required (bench/run.sh installs it)" >&2; exit 1; }
    case "${1:-node}" in
      node) app nodejs20.x handler.js handler.createUser "POST /users"; comm=node ;;
      python) app python3.11 handler.py handler.create_user "POST /users"; comm=python3 ;;
      *) echo "usage: $0 growth [node|python]" >&2; exit 2 ;;
    esac
    port=18611
    up "$GUST_BIN" "$port" 0
    for _ in $(seq 100); do curl -fs -o /dev/null -XPOST "127.0.0.1:$port/users" -d '{"email":"a@b"}' && break; sleep 0.1; done
    instance=$(pgrep -P "$gust_pid" "$comm")
    for _ in 1 2 3 4; do
      n=$(wrk -t1 -c4 -d5s -s "$BENCH/post_users.lua" "http://127.0.0.1:$port/users" | awk '/requests in/ {print $1}')
      echo "$n requests, instance VmRSS $(rss "$instance") kB"
    done
    down
    ;;
  cold)
    [[ $# -ge 1 ]] || { echo "usage: $0 cold BIN [BIN ...]" >&2; exit 2; }
    app nodejs20.x handler.js handler.hello "GET /hello"
    port=18612
    for _ in $(seq 10); do
      for bin in "$@"; do
        up "$bin" "$port" 1
        sleep 1.5
        spare=$(pgrep -P "$gust_pid" node)
        f0=$(awk '{print $10}' "/proc/$spare/stat"); r0=$(rss "$spare")
        t=$(curl -s -o /dev/null -w '%{time_total}' "127.0.0.1:$port/hello")
        f1=$(awk '{print $10}' "/proc/$spare/stat"); r1=$(rss "$spare")
        echo "$bin $t s, spare VmRSS $r0 -> $r1 kB, minor faults +$((f1 - f0))" | tee -a "$dir/colds"
        down
      done
    done
    python3 - "$dir/colds" <<'PY'
import statistics, sys
times = {}
for line in open(sys.argv[1]):
    bin_, t = line.split()[:2]
    times.setdefault(bin_, []).append(float(t) * 1000)
for bin_, xs in times.items():
    print(f"{bin_}: median {statistics.median(xs):.1f} ms over {len(xs)} starts")
PY
    ;;
  *) echo "usage: $0 growth [node|python] | cold BIN [BIN ...]" >&2; exit 2 ;;
esac
