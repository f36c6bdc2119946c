#!/usr/bin/env bash
# Fleet payments benchmark: N terminals activate (polling GET /pos/status every 3–5 s until their
# code is claimed 1–5 s after it shows), then each charges once a minute (Poisson arrivals) until
# the run ends; the sandbox runs as a separate process. Prints a Markdown table (also saved under
# $OUT): charge latency, outcomes, RSS per terminal, CPU, and the load average around each run
# (the machine may be shared: read the figures next to it).
#
#   bash benches/fleet_charges.sh                          # N = 10,000 for 180 s
#   SIZES="2000 10000" DURATION=120 bash benches/fleet_charges.sh
#
# Goal (README, fleet benchmark): charge p99 <= 50 ms and 0 unknown outcomes at 10,000 activated
# terminals, judged on the charges sent once every terminal had activated (the report's
# payments.charge_after_activation); the whole run's charge row, activation storm included, is
# shown beside it.
# Needs: cargo; installs jq if missing (Debian). Traffic goes to 127.0.0.1 only; every run is
# bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"10000"}
DURATION=${DURATION:-180}
RATE=${RATE:-1}
MIX=${MIX:-"approve=100"}
OUT=${OUT:-target/fleet-charges}
SEED=fleet-charges-bench
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 1048576 2>/dev/null || true

if ! command -v jq >/dev/null; then
  echo "installing jq" >&2
  apt-get update -qq && apt-get install -y -qq jq >&2
fi

echo "building posemu (release)" >&2
cargo build --release --bin posemu >&2
POSEMU=target/release/posemu

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
ms() { jq -r "$1 // \"-\" | if type == \"number\" then (. * 100 | round / 100 | tostring) + \" ms\" else . end" "$2"; }

rows=()
for n in $SIZES; do
  ramp=$(( n / 10 ))   # everyone started within 10 s
  report="$OUT/charges-$n.json"
  before=$(loadavg)
  echo "posemu fleet: $n terminals charging ${RATE}/min for ${DURATION}s (load average $before)" >&2
  status=0
  "$POSEMU" fleet --devices "$n" --duration "${DURATION}s" --ramp "${ramp}/s" --poll 3-5 \
    --claim-after 1s-5s --charges-per-minute "$RATE" --charge-mix "$MIX" --sandbox-process \
    --fleet-seed "$SEED" --headless --report "$report" \
    --threshold 'p99(charge-activated)<=50ms' --threshold 'unknown==0' \
    > "$OUT/charges-$n.txt" &
  pid=$!
  # the fleet's RSS in the steady state (every terminal activated and charging), 5 s before
  # the end; the report's peak includes the activation's transient buffers
  sleep $(( DURATION > 10 ? DURATION - 5 : DURATION / 2 ))
  steady_kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
  wait "$pid" || status=$?
  after=$(loadavg)
  activated=$(jq '.devices.activated' "$report")
  charges=$(jq '.payments.outcomes.charges' "$report")
  approved=$(jq '.payments.outcomes.approved + .payments.outcomes.partially_approved' "$report")
  unknown=$(jq '.payments.outcomes.unknown' "$report")
  perrs=$(jq '.payments.errors' "$report")
  rss=$(jq '.processes[0].fleet.peak_rss_bytes' "$report")
  per=$(jq '.processes[0].bytes_per_device // 0' "$report")
  cpu=$(jq '.processes[0].fleet.cpu_seconds * 10 | round / 10' "$report")
  sb_cpu=$(jq '(.processes[0].sandbox.cpu_seconds // 0) * 10 | round / 10' "$report")
  rate=$(awk -v c="$charges" -v d="$DURATION" 'BEGIN { printf "%.0f", c / d }')
  verdict=$([ "$status" = 0 ] && echo "met" || echo "missed (exit $status)")
  rows+=("| $n | $activated | $charges ($rate/s) | $approved | $(ms '.payments.requests_by_kind.charge.latency.p50_ms' "$report") | $(ms '.payments.requests_by_kind.charge.latency.p99_ms' "$report") | $(ms '.payments.requests_by_kind.charge.latency.max_ms' "$report") | $(ms '.payments.charge_after_activation.p99_ms' "$report") (n=$(jq '.payments.charge_after_activation.count' "$report")) | $unknown | $perrs | $(awk -v k="$steady_kib" -v n="$n" 'BEGIN { printf "%.1f KiB (%.0f MiB)", k / n, k / 1024 }') | $(awk -v b="$per" 'BEGIN { printf "%.1f KiB", b / 1024 }') ($(awk -v b="$rss" 'BEGIN { printf "%.0f", b / 1048576 }') MiB) | $cpu / $sb_cpu | $verdict | $before → $after |")
done

{
  echo "Each terminal activates, then charges ${RATE}/min (mix ${MIX}) for the rest of ${DURATION} s; sandbox in a separate process."
  echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)."
  echo
  echo "| terminals | activated | charges ended | approved | charge p50 | charge p99 | charge max | charge p99 once all activated | unknown | payment errors | RSS per terminal, charging (total) | peak RSS per terminal (peak) | CPU-s fleet / sandbox | goal: p99 once all activated ≤ 50 ms, 0 unknown | load average before → after |"
  echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/table.md"
