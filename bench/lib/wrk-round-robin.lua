-- wrk script of the query benchmark (bench/lib/wrk.ts): GETs the paths given after `--` in turn,
-- and prints one JSON line with the latency percentiles (microseconds) when the run is done.
local paths = {}
local next_path = 0

function init(args)
  for _, path in ipairs(args) do
    paths[#paths + 1] = path
  end
end

function request()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path])
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"p50":%d,"p99":%d,"max":%d,"errors":%d,"non2xx":%d}\n',
    summary.requests, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end
