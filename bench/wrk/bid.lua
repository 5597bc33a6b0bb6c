-- bid.lua: wrk load for POST /openrtb2/bid — one OpenRTB request read from the file named by
-- BID_BODY_FILE (compact JSON with the placeholders __ID__ for the request id and __UID__ for
-- the user id), a new request id and user id per request.
--   BID_BODY_FILE=/tmp/banner.json wrk -t1 -c32 -d10s --latency -s bench/wrk/bid.lua http://127.0.0.1:18080
-- An optional argument after `--` is a mean think time in ms per connection, as in decide.lua.

local headers = { ["Content-Type"] = "application/json" }
local threads = 0
tid = 0 -- set per thread by setup()
local counter = 0
local head, middle, tail

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  local path = os.getenv("BID_BODY_FILE")
  local f = assert(io.open(path, "r"), "BID_BODY_FILE must name a readable file")
  local body = f:read("*a")
  f:close()
  local i1, j1 = body:find("__ID__", 1, true)
  local i2, j2 = body:find("__UID__", 1, true)
  assert(i1 and i2 and i1 < i2, "the body needs __ID__ before __UID__")
  head, middle, tail = body:sub(1, i1 - 1), body:sub(j1 + 1, i2 - 1), body:sub(j2 + 1)
  local d = tonumber(args[1])
  if d and d > 0 then
    local lo, hi = math.max(1, math.floor(d / 2)), math.max(1, math.floor(d * 3 / 2))
    function delay()
      return math.random(lo, hi)
    end
  end
end

function request()
  counter = counter + 1
  local id = tid .. "-" .. counter
  return wrk.format("POST", "/openrtb2/bid", headers, head .. "r" .. id .. middle .. "u" .. id .. tail)
end
