#!/usr/bin/env bash
# Fleet memory per polling terminal, two builds side by side against ONE sandbox process:
# each runs `posemu fleet` with N terminals polling every 3–5 s (--no-claim) for DURATION s,
# ROUNDS times in turn (BASE, current, BASE, current…), and its peak RSS per terminal is
# printed with the load average at its start.
#
#   BASE=/tmp/posemu-before bash benches/fleet_memory.sh     # N = 100000, 30 s, 2 rounds
#   N=20000 ROUNDS=1 BASE=... bash benches/fleet_memory.sh
#
# BASE is another posemu binary (e.g. a copy of target/release/posemu built from an earlier
# commit); without it only the current build runs. Needs cargo; installs jq (Debian) if
# missing. Loopback traffic only.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
DURATION=${DURATION:-30}
ROUNDS=${ROUNDS:-2}
OUT=${OUT:-target/fleet-memory}
SEED=fleet-memory
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
command -v jq >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >&2
}
cargo build --release --bin posemu >&2
BIN=target/release/posemu

sb=
cleanup() { [ -n "$sb" ] && kill "$sb" 2>/dev/null || true; }
trap cleanup EXIT
# shellcheck source=lib/sandbox.sh
. benches/lib/sandbox.sh
start_sandbox "$BIN" "$OUT/sandbox.out" --fleet-seed "$SEED"

echo "| build | terminals | peak RSS | per terminal | poll lateness p99 | load average |"
echo "|---|---:|---:|---:|---:|---|"
for _ in $(seq 1 "$ROUNDS"); do
  for bin in ${BASE:+"$BASE"} "$BIN"; do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    "$bin" fleet --devices "$N" --no-claim --duration "${DURATION}s" --ramp "$(( N / 10 ))/s" \
      --poll 3-5 --server "$url" --fleet-seed "$SEED" --headless --report "$OUT/report.json" \
      >"$OUT/fleet.txt" 2>&1 || true
    jq -r --arg b "$bin" --arg l "$load" --argjson n "$N" '
      .processes[0].fleet.peak_rss_bytes as $r
      | "| \($b) | \($n) | \($r / 1048576 | floor) MiB | \($r / $n / 1024 * 100 | round / 100) KiB | \(.poll_lateness.p99_ms * 10 | round / 10) ms | \($l) |"' \
      "$OUT/report.json"
  done
done
