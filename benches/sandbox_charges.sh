#!/usr/bin/env bash
# Sandbox payments benchmark (issue "Payments"): POST /pos/charge per second on keep-alive,
# goal >= 10,000 charges/s, with the sandbox's CPU per charge split into its stages.
#
#   (1) load: the release sandbox runs as its own process (`posemu sandbox --fleet-seed`); the
#       load generator (benches/charge_load/load.rs, an example of the root package, built in
#       release) activates TERMINALS fleet devices, pre-signs REQUESTS distinct charges (fresh
#       nonce, IV and Idempotency-Key each, spec 7.2/7.4), fires WARMUP of them untimed, then
#       the rest over CONNS keep-alive connections, and reads the sandbox's CPU time from /proc
#       around the timed part. Every answer must be 200 and every 200 a stored charge.
#   (2) stages: an in-process micro benchmark of the route's own functions
#       (crates/posemu-sandbox/src/routes/payments_bench.rs, an #[ignore]d release test):
#       microseconds per charge for sign-verify, decrypt, outcome and encrypt.
# Both are printed in one table, with the load average beside every figure. The machine may be
# shared: compare the load average with the core count before trusting a figure.
#
# Usage: benches/sandbox_charges.sh
#   TERMINALS=100 REQUESTS=200000 WARMUP=20000 CONNS=64 DEPTH=1 ITERS=100000 benches/sandbox_charges.sh
set -euo pipefail
cd "$(dirname "$0")/.."

TERMINALS=${TERMINALS:-100}
REQUESTS=${REQUESTS:-200000}
WARMUP=${WARMUP:-20000}
CONNS=${CONNS:-64}
DEPTH=${DEPTH:-1}
ITERS=${ITERS:-100000}
GOAL=${GOAL:-10000}
SEED=bench-seed

cargo build --release --bin posemu --example charge_load >&2
BIN=target/release/posemu
GEN=target/release/examples/charge_load

work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

load1() { cut -d' ' -f1 /proc/loadavg; }

# (1) the load run
"$BIN" sandbox --listen 127.0.0.1:0 --fleet-seed "$SEED" --quiet >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do
  if [ -s "$work/out" ]; then break; fi
  sleep 0.05
done
url=$(sed -n '1s/^posemu sandbox listening on //p' "$work/out")
[ -n "$url" ] || { echo "sandbox did not start: $(cat "$work/err")" >&2; exit 1; }
gen_status=0
"$GEN" --url "$url" --seed "$SEED" --terminals "$TERMINALS" --requests "$REQUESTS" \
  --warmup "$WARMUP" --conns "$CONNS" --depth "$DEPTH" --pid "$pid" >"$work/load.txt" || gen_status=$?
cat "$work/load.txt"
rss=$(awk '/^VmHWM:/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"
wait "$pid" || true
pid=

field() { tr ' ' '\n' <"$work/load.txt" | sed -n "s/^$1=//p"; }
rate=$(field rate)
rate=${rate:-0}

# (2) the stages, in process
stage_load=$(load1)
POSEMU_BENCH_ITERS=$ITERS cargo test --release -p posemu-sandbox --lib charge_stages -- \
  --ignored --nocapture --test-threads 1 >"$work/stages.txt" 2>"$work/stages.err" || {
  cat "$work/stages.err" >&2
  exit 1
}
stage_load_after=$(load1)
stage() { awk -v s="$1" '$1 == "stage" && $2 == s {print $3}' "$work/stages.txt"; }

echo
echo "=== posemu sandbox charges benchmark ($(nproc) cores, $(date -u '+%Y-%m-%d %H:%M UTC')) ==="
echo "load: $(field terminals) activated fleet terminals, $(field conns) keep-alive connections (depth $(field depth)),"
echo "      $((REQUESTS - WARMUP)) timed charges after $WARMUP warm-up, all pre-signed; sandbox peak RSS ${rss} KiB"
printf '%-44s %14s   %s\n' "figure" "value" "load avg (1 min) during"
printf '%-44s %14s   %s\n' "charges/s (goal >= $GOAL)" "$rate" "$(field load_before) -> $(field load_after)"
printf '%-44s %14s   %s\n' "latency p50 / p99 / max (us)" "$(field p50_us) / $(field p99_us) / $(field max_us)" "same run"
printf '%-44s %14s   %s\n' "answers not 200 (timed / warm-up)" "$(field errors) / $(field warmup_errors)" "statuses $(field statuses)"
printf '%-44s %14s   %s\n' "sandbox process CPU per charge (us)" "$(field sandbox_cpu_us_per_charge)" "$(field sandbox_cpu_s) CPU-s in the timed part"
printf '%-44s %14s   %s\n' "  = sandbox CPU-s per 1,000 charges" \
  "$(awk -v u="$(field sandbox_cpu_us_per_charge)" 'BEGIN {printf "%.3f", u / 1000}')" "same run"
printf '%-44s %14s   %s\n' "in-process, $ITERS charges per stage (us):" "" "$stage_load -> $stage_load_after"
printf '%-44s %14s\n' "  sign-verify (string to sign + HMAC)" "$(stage sign_verify)"
printf '%-44s %14s\n' "  rest of 7.2 (look-ups, nonce, config)" "$(stage auth_other)"
printf '%-44s %14s\n' "  decrypt (envelope + JSON + validation)" "$(stage decrypt)"
printf '%-44s %14s\n' "  outcome (7.7 table + ledger insert)" "$(stage outcome)"
printf '%-44s %14s\n' "  encrypt (answer JSON + envelope seal)" "$(stage encrypt)"
printf '%-44s %14s\n' "  whole handler, no HTTP" "$(stage handler)"
echo "(uptime: $(uptime | sed 's/.*load average/load average/'))"

if [ "$gen_status" -ne 0 ]; then
  echo "the load generator failed (exit $gen_status)" >&2
  exit 1
fi
if [ "$(field errors)" != "0" ] || [ "$(field warmup_errors)" != "0" ]; then
  echo "some charges did not answer 200" >&2
  exit 1
fi
if ! awk -v r="$rate" -v g="$GOAL" 'BEGIN {exit !(r >= g)}'; then
  echo "goal missed: $rate charges/s < $GOAL" >&2
  exit 1
fi
