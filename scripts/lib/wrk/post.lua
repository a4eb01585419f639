-- POST a write of one of 10,000 keys, round robin. VALUE_BYTES (optional)
-- pads each value to that many bytes; without it a value is a few bytes.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
local value_bytes = tonumber(os.getenv("VALUE_BYTES") or "0")
request = function()
  n = n + 1
  local value = "value " .. n
  if #value < value_bytes then
    value = value .. string.rep("x", value_bytes - #value)
  end
  local body = '{"key":"post:' .. (n % 10000) .. '","value":"' .. value .. '","ttl":3600}'
  return wrk.format("POST", "/api/v1/data", nil, body)
end
