#!/usr/bin/env bash
# Sandbox benchmarks (issue "Foundation"), printed as a small report:
#   (a) GET /pos/status with keep-alive, from wrk          goal >= 50,000 requests/s
#   (b) the sandbox's RSS per touched device: N derived     goal <= 1 KB per device
#       fleet devices each bootstrapped once over HTTP (wrk + benches/sandbox_bootstrap.lua),
#       VmRSS of the sandbox process read from /proc before and after.
# The sandbox runs as its own process (the release binary), so the load tool's memory and
# CPU are not counted as the sandbox's.
#
# Usage: benches/sandbox_bench.sh            (defaults below)
#   DURATION=15s CONNS=64 WRK_THREADS=1 DEVICES=1000000 benches/sandbox_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15s}
CONNS=${CONNS:-64}
WRK_THREADS=${WRK_THREADS:-1}
DEVICES=${DEVICES:-1000000}
SEED=bench-seed

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (Debian package)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --bin posemu >&2
BIN=target/release/posemu

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Starts the sandbox; sets pid and url.
start_sandbox() {
  rm -f "$work/out" "$work/err"
  "$BIN" sandbox --listen 127.0.0.1:0 --fleet-seed "$SEED" --quiet >"$work/out" 2>"$work/err" &
  pid=$!
  for _ in $(seq 100); do
    if [ -s "$work/out" ] 2>/dev/null; then break; fi
    sleep 0.05
  done
  url=$(sed -n '1s/^posemu sandbox listening on //p' "$work/out")
  [ -n "$url" ] || { echo "sandbox did not start: $(cat "$work/err")" >&2; exit 1; }
}

stop_sandbox() {
  kill -TERM "$pid"
  wait "$pid" || true
  pid=
}

rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$pid/status"; }

headers=(-H 'X-Device-Id: POS-8F3A2C91' -H 'User-Agent: Viopay-POS/1.4.2 (Android 12; PAX-A920)' -H 'X-Client-Type: pos')

# (a) status throughput
start_sandbox
wrk -t1 -c"$CONNS" -d2s "${headers[@]}" "$url/pos/status" >/dev/null # warm-up
wrk -t"$WRK_THREADS" -c"$CONNS" -d"$DURATION" --latency "${headers[@]}" "$url/pos/status" | tee "$work/status.txt"
status_rps=$(awk '/^Requests\/sec:/ {print $2}' "$work/status.txt")
status_p99=$(awk '$1 == "99%" {print $2}' "$work/status.txt")
non2xx=$(awk '/Non-2xx/ {print $NF}' "$work/status.txt")
stop_sandbox

# (b) memory per touched device
start_sandbox
# Warm up threads, allocator and connection buffers on one device, so that "before" holds
# everything but the devices.
wrk -t"$WRK_THREADS" -c"$CONNS" -d2s "${headers[@]}" "$url/pos/status" >/dev/null
before=$(rss_kb)
t0=$(date +%s.%N)
mkdir "$work/done"
wrk -t"$WRK_THREADS" -c"$CONNS" -d600s -s benches/sandbox_bootstrap.lua "$url" -- "$DEVICES" "$WRK_THREADS" "$work/done" >"$work/boot.txt" &
wrk_pid=$!
while [ "$(ls "$work/done" | wc -l)" -lt "$WRK_THREADS" ] && kill -0 "$wrk_pid" 2>/dev/null; do
  sleep 0.2
done
t1=$(date +%s.%N)
kill -INT "$wrk_pid" 2>/dev/null || true
wait "$wrk_pid" || true
failed=$(cat "$work"/done/* 2>/dev/null | awk '{s += $1} END {print s + 0}')
after=$(rss_kb)
hwm=$(hwm_kb)
touched=$(curl -s "$url/sandbox/devices?limit=0" | sed -n 's/.*"total":\([0-9]*\).*/\1/p')
touched=$((touched - 3)) # the three shipped profiles are listed too
elapsed=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
boot_rps=$(awk -v n="$touched" -v s="$elapsed" 'BEGIN {printf "%.0f", n / s}')
stop_sandbox

per_device=$(awk -v b="$before" -v a="$after" -v n="$touched" 'BEGIN {printf "%.0f", (a - b) * 1024 / n}')
echo
echo "=== posemu sandbox benchmark ($(nproc) cores, $(date -u +%Y-%m-%d)) ==="
printf '(a) GET /pos/status, keep-alive, wrk -t%s -c%s -d%s: %s requests/s (p99 %s%s)\n' \
  "$WRK_THREADS" "$CONNS" "$DURATION" "$status_rps" "$status_p99" "${non2xx:+, non-2xx $non2xx}"
printf '(b) %s devices bootstrapped once (%s s, %s bootstraps/s): RSS %s KiB -> %s KiB (peak %s KiB)\n' \
  "$touched" "$elapsed" "$boot_rps" "$before" "$after" "$hwm"
printf '    => %s bytes per touched device\n' "$per_device"
if [ "$failed" -gt 0 ]; then
  echo "warning: $failed bootstraps did not answer 200" >&2
  exit 1
fi
if [ "$touched" -lt "$DEVICES" ]; then
  echo "warning: only $touched of $DEVICES devices were touched" >&2
  exit 1
fi
