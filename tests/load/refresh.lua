-- wrk script: refresh-token rotation chains, one chain per connection, so no token is ever
-- presented twice. REFRESH_TOKENS holds the starting tokens, space-separated: one per
-- connection and one more per thread (wrk calls request() once before the run to check
-- the script, which takes a token); WRK_THREADS is the number of wrk threads (-t) and
-- SIGIL_BASIC the client's credentials.
--
-- Each thread keeps a queue of the tokens its connections may present next. A connection
-- takes one when it sends (request) and the fresh token of each answer goes back in
-- (response), so the tokens in flight are always distinct. A refused refresh returns no
-- token: the queue shrinks, and a connection that finds it empty sends a token that cannot
-- work, which shows up as a non-2xx answer.
local all = {}
for t in string.gmatch(os.getenv("REFRESH_TOKENS") or "", "%S+") do
  table.insert(all, t)
end
local threads = tonumber(os.getenv("WRK_THREADS") or "1")
local next_thread = 0

function setup(thread)
  local mine = {}
  for i = next_thread + 1, #all, threads do
    table.insert(mine, all[i])
  end
  thread:set("mine", table.concat(mine, " "))
  next_thread = next_thread + 1
end

local queue = {}
local basic = "Basic " .. os.getenv("SIGIL_BASIC")

function init(args)
  for t in string.gmatch(mine or "", "%S+") do
    table.insert(queue, t)
  end
end

function request()
  local token = table.remove(queue, 1) or "exhausted"
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = basic,
  }, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local fresh = string.match(body, '"refresh_token":"([^"]+)"')
  if fresh then table.insert(queue, fresh) end
end
