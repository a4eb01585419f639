-- GET a key never read before (miss:<n>, present only in the store), so
-- that every request is a store read and a Redis fill. Each thread takes
-- its own range of PER_THREAD keys, starting at OFFSET (so that every round
-- of a benchmark gets keys of its own).
local per_thread = tonumber(os.getenv("PER_THREAD") or "200000")
local base = tonumber(os.getenv("OFFSET") or "0")
local threads = 0
setup = function(thread)
  thread:set("offset", base + threads * per_thread)
  threads = threads + 1
end
local n = 0
request = function()
  n = n + 1
  return wrk.format("GET", "/api/v1/data/miss:" .. (offset + (n % per_thread)))
end
