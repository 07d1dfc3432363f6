-- wrk script: GET with a bearer token (WRK_TOKEN); without it, a plain GET.
local token = os.getenv("WRK_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
