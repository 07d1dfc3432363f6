-- wrk script: POST a form body (WRK_BODY) with HTTP Basic client auth (SIGIL_BASIC, the
-- base64 of id:secret). Used for client_credentials, password and introspection.
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic " .. os.getenv("SIGIL_BASIC")
