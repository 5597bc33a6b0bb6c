-- budget_book: an impression, click or billing notice books spend and settles the reservation
-- its decision made at its decision minute (see src/budget.rs). The minute's pending may go
-- below zero for a while: a notice can arrive before the deciding process has reported the
-- reservation (it is still inside that process's grant, so the sum stays exact) and the report
-- brings the field back to zero.
-- Touches only KEYS[1] and KEYS[2], which share a hash tag (one slot).
--
-- KEYS[1]  the line item's hash for one budget day
-- KEYS[2]  the line item's lifetime hash
-- ARGV[1]  spent micros (>= 0)  ARGV[2]  decision minute, unix minute
-- ARGV[3]  day key TTL, s       ARGV[4]  lifetime key TTL, s
-- ARGV[5]  settled micros (>= 0): the reservation this notice ends (0 for a CPC click)
-- Returns 1.

local field = 'p:' .. ARGV[2]
local settle = tonumber(ARGV[5])
local key_ttl = { ARGV[3], ARGV[4] }
for k = 1, 2 do
  redis.call('HINCRBY', KEYS[k], 'spent', ARGV[1])
  if settle ~= 0 then
    local left = redis.call('HINCRBY', KEYS[k], field, string.format('%d', -settle))
    if left == 0 then
      redis.call('HDEL', KEYS[k], field)
    end
  end
  redis.call('EXPIRE', KEYS[k], key_ttl[k])
end
return 1
