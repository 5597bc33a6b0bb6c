-- decide.lua: wrk load for POST /v1/decide — one demo-mrec placement, a new user id per request.
--   wrk -t1 -c32 -d10s --latency -s bench/wrk/decide.lua http://127.0.0.1:18080
-- An optional argument after `--` is a mean think time in ms per connection (uniform in
-- [d/2, 3d/2], so connections do not fire in lockstep); without it wrk runs closed-loop flat out.
--   wrk -t1 -c200 -d10s --latency -s bench/wrk/decide.lua http://127.0.0.1:18080 -- 10

local placements = '[{"id":"demo-mrec"}]'
local headers = { ["Content-Type"] = "application/json" }
local threads = 0
tid = 0 -- set per thread by setup()
local counter = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  local d = tonumber(args[1])
  if d and d > 0 then
    local lo, hi = math.max(1, math.floor(d / 2)), math.max(1, math.floor(d * 3 / 2))
    -- Defined only when asked for: wrk checks for a global `delay` after init.
    function delay()
      return math.random(lo, hi)
    end
  end
end

function request()
  counter = counter + 1
  local body = '{"placements":' .. placements .. ',"user":{"id":"u' .. tid .. '-' .. counter .. '"}}'
  return wrk.format("POST", "/v1/decide", headers, body)
end
