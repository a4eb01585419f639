-- GET one of KEYS preloaded keys (hot:0 .. hot:KEYS-1), round robin.
local keys = tonumber(os.getenv("KEYS") or "1000")
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/data/hot:" .. (n % keys))
end
