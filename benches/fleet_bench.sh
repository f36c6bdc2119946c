#!/usr/bin/env bash
# Fleet benchmark: N terminals polling GET /pos/status every 3–5 s against the sandbox running
# as a separate process, from `posemu fleet --no-claim` and from a general load tool (goose,
# benches/goose-poll/), side by side. Prints a Markdown table (also saved under $OUT).
#
#   bash benches/fleet_bench.sh                       # N = 10k 50k 100k, 60 s each
#   SIZES="10000" GOOSE_SIZES="10000" DURATION=30 bash benches/fleet_bench.sh
#
# Needs: cargo; installs jq, GNU time and the OpenSSL headers goose needs (Debian) if missing.
# Traffic goes to 127.0.0.1 only; every run is bounded by DURATION.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-"10000 50000 100000"}
GOOSE_SIZES=${GOOSE_SIZES:-"10000 50000 100000"}
DURATION=${DURATION:-60}
OUT=${OUT:-target/fleet-bench}
SEED=fleet-bench
mkdir -p "$OUT"

# One socket per in-flight call on a shared pool (bounded by --max-in-flight), but goose and
# --connection-per-device need one per terminal: raise the soft limit as far as allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 1048576 2>/dev/null || true
echo "open files limit: $(ulimit -n)" >&2

need_apt=()
command -v jq >/dev/null || need_apt+=(jq)
[ -x /usr/bin/time ] || need_apt+=(time)
pkg-config --exists openssl 2>/dev/null || need_apt+=(libssl-dev pkg-config)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]}" >&2
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >&2
fi

echo "building posemu (release)" >&2
cargo build --release --bin posemu >&2
echo "building goose-poll (release, own target dir)" >&2
cargo build --release --manifest-path benches/goose-poll/Cargo.toml \
  --target-dir benches/goose-poll/target >&2
POSEMU=target/release/posemu
GOOSE=benches/goose-poll/target/release/goose-poll

mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
kib() { awk -v a="$1" -v n="$2" 'BEGIN { printf "%.1f KiB", a / n / 1024 }'; }
per() { awk -v a="$1" -v b="$2" -v s="$3" 'BEGIN { if (b > 0) printf "%.3f", a * s / b; else print "-" }'; }

rows=()

# --- posemu fleet ---------------------------------------------------------------------------
for n in $SIZES; do
  ramp=$(( n / 20 ))   # everyone started within 20 s
  report="$OUT/posemu-$n.json"
  echo "posemu fleet: $n terminals for ${DURATION}s" >&2
  "$POSEMU" fleet --devices "$n" --no-claim --duration "${DURATION}s" --ramp "${ramp}/s" \
    --poll 3-5 --sandbox-process --fleet-seed "$SEED" --headless --report "$report" \
    > "$OUT/posemu-$n.txt"
  rss=$(jq '.processes[0].fleet.peak_rss_bytes' "$report")
  cpu=$(jq '.processes[0].fleet.cpu_seconds' "$report")
  req=$(jq '.requests' "$report")
  errs=$(jq '.errors' "$report")
  late=$(jq '.poll_lateness.p99_ms' "$report")
  sb_cpu=$(jq '.processes[0].sandbox.cpu_seconds // 0' "$report")
  rate=$(awk -v r="$req" -v d="$DURATION" 'BEGIN { printf "%.0f", r / d }')
  rows+=("| posemu fleet | $n | $(mib "$rss") MiB | $(kib "$rss" "$n") | $(per "$cpu" "$req" 1000) | $(printf '%.1f' "$late") ms | $rate ($(( n / 4 )) due) | $errs | $(per "$sb_cpu" "$req" 1000) |")
done

# --- goose ----------------------------------------------------------------------------------
for n in $GOOSE_SIZES; do
  echo "goose: $n users for ${DURATION}s" >&2
  "$POSEMU" sandbox --listen 127.0.0.1:0 --fleet-seed "$SEED" --quiet > "$OUT/sandbox-$n.out" &
  sb=$!
  url=""
  for _ in $(seq 1 100); do
    url=$(sed -n 's/^posemu sandbox listening on //p' "$OUT/sandbox-$n.out" | head -1)
    [ -n "$url" ] && break
    sleep 0.1
  done
  [ -n "$url" ] || { echo "sandbox did not start" >&2; kill "$sb"; exit 1; }
  sb_before=$(awk '{ print $14 + $15 }' "/proc/$sb/stat")
  status=ok
  /usr/bin/time -f "%M %U %S" -o "$OUT/goose-$n.time" \
    "$GOOSE" --host "$url" --users "$n" --increase-rate "$(( n / 20 ))" --run-time "${DURATION}s" \
      --quiet --report-file "$OUT/goose-$n.json" --no-reset-metrics \
      > "$OUT/goose-$n.txt" 2>&1 || status="failed (exit $?)"
  sb_after=$(awk '{ print $14 + $15 }' "/proc/$sb/stat")
  kill "$sb"; wait "$sb" 2>/dev/null || true
  read -r max_kib user sys < <(tail -1 "$OUT/goose-$n.time")
  rss=$(( max_kib * 1024 ))
  cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { print u + s }')
  agg='.raw_request_metrics[]? | select(.name == "Aggregated")'
  req=$(jq "[$agg | .number_of_requests] | first // 0" "$OUT/goose-$n.json" 2>/dev/null || echo 0)
  errs=$(jq "[$agg | .number_of_failures] | first // 0" "$OUT/goose-$n.json" 2>/dev/null || echo "?")
  tck=$(getconf CLK_TCK)
  sb_cpu=$(awk -v a="$sb_before" -v b="$sb_after" -v t="$tck" 'BEGIN { print (b - a) / t }')
  rate=$(awk -v r="$req" -v d="$DURATION" 'BEGIN { printf "%.0f", r / d }')
  note=""
  [ "$status" = ok ] || note=" $status"
  rows+=("| goose 0.19 | $n | $(mib "$rss") MiB | $(kib "$rss" "$n") | $(per "$cpu" "$req" 1000) | n/a | $rate ($(( n / 4 )) due)$note | $errs | $(per "$sb_cpu" "$req" 1000) |")
done

{
  echo "Polling GET /pos/status every 3–5 s for ${DURATION} s (a 20 s ramp included); sandbox in a separate process."
  echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| load generator | terminals | peak RSS | RSS per terminal | CPU-s per 1,000 requests | poll lateness p99 | requests/s achieved | errors | sandbox CPU-s per 1,000 requests |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
} | tee "$OUT/table.md"
