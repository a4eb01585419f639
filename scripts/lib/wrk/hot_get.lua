-- GET one of KEYS preloaded keys (hot:0 .. hot:KEYS-1), round robin.
--
-- The requests are formatted once, up front: wrk shares the machine's
-- cores with the server it measures, and formatting each request in Lua
-- costs wrk CPU that the server would otherwise have (docs/benchmarks.md).
local keys = tonumber(os.getenv("KEYS") or "1000")
local requests = {}
for i = 0, keys - 1 do
  requests[i] = wrk.format("GET", "/api/v1/data/hot:" .. i)
end
local n = 0
request = function()
  n = (n + 1) % keys
  return requests[n]
end
