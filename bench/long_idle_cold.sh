#!/usr/bin/env bash
# A cold start after a long idle, with the function's executable kept mapped by Gust (the
# default, crates/runtime/src/resident.rs) and without (--resident-code-mb 0), side by side.
# Two Gusts run the Rust lambda-echo fixture as `provided.al2023`, each from its own copy of the
# binary (so neither keeps the other's pages cached); every round both sit idle IDLE seconds,
# then each gets one cold request, the order alternating between rounds (the first request
# after a long idle also pays for whatever else the machine evicted). Prints the init time Gust
# recorded for each cold start (`gust invocations`), which leaves out the client's own time.
#
#   bench/long_idle_cold.sh                  # 4 rounds of 95 s (about 7 minutes)
#   ROUNDS=2 IDLE=70 bench/long_idle_cold.sh
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
TARGET=${CARGO_TARGET_DIR:-$BENCH/../target}
GUST_BIN=${GUST_BIN:-$TARGET/release/gust}
ECHO_BIN=${ECHO_BIN:-$TARGET/release/lambda-echo}
ROUNDS=${ROUNDS:-4}
IDLE=${IDLE:-95}
for f in "$GUST_BIN" "$ECHO_BIN"; do
  [[ -x "$f" ]] || { echo "long_idle_cold.sh: $f is missing (cargo build --release -p gust -p gust-fixtures)" >&2; exit 1; }
done

dir=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

start() { # name port admin-port extra-args...
  local name=$1 port=$2 admin=$3; shift 3
  mkdir -p "$dir/$name/echo"
  cp "$ECHO_BIN" "$dir/$name/echo/bootstrap"
  cat > "$dir/$name/gust.toml" <<TOML
[app]
name = "long-idle-$name"

[functions.hello]
runtime = "provided.al2023"
dir = "echo"
scaling = { idle_timeout = 0.1 }

[[routes]]
route = "GET /hello"
function = "hello"
TOML
  "$GUST_BIN" up "$dir/$name" --port "$port" --admin-port "$admin" --state "$dir/$name/.gust" "$@" >"$dir/$name.log" 2>&1 &
  pids+=($!)
}

get() { # port: one request on a new connection, bounded
  curl -s -o /dev/null --max-time 10 "http://127.0.0.1:$1/hello"
}

start resident 18580 18581
start off 18590 18591 --resident-code-mb 0
for port in 18580 18590; do
  for _ in $(seq 100); do get "$port" && break; sleep 0.1; done
done
echo "rounds: $ROUNDS x $IDLE s idle; init of each cold start (ms) as Gust recorded it"
for r in $(seq "$ROUNDS"); do
  sleep "$IDLE"
  if (( r % 2 )); then get 18580; sleep 1; get 18590; first=resident; else get 18590; sleep 1; get 18580; first=off; fi
  echo "round $r done (first: $first)"
done
sleep 1
for name in resident:18581 off:18591; do
  n=${name%%:*}; admin=${name#*:}
  inits=$(curl -s --max-time 10 -H "Authorization: Bearer $(cat "$dir/$n/.gust/operator.token")" \
    "http://127.0.0.1:$admin/gust/v1/invocations?function=hello&limit=$ROUNDS" \
    | python3 -c 'import json,sys; rows=json.load(sys.stdin)["invocations"]; print(" ".join("%.1f" % r["init_ms"] for r in reversed(rows) if r.get("init_ms")))')
  printf '%-9s %s\n' "$n:" "$inits"
done
