#!/usr/bin/env bash
# CPU time per request of Gust's own process and of its function instances, under the same
# load as the harness's warm rows (POST /users on the bench Node handler, wrk -t1 -c16), read
# from /proc/<pid>/stat before and after one fixed wrk run. Absolute times drift with the
# machine; compare two builds by alternating them (GUST_BIN=... bench/cpu_per_request.sh).
#
#   bench/cpu_per_request.sh                 # target/release/gust (or $CARGO_TARGET_DIR)
#   GUST_BIN=/path/to/gust bench/cpu_per_request.sh
#   INSTANCES=2 SECONDS_=8 bench/cpu_per_request.sh
set -euo pipefail
BENCH=$(cd "$(dirname "$0")" && pwd)
GUST_BIN=${GUST_BIN:-${CARGO_TARGET_DIR:-$BENCH/../target}/release/gust}
INSTANCES=${INSTANCES:-4}
SECONDS_=${SECONDS_:-8}
PORT=${PORT:-18480}
command -v wrk >/dev/null || { echo "cpu_per_request.sh: wrk is required (bench/run.sh installs it)" >&2; exit 1; }
[[ -x "$GUST_BIN" ]] || { echo "cpu_per_request.sh: $GUST_BIN is missing (cargo build --release -p gust)" >&2; exit 1; }

dir=$(mktemp -d)
gust_pid=
cleanup() { [[ -n "$gust_pid" ]] && kill "$gust_pid" 2>/dev/null && wait "$gust_pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
cp "$BENCH/app/handler.js" "$dir/"
cat > "$dir/gust.toml" <<TOML
[app]
name = "cpu-per-request"

[functions.createUser]
runtime = "nodejs20.x"
handler = "handler.createUser"
memory = 256
timeout = 5
scaling = { min_instances = 0, max_instances = $INSTANCES, idle_timeout = 300, max_queue = 1000 }

[[routes]]
route = "POST /users"
function = "createUser"
TOML

"$GUST_BIN" up "$dir" --port "$PORT" --admin-port 0 --state "$dir/.gust" >"$dir/gust.log" 2>&1 &
gust_pid=$!
for _ in $(seq 100); do curl -fs -o /dev/null -XPOST "127.0.0.1:$PORT/users" -d '{"email":"a@b"}' && break; sleep 0.1; done
url="http://127.0.0.1:$PORT/users"
wrk -t1 -c16 -d4s -s "$BENCH/post_users.lua" "$url" >/dev/null   # warm-up (JIT, all instances started)

# user and system ticks (fields 14, 15 of /proc/<pid>/stat) and context switches, summed.
sample() {
  local u=0 s=0 c=0 p
  for p in "$@"; do
    read -r pu ps < <(awk '{print $14, $15}' "/proc/$p/stat")
    u=$((u + pu)); s=$((s + ps))
    c=$((c + $(awk '/ctxt_switches/ {n += $2} END {print n}' /proc/"$p"/task/*/status)))
  done
  echo "$u $s $c"
}
instances=$(pgrep -P "$gust_pid" | tr '\n' ' ')
hz=$(getconf CLK_TCK)
read -r gu0 gs0 gc0 < <(sample "$gust_pid"); read -r nu0 ns0 nc0 < <(sample $instances)
out=$(wrk -t1 -c16 -d"${SECONDS_}s" -s "$BENCH/post_users.lua" "$url")
read -r gu1 gs1 gc1 < <(sample "$gust_pid"); read -r nu1 ns1 nc1 < <(sample $instances)
requests=$(awk '/requests in/ {print $1}' <<<"$out")
rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
us() { echo $(( ($1) * 1000000 / hz / requests )); }
per() { awk -v a="$1" -v n="$requests" 'BEGIN {printf "%.2f", a / n}'; }
echo "req/s $rps; CPU per request: gust $(us "$gu1 + $gs1 - $gu0 - $gs0") us (user $(us "$gu1 - $gu0"), sys $(us "$gs1 - $gs0")), function instances $(us "$nu1 + $ns1 - $nu0 - $ns0") us (user $(us "$nu1 - $nu0"), sys $(us "$ns1 - $ns0")); context switches per request: gust $(per $((gc1 - gc0))), instances $(per $((nc1 - nc0))) ($requests requests, max_instances $INSTANCES)"
