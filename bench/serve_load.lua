-- wrk script for bench/serve_load.py: image queries (POST /v1/search with a photo as the
-- body) or item queries (GET /v1/items/{id}/similar), cycling through a listing file.
-- Prints one JSON line of figures when done (wrk's own --latency has no p95).
local mode, entries, bodies, counter, params = nil, {}, {}, 0, ""

function init(args)
  mode = args[1]
  params = args[3] or ""
  for line in io.lines(args[2]) do
    entries[#entries + 1] = line
  end
  if mode == "image" then
    for i, path in ipairs(entries) do
      local f = assert(io.open(path, "rb"))
      bodies[i] = f:read("*a")
      f:close()
    end
  end
  counter = math.random(#entries)
end

function request()
  counter = counter % #entries + 1
  if mode == "image" then
    return wrk.format("POST", "/v1/search?k=10" .. params, { ["Content-Type"] = "image/jpeg" }, bodies[counter])
  end
  return wrk.format("GET", "/v1/items/" .. entries[counter] .. "/similar?k=10" .. params)
end

function done(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"non2xx":%d,"socket_errors":%d,"p50_us":%d,"p95_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
