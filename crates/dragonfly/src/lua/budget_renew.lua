-- budget_renew: one process renews its lease on a line item's budget (see src/budget.rs).
-- Touches only KEYS[1] and KEYS[2], which share a hash tag (one slot).
--
-- KEYS[1]  the line item's hash for one budget day
-- KEYS[2]  the line item's lifetime hash
-- ARGV[1]  process id          ARGV[2]  now, unix ms        ARGV[3]  lease TTL, ms
-- ARGV[4]  now, unix minute    ARGV[5]  pending window, minutes
-- ARGV[6]  slice, micros       ARGV[7]  daily budget or ''  ARGV[8]  lifetime budget or ''
-- ARGV[9]  day key TTL, s      ARGV[10] lifetime key TTL, s
-- ARGV[11] n, then n pairs (decision minute, micros): what the process reserved since its last
--          renew
-- Returns {grant, spent day, pending day, spent lifetime, pending lifetime}.

local function int(x)
  return string.format('%d', x)
end

local gfield = 'g:' .. ARGV[1]
local tfield = 't:' .. ARGV[1]
local now_ms = tonumber(ARGV[2])
local lease_until = now_ms + tonumber(ARGV[3])
local oldest = tonumber(ARGV[4]) - tonumber(ARGV[5])
local slice = tonumber(ARGV[6])
local budget = {}
budget[1] = tonumber(ARGV[7])
budget[2] = tonumber(ARGV[8])
local key_ttl = { ARGV[9], ARGV[10] }
local n = tonumber(ARGV[11])
local used = 0
for i = 0, n - 1 do
  used = used + tonumber(ARGV[13 + 2 * i])
end

local state = {}
for k = 1, 2 do
  local all = redis.call('HGETALL', KEYS[k])
  local h = {}
  for i = 1, #all, 2 do
    h[all[i]] = all[i + 1]
  end
  local leased = tonumber(h['leased'] or '0')

  -- (a) reclaim the expired leases of other processes
  for f, v in pairs(h) do
    if string.sub(f, 1, 2) == 't:' and f ~= tfield and tonumber(v) < now_ms then
      local g = 'g:' .. string.sub(f, 3)
      leased = leased - tonumber(h[g] or '0')
      redis.call('HDEL', KEYS[k], g, f)
    end
  end

  -- (b) what this process reserved leaves its grant and becomes pending
  local grant = tonumber(h[gfield] or '0')
  local moved = math.min(grant, used)
  if moved < 0 then
    moved = 0
  end
  grant = grant - moved
  leased = leased - moved
  for i = 0, n - 1 do
    local micros = tonumber(ARGV[13 + 2 * i])
    if micros > 0 then
      local f = 'p:' .. ARGV[12 + 2 * i]
      local now_pending = redis.call('HINCRBY', KEYS[k], f, int(micros))
      if now_pending == 0 then
        -- a notice booked before this report had taken it below zero
        redis.call('HDEL', KEYS[k], f)
        h[f] = nil
      else
        h[f] = int(tonumber(h[f] or '0') + micros)
      end
    end
  end

  -- (c) pending older than the window is dropped; the rest is live
  local pending = 0
  for f, v in pairs(h) do
    if string.sub(f, 1, 2) == 'p:' then
      local minute = tonumber(string.sub(f, 3))
      if minute == nil or minute < oldest then
        redis.call('HDEL', KEYS[k], f)
      else
        pending = pending + tonumber(v)
      end
    end
  end

  state[k] = { spent = tonumber(h['spent'] or '0'), pending = pending, leased = leased, grant = grant }
end

-- (d) the grant: at most the slice, and what every budget set still allows
local target = slice
for k = 1, 2 do
  if budget[k] then
    local s = state[k]
    local allows = s.grant + budget[k] - s.spent - s.pending - s.leased
    if allows < target then
      target = allows
    end
  end
end
if target < 0 then
  target = 0
end
local granted = 0
for k = 1, 2 do
  local s = state[k]
  local grant = 0
  if budget[k] then
    grant = target
    granted = target
  end
  s.leased = s.leased - s.grant + grant
  if grant > 0 then
    redis.call('HSET', KEYS[k], gfield, int(grant), tfield, int(lease_until), 'leased', int(s.leased))
  else
    redis.call('HDEL', KEYS[k], gfield, tfield)
    redis.call('HSET', KEYS[k], 'leased', int(s.leased))
  end
  redis.call('EXPIRE', KEYS[k], key_ttl[k])
end

-- (e)
return { granted, state[1].spent, state[1].pending, state[2].spent, state[2].pending }
