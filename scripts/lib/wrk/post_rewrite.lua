-- POST a write of one of 10,000 keys (rewrite:0 .. rewrite:9999), round
-- robin: past the first pass over them, every write rewrites a record.
-- VALUE_BYTES (optional) pads each value to that many bytes; without it a
-- value is a few bytes. post.lua writes keys never written before.
--
-- The requests are formatted once, up front, as in hot_get.lua: formatting
-- each in Lua costs wrk CPU that the server it measures shares the cores
-- with. Each key is written with the same value every time; every write of
-- it still takes a new version.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local keys = 10000
local value_bytes = tonumber(os.getenv("VALUE_BYTES") or "0")
local requests = {}
for i = 0, keys - 1 do
  local value = "value " .. i
  if #value < value_bytes then
    value = value .. string.rep("x", value_bytes - #value)
  end
  local body = '{"key":"rewrite:' .. i .. '","value":"' .. value .. '","ttl":3600}'
  requests[i] = wrk.format("POST", "/api/v1/data", nil, body)
end
local n = 0
request = function()
  n = (n + 1) % keys
  return requests[n]
end
