# Sourced by the benchmark scripts.
#
# start_sandbox BIN OUT [ARGS...]: starts `BIN sandbox --listen 127.0.0.1:0 --quiet ARGS` in the
# background, its stdout in OUT and stderr in OUT.err; sets `sb` (its pid) and `url` once it
# listens, or exits with its error.
start_sandbox() {
  local bin=$1 out=$2
  shift 2
  "$bin" sandbox --listen 127.0.0.1:0 --quiet "$@" >"$out" 2>"$out.err" &
  sb=$!
  url=""
  for _ in $(seq 1 100); do
    url=$(sed -n 's/^posemu sandbox listening on //p' "$out" | head -1)
    [ -n "$url" ] && return 0
    sleep 0.1
  done
  echo "sandbox did not start: $(cat "$out.err")" >&2
  kill "$sb" 2>/dev/null || true
  exit 1
}
