#!/usr/bin/env bash
# The one test command: formatting, lints (warnings are errors), then every test.
# README and .ci/run both call this script, so what passes here is what CI checks.
set -euo pipefail
cd "$(dirname "$0")/.."
for tool in cargo node python3; do
  command -v "$tool" >/dev/null || { echo "test.sh: '$tool' is required but not on PATH" >&2; exit 1; }
done
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole run: the sum of every test binary's result line.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "total: %d passed, %d failed\n", p, f }' "$log"
exit "$status"
