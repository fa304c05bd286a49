-- Each request a random one of HOTSET_N URLs /hot/fNNNNN.bin (a 10,000-URL
-- hot set of 1 KiB objects), then the JSON summary of report.lua.
local n = tonumber(os.getenv("HOTSET_N") or "10000")
local reqs = {}
local threads = 0

setup = function(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

init = function(args)
  -- Per-thread seed, so two threads do not walk the same sequence; the
  -- requests are formatted once so the client spends its time sending.
  math.randomseed(os.time() * 1000 + (tid or 0))
  for i = 0, n - 1 do
    reqs[i] = wrk.format("GET", string.format("/hot/f%05d.bin", i))
  end
end

request = function()
  return reqs[math.random(0, n - 1)]
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"socket_errors":%d,"non2xx":%d,"p50_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
