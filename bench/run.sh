#!/usr/bin/env bash
# Gust benchmark: builds Gust (release), installs the load generator and the peer, then runs
# bench/bench.py, which measures every system and prints the markdown tables.
#
#   bench/run.sh            full run (what BENCHMARKS.md reports), well under 10 minutes
#   bench/run.sh --quick    short runs for development
#   bench/run.sh --only gust-node,node-http   (development: a subset of the systems)
#   bench/run.sh --only gust-events-1,gust-events-10   (the events table only)
#   bench/run.sh --skip-build   use the binaries already built (e.g. while the tree does not build)
#   bench/run.sh --before REV   also run an earlier Gust, built from git revision REV (in
#                               bench/.work/before-REV), as the gust-node-before row: an A/B of
#                               a change in the same run
#
# Everything it downloads or builds lives in bench/.work/ (gitignored), except Gust's own
# build: CARGO_TARGET_DIR (default: target/ of the repo) as for any cargo build.
set -euo pipefail

BENCH="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$BENCH/.." && pwd)"
WORK="$BENCH/.work"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
COMMAND="bench/run.sh $*"
mkdir -p "$WORK"
build=1
before=""
args=()
next_is_before=0
for a in "$@"; do
  if [[ $next_is_before == 1 ]]; then before="$a"; next_is_before=0
  elif [[ "$a" == "--skip-build" ]]; then build=0
  elif [[ "$a" == "--before" ]]; then next_is_before=1
  else args+=("$a"); fi
done

# bench.py stops what it starts; this trap covers the steps before it (builds, installs).
child=""
cleanup() {
  local code=$?
  if [[ -n "$child" ]] && kill -0 "$child" 2>/dev/null; then
    kill -TERM "$child" 2>/dev/null || true
    wait "$child" 2>/dev/null || true
  fi
  exit "$code"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

step() { printf '\n== %s\n' "$*" >&2; }

for tool in cargo node npm python3; do
  command -v "$tool" >/dev/null || { echo "run.sh: '$tool' is required but not on PATH" >&2; exit 1; }
done

if [[ $build == 1 ]]; then
  step "building Gust and the lambda-echo fixture (release, $TARGET)"
  (cd "$ROOT" && CARGO_TARGET_DIR="$TARGET" cargo build --release -p gust -p gust-fixtures)
  step "building the static floor server (bench/floor, $WORK/floor-target)"
  (cd "$BENCH/floor" && CARGO_TARGET_DIR="$WORK/floor-target" cargo build --release)
fi
if [[ -n "$before" ]]; then
  rev=$(git -C "$ROOT" rev-parse --short "$before^{commit}")
  src="$WORK/before-$rev"
  if [[ ! -x "$WORK/gust-before-$rev" ]]; then
    step "building Gust at $rev (release, $WORK/before-target)"
    rm -rf "$src" && mkdir -p "$src"
    git -C "$ROOT" archive "$rev" | tar -x -C "$src"
    (cd "$src" && CARGO_TARGET_DIR="$WORK/before-target" cargo build --release -p gust)
    cp "$WORK/before-target/release/gust" "$WORK/gust-before-$rev"
  fi
  args+=(--gust-before "$WORK/gust-before-$rev" --before-rev "$rev")
fi
for bin in "$TARGET/release/gust" "$TARGET/release/lambda-echo" "$WORK/floor-target/release/gust-bench-floor"; do
  [[ -x "$bin" ]] || { echo "run.sh: $bin is missing (run without --skip-build)" >&2; exit 1; }
done

if ! command -v wrk >/dev/null; then
  step "installing wrk"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y wrk >/dev/null || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi

SLS_VERSION=3
OFFLINE_VERSION=13
if [[ ! -x "$WORK/node_modules/.bin/serverless" || ! -d "$WORK/node_modules/serverless-offline" ]]; then
  step "installing serverless@$SLS_VERSION and serverless-offline@$OFFLINE_VERSION into $WORK"
  [[ -f "$WORK/package.json" ]] || echo '{"name":"gust-bench-peers","private":true}' > "$WORK/package.json"
  (cd "$WORK" && npm install --no-audit --no-fund --loglevel=error \
    "serverless@$SLS_VERSION" "serverless-offline@$OFFLINE_VERSION" >/dev/null)
fi
echo "serverless $(node -p "require('$WORK/node_modules/serverless/package.json').version")," \
  "serverless-offline $(node -p "require('$WORK/node_modules/serverless-offline/package.json').version")," \
  "wrk $(wrk --version 2>&1 | head -1 | awk '{print $2}'), node $(node --version)" >&2

step "measuring"
python3 "$BENCH/bench.py" \
  --gust "$TARGET/release/gust" \
  --echo "$TARGET/release/lambda-echo" \
  --floor "$WORK/floor-target/release/gust-bench-floor" \
  --command "$COMMAND" ${args[@]+"${args[@]}"} &
child=$!
wait "$child"
