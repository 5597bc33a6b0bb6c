-- budget_release: a process that stops reports what it reserved since its last renew and
-- returns the rest of its grant (see src/budget.rs).
-- Touches only KEYS[1] and KEYS[2], which share a hash tag (one slot).
--
-- KEYS[1]  the line item's hash for one budget day
-- KEYS[2]  the line item's lifetime hash
-- ARGV[1]  process id
-- ARGV[2]  day key TTL, s      ARGV[3]  lifetime key TTL, s
-- ARGV[4]  n, then n pairs (decision minute, micros): what the process reserved since its last
--          renew
-- Returns 1.

local function int(x)
  return string.format('%d', x)
end

local gfield = 'g:' .. ARGV[1]
local tfield = 't:' .. ARGV[1]
local key_ttl = { ARGV[2], ARGV[3] }
local n = tonumber(ARGV[4])
for k = 1, 2 do
  local grant = tonumber(redis.call('HGET', KEYS[k], gfield) or '0')
  local leased = tonumber(redis.call('HGET', KEYS[k], 'leased') or '0')
  for i = 0, n - 1 do
    local micros = tonumber(ARGV[6 + 2 * i])
    if micros > 0 then
      redis.call('HINCRBY', KEYS[k], 'p:' .. ARGV[5 + 2 * i], int(micros))
    end
  end
  redis.call('HDEL', KEYS[k], gfield, tfield)
  if grant ~= 0 then
    redis.call('HSET', KEYS[k], 'leased', int(leased - grant))
  end
  redis.call('EXPIRE', KEYS[k], key_ttl[k])
end
return 1
