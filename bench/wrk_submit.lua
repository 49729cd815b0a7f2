-- wrk script: POST distinct signed entries to /api/v1/log/entries.
--
-- Used by bench/ingest_http.py --load wrk (Debian's wrk 4.1):
--   wrk -t T -c C -d Ds -s bench/wrk_submit.lua URL -- BODIES_FILE
-- BODIES_FILE holds one request body per line (compact JSON has no newline).
-- Thread k of T sends lines k, k+T, k+2T, ...; a thread that runs out of
-- bodies stops (wrk.thread:stop), so no body is ever sent twice. done()
-- prints one JSON line: requests, duration, status counts, 201s without an
-- inclusion proof, socket errors and latency percentiles (microseconds).

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path = args[1]
  local n = tonumber(args[2])
  bodies = {}
  local i = 0
  for line in io.lines(path) do
    if i % n == tid then
      table.insert(bodies, line)
    end
    i = i + 1
  end
  next_body = 1
  statuses = {}
  no_proof = 0
  exhausted = 0
  headers = {["Content-Type"] = "application/json"}
end

function request()
  local body = bodies[next_body]
  if body == nil then
    exhausted = 1
    wrk.thread:stop()
    body = "{}" -- never sent: the thread is stopping
  end
  next_body = next_body + 1
  return wrk.format("POST", "/api/v1/log/entries", headers, body)
end

function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 201 and not string.find(body, '"inclusionProof"', 1, true) then
    no_proof = no_proof + 1
  end
end

function done(summary, latency, requests)
  local counts = {}
  local np, ex = 0, 0
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for code, k in pairs(s) do
      counts[code] = (counts[code] or 0) + k
    end
    np = np + t:get("no_proof")
    ex = ex + t:get("exhausted")
  end
  local parts = {}
  for code, k in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', code, k))
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"status_counts":{%s},"created_without_proof":%d,' ..
    '"threads_exhausted":%d,"socket_errors":%d,' ..
    '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"max":%d,"mean":%.1f}}\n',
    summary.requests, summary.duration, table.concat(parts, ","), np, ex,
    e.connect + e.read + e.write + e.timeout + e.status,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.max, latency.mean))
end
