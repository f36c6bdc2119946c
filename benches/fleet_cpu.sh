#!/usr/bin/env bash
# Fleet efficiency (issue "Fleet efficiency"), side by side in one run against ONE sandbox
# process:
#   1. posemu fleet, N terminals polling GET /pos/status every 3–5 s (--no-claim), its CPU per
#      request and poll lateness p99;
#   2. wrk against the same sandbox's /pos/status (-t1 -c64), the practical limit of a loopback
#      HTTP/1.1 load generator, its CPU per request;
#   3. an activation storm: STORM terminals powering on at once (--ramp 0) with immediate
#      claims, time until all are activated (sandbox in its own process).
# Prints a Markdown table and exits non-zero when a goal is missed:
#   fleet CPU per request <= 2.5 x wrk's, lateness p99 <= 250 ms, storm <= 10 s.
#
#   bash benches/fleet_cpu.sh                       # N = 100000, 45 s; STORM = 10000
#   N=50000 DURATION=30 STORM=2000 bash benches/fleet_cpu.sh
#
# Needs cargo; installs wrk, jq and GNU time (Debian) if missing. Loopback traffic only, every
# run bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-100000}
DURATION=${DURATION:-45}
WRK_SECS=${WRK_SECS:-15}
STORM=${STORM:-10000}
OUT=${OUT:-target/fleet-cpu}
SEED=fleet-cpu
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v jq >/dev/null || need+=(jq)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
cargo build --release --bin posemu >&2
BIN=target/release/posemu
TCK=$(getconf CLK_TCK)

sb=
cleanup() { [ -n "$sb" ] && kill "$sb" 2>/dev/null || true; }
trap cleanup EXIT

# shellcheck source=lib/sandbox.sh
. benches/lib/sandbox.sh
start_sandbox "$BIN" "$OUT/sandbox.out" --fleet-seed "$SEED"
cpu_of() { awk -v t="$TCK" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

# 1. the fleet
load_fleet=$(load)
echo "posemu fleet: $N terminals for ${DURATION}s against $url (load $load_fleet)" >&2
sb_before=$(cpu_of "$sb")
"$BIN" fleet --devices "$N" --no-claim --duration "${DURATION}s" --ramp "$(( N / 10 ))/s" \
  --poll 3-5 --server "$url" --fleet-seed "$SEED" --headless --report "$OUT/fleet.json" \
  >"$OUT/fleet.txt" 2>&1 || true
sb_fleet=$(awk -v a="$sb_before" -v b="$(cpu_of "$sb")" 'BEGIN { printf "%.2f", b - a }')
f_cpu=$(jq '.processes[0].fleet.cpu_seconds' "$OUT/fleet.json")
f_req=$(jq '.requests' "$OUT/fleet.json")
f_late=$(jq '.poll_lateness.p99_ms' "$OUT/fleet.json")
f_rss=$(jq '.processes[0].fleet.peak_rss_bytes' "$OUT/fleet.json")

# 2. wrk, same sandbox, one device's status (its code pending: a 200 like the fleet's)
load_wrk=$(load)
echo "wrk -t1 -c64 for ${WRK_SECS}s (load $load_wrk)" >&2
sb_before=$(cpu_of "$sb")
/usr/bin/time -f "%U %S" -o "$OUT/wrk.time" wrk -t1 -c64 -d"${WRK_SECS}s" \
  -H "X-Device-Id: POS-F0000001" -H "User-Agent: Viopay-POS/1.4.2 (Android 12; PAX-A920)" \
  -H "X-Client-Type: pos" "$url/pos/status" >"$OUT/wrk.txt"
sb_wrk=$(awk -v a="$sb_before" -v b="$(cpu_of "$sb")" 'BEGIN { printf "%.2f", b - a }')
w_cpu=$(awk '{ print $1 + $2 }' "$OUT/wrk.time")
w_req=$(awk '/requests in/ { print $1 }' "$OUT/wrk.txt")
kill "$sb"; wait "$sb" 2>/dev/null || true; sb=

us() { awk -v c="$1" -v r="$2" 'BEGIN { if (r > 0) printf "%.1f", c * 1e6 / r; else print "-" }'; }
f_us=$(us "$f_cpu" "$f_req"); w_us=$(us "$w_cpu" "$w_req")
ratio=$(awk -v a="$f_us" -v b="$w_us" 'BEGIN { printf "%.2f", a / b }')

# 3. the storm
load_storm=$(load)
echo "activation storm: $STORM terminals at once (load $load_storm)" >&2
"$BIN" fleet --devices "$STORM" --ramp 0 --claim-after 0 --sandbox-process --fleet-seed "$SEED" \
  --headless --report "$OUT/storm.json" >"$OUT/storm.txt" 2>&1 || true
storm_s=$(jq '.elapsed_seconds * 10 | round / 10' "$OUT/storm.json")
activated=$(jq '.devices.activated' "$OUT/storm.json")
storm_sb=$(jq '.processes[0].sandbox.cpu_seconds // 0' "$OUT/storm.json")

{
  echo "$(nproc) cores; fleet of $N for ${DURATION}s and wrk for ${WRK_SECS}s against one \`posemu sandbox\` process; then a storm of $STORM."
  echo
  echo "| | CPU per request | requests | poll lateness p99 | sandbox CPU-s | load average |"
  echo "|---|---:|---:|---:|---:|---|"
  echo "| wrk -t1 -c64 (/pos/status) | ${w_us} µs | $w_req | — | $sb_wrk | $load_wrk |"
  echo "| posemu fleet, $N terminals | ${f_us} µs (${ratio}× wrk) | $f_req | ${f_late} ms | $sb_fleet | $load_fleet |"
  echo
  echo "Fleet peak RSS: $(awk -v b="$f_rss" -v n="$N" 'BEGIN { printf "%.0f MiB, %.2f KiB per terminal", b / 1048576, b / n / 1024 }')."
  echo "Activation storm: $activated of $STORM activated in ${storm_s} s (the run, power-on to the last activation) (sandbox CPU ${storm_sb} s; load $load_storm)."
} | tee "$OUT/table.md"

fail=0
awk -v r="$ratio" 'BEGIN { exit !(r > 2.5) }' && { echo "goal missed: fleet CPU per request ${ratio}× wrk's (goal <= 2.5×)" >&2; fail=1; }
awk -v l="$f_late" 'BEGIN { exit !(l > 250) }' && { echo "goal missed: lateness p99 ${f_late} ms (goal <= 250 ms)" >&2; fail=1; }
awk -v s="$storm_s" 'BEGIN { exit !(s > 10) }' && { echo "goal missed: storm ${storm_s} s (goal <= 10 s)" >&2; fail=1; }
[ "$activated" = "$STORM" ] || { echo "storm: only $activated of $STORM activated" >&2; fail=1; }
exit "$fail"
