-- wrk script of bench/batching.py's throughput part: POST /v1/scans with one fixed body of carrier scans.
-- SCANS_BODY names the file holding the JSON body, SCANS_KEY the carrier's API key.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("SCANS_KEY")
local file = io.open(os.getenv("SCANS_BODY"), "rb")
wrk.body = file:read("*a")
file:close()
