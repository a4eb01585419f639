-- GET a key never read before (miss:<n>, present only in the store), so
-- that every request is a store read and a Redis fill. Each thread takes
-- its own range of PER_THREAD keys, starting at OFFSET (so that every round
-- of a benchmark gets keys of its own); scripts/bench sizes the range so
-- that a thread does not come round to a key again.
--
-- A request is the formatted request of a placeholder key with the key
-- spliced in: cheaper for wrk than wrk.format each time (see hot_get.lua),
-- and the same bytes.
local per_thread = tonumber(os.getenv("PER_THREAD") or "200000")
local base = tonumber(os.getenv("OFFSET") or "0")
local threads = 0
setup = function(thread)
  thread:set("offset", base + threads * per_thread)
  threads = threads + 1
end
local placeholder = "KEY"
local template = wrk.format("GET", "/api/v1/data/miss:" .. placeholder)
local at = string.find(template, placeholder, 1, true)
local before = string.sub(template, 1, at - 1)
local after = string.sub(template, at + #placeholder)
local n = 0
request = function()
  n = n + 1
  return before .. (offset + (n % per_thread)) .. after
end
