#!/usr/bin/env bash
# The POS screen at rest: the release binary in tmux (120x40) on the pairing screen, waiting
# for the merchant (polling every 3 s, countdown ticking once a second). Measures, from /proc:
#   - CPU over 30 s (utime + stime of the process),
#   - resident memory now (VmRSS) and at its peak (VmHWM).
# Goals (issue 4): CPU < 1 %, RSS <= 30 MB.
#
# usage: benches/tui_idle.sh [SECONDS]      (needs tmux; Linux /proc)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
command -v tmux >/dev/null || { echo "tmux is needed (apt-get install tmux)" >&2; exit 2; }

cargo build --release --quiet
bin=$(pwd)/target/release/posemu
home=$(mktemp -d)
sock=posemu-idle-$$
cleanup() { tmux -L "$sock" kill-server 2>/dev/null || true; rm -rf "$home"; }
trap cleanup EXIT

tmux -L "$sock" -f /dev/null new-session -d -x 120 -y 40 -s pos \
  "exec env POSEMU_HOME=$home $bin --fresh"
for _ in $(seq 1 100); do
  tmux -L "$sock" capture-pane -p -t pos | grep -q "Waiting for merchant" && break
  sleep 0.1
done
tmux -L "$sock" capture-pane -p -t pos | grep -q "Waiting for merchant" \
  || { echo "the pairing screen did not show" >&2; tmux -L "$sock" capture-pane -p -t pos >&2; exit 1; }
pid=$(tmux -L "$sock" display -p -t pos '#{pane_pid}')
sleep 2 # past start-up

ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
t0=$(ticks); s0=$(date +%s.%N)
sleep "$secs"
t1=$(ticks); s1=$(date +%s.%N)
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
tmux -L "$sock" capture-pane -p -t pos | grep -q "Waiting for merchant" \
  || { echo "the screen left the pairing state during the measurement" >&2; exit 1; }

awk -v t0="$t0" -v t1="$t1" -v s0="$s0" -v s1="$s1" -v hz="$hz" -v rss="$rss" -v hwm="$hwm" 'BEGIN {
  wall = s1 - s0; cpu = (t1 - t0) / hz;
  printf "POS screen idle on the pairing screen, 120x40, %.1f s:\n", wall;
  printf "  CPU     %.3f s = %.2f %% of one core   (goal < 1 %%)\n", cpu, 100 * cpu / wall;
  printf "  RSS     %.1f MB now, %.1f MB peak       (goal <= 30 MB)\n", rss / 1024, hwm / 1024;
  fail = (100 * cpu / wall >= 1) || (hwm / 1024 > 30);
  exit fail;
}'
