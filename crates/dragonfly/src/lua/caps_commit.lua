-- caps_commit: counts one request's impressions under a user's frequency caps, all or nothing
-- per impression (see src/caps.rs). Touches only KEYS[1].
--
-- KEYS[1]  the user's cap hash
-- ARGV[1]  the key's TTL in seconds: raised to this when something was counted, never lowered
-- ARGV[2]  how many impressions (rule sets) follow; each is
--          n, then n pairs (field, limit): the set counts when every field is below its limit
-- ARGV[after the sets]  optional: m, then m fields to read back after counting
-- Returns one integer per set, in order: 1 counted, 0 refused (nothing counted); then the
-- current value of each field to read back (0 when absent).

local ttl = tonumber(ARGV[1])
local sets = tonumber(ARGV[2])
local at = 3
local out = {}
local counted = false
for s = 1, sets do
  local n = tonumber(ARGV[at])
  local first = at + 1
  local room = true
  for j = 0, n - 1 do
    local current = tonumber(redis.call('HGET', KEYS[1], ARGV[first + 2 * j]) or '0')
    if current >= tonumber(ARGV[first + 2 * j + 1]) then
      room = false
      break
    end
  end
  if room then
    for j = 0, n - 1 do
      redis.call('HINCRBY', KEYS[1], ARGV[first + 2 * j], '1')
    end
    if n > 0 then
      counted = true
    end
    out[s] = 1
  else
    out[s] = 0
  end
  at = first + 2 * n
end
if counted and redis.call('TTL', KEYS[1]) < ttl then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
local reads = tonumber(ARGV[at] or '0')
for j = 1, reads do
  out[sets + j] = tonumber(redis.call('HGET', KEYS[1], ARGV[at + j]) or '0')
end
return out
