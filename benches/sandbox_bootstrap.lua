-- wrk script: bootstraps the derived fleet devices POS-F0000000 ... POS-F0{N-1}, each once,
-- split across wrk's threads (thread t takes t, t+T, t+2T, ...). Used by sandbox_bench.sh to
-- measure the sandbox's memory per touched device.
--   wrk -t T -c C -d 600s -s benches/sandbox_bootstrap.lua URL -- N T DONE_DIR
-- wrk runs for its whole -d even when every thread has stopped, so each thread writes
-- DONE_DIR/<thread> once its share is answered and the caller interrupts wrk (SIGINT makes
-- it print its report).
local next_id = 0
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end

function init(args)
  n = tonumber(args[1] or "1000000")
  nthreads = tonumber(args[2] or "1")
  done_dir = args[3]
  quota = math.floor((n - tid + nthreads - 1) / nthreads)
  sent, done, failed = 0, 0, 0
end

function request()
  local i = tid + sent * nthreads
  sent = sent + 1
  -- Past the end: bootstrap this thread's first device again (no new state) until the
  -- thread stops, so every connection keeps going until the last real one has answered.
  if i >= n then i = tid end
  return wrk.format("POST", "/pos/bootstrap", {
    ["X-Device-Id"] = string.format("POS-F0%06X", i),
    ["User-Agent"] = "Viopay-POS/1.4.2 (Android 12; PAX-A920)",
    ["X-Client-Type"] = "pos",
  })
end

function response(status, headers, body)
  done = done + 1
  if status ~= 200 then failed = failed + 1 end
  -- A margin of answers past the quota: the in-flight requests of every connection are done.
  if done == quota + 256 then
    if done_dir then
      local f = io.open(done_dir .. "/" .. tid, "w")
      f:write(failed)
      f:close()
    end
    wrk.thread:stop()
  end
end
