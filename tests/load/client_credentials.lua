-- wrk script: POST /token with grant_type=client_credentials and HTTP Basic client auth.
-- The credentials come from the SIGIL_BASIC environment variable (base64 of id:secret).
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("SIGIL_BASIC")

local non2xx = 0
response = function(status, headers, body)
  if status ~= 200 then non2xx = non2xx + 1 end
end
