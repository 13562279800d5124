-- wrk script for the POST-body scenarios of bench/run.sh (the JSON-schema scenario).
-- Usage: BODY_FILE=body.json wrk -s bench/wrk/post.lua http://127.0.0.1:PORT/route
-- Sends the bytes of BODY_FILE as an application/json POST body on every request
-- (bench/schemas/gen_order.py writes valid bodies of a given size).
local path = os.getenv("BODY_FILE")
if path == nil or path == "" then
  error("set BODY_FILE to the file whose bytes are the request body")
end
local f = assert(io.open(path, "rb"))
local body = f:read("*a")
f:close()

wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/json"
