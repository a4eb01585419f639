-- POST a write of one of 10,000 keys, round robin.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = n + 1
  local body = '{"key":"post:' .. (n % 10000) .. '","value":"value ' .. n .. '","ttl":3600}'
  return wrk.format("POST", "/api/v1/data", nil, body)
end
