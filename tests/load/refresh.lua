-- wrk script: refresh-token rotation chains. Run with as many threads as connections
-- (-tN -cN): each thread owns one connection and one chain, and always presents the
-- newest token, so no token is ever used twice. REFRESH_TOKENS holds one starting token per
-- thread, space-separated; SIGIL_BASIC the client's credentials.
local tokens = {}
for t in string.gmatch(os.getenv("REFRESH_TOKENS") or "", "%S+") do
  table.insert(tokens, t)
end
local next_thread = 1

function setup(thread)
  thread:set("token", tokens[next_thread])
  next_thread = next_thread + 1
end

local basic = "Basic " .. os.getenv("SIGIL_BASIC")

function request()
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = basic,
  }, "grant_type=refresh_token&refresh_token=" .. token)
end

function response(status, headers, body)
  local fresh = string.match(body, '"refresh_token":"([^"]+)"')
  if fresh then token = fresh end
end
