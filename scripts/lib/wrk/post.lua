-- POST a write of a key never written before (post:<n>), so that every
-- write creates its record. Each thread takes its own range of PER_THREAD
-- keys, starting at OFFSET, as miss_get.lua does; scripts/bench gives every
-- run a range of its own. VALUE_BYTES (optional) pads each value to that
-- many bytes; without it a value is a few bytes.
--
-- A request is the formatted request of a placeholder key with the key
-- spliced in (see miss_get.lua). Keys are numbered from 100,000,000, so
-- that every one has nine digits and every request the same
-- Content-Length.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local per_thread = tonumber(os.getenv("PER_THREAD") or "200000")
local base = 100000000 + tonumber(os.getenv("OFFSET") or "0")
local threads = 0
setup = function(thread)
  local offset = base + threads * per_thread
  assert(offset + per_thread < 1000000000, "post.lua: keys past nine digits")
  thread:set("offset", offset)
  threads = threads + 1
end
local value_bytes = tonumber(os.getenv("VALUE_BYTES") or "0")
local value = "value"
if #value < value_bytes then
  value = value .. string.rep("x", value_bytes - #value)
end
local placeholder = "NNNNNNNNN"
local body = '{"key":"post:' .. placeholder .. '","value":"' .. value .. '","ttl":3600}'
local template = wrk.format("POST", "/api/v1/data", nil, body)
local at = string.find(template, placeholder, 1, true)
local before = string.sub(template, 1, at - 1)
local after = string.sub(template, at + #placeholder)
local n = 0
request = function()
  n = n + 1
  return before .. (offset + (n % per_thread)) .. after
end
