-- The saturation load of bench/api_eligibility.py (closed loop), run by wrk (Debian's wrk package):
--
--   BENCH_AUTHORIZATION="Bearer KEY" wrk -t1 -c8 -d30s --timeout 30s -s bench/api_eligibility.lua URL -- PATHS
--
-- Each request is GET of the next line of PATHS (request paths drawn by bench/api_eligibility.py: uniformly
-- random items of the synthetic index, a share of unknown ids; each wrk thread starts at its own offset),
-- with the Authorization header from the environment (not the command line, which other users can read).
-- Every answer's status is counted; a 200's outcome and reason codes are read from its body (the API's
-- compact JSON); the first error answers are kept as samples. done() prints one JSON line with wrk's
-- figures and these counts: the last line of wrk's output.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_number", #threads)
end

function init(args)
  paths = {}
  for line in io.lines(args[1]) do
    paths[#paths + 1] = line
  end
  if #paths == 0 then
    error("no request paths in " .. args[1])
  end
  local threads_total = tonumber(args[2]) or 1
  next_path = math.floor((thread_number - 1) * #paths / threads_total)
  wrk.headers["Authorization"] = os.getenv("BENCH_AUTHORIZATION")
  wrk.headers["Accept"] = "application/json"
  statuses, outcomes, codes, samples = {}, {}, {}, {}
end

function request()
  next_path = next_path % #paths + 1
  return wrk.format("GET", paths[next_path])
end

function response(status, headers, body)
  local label = tostring(status)
  statuses[label] = (statuses[label] or 0) + 1
  if status == 200 then
    local outcome = body:match('"outcome":"([^"]*)"')
    if outcome then
      outcomes[outcome] = (outcomes[outcome] or 0) + 1
    end
    for code in body:gmatch('"code":"([^"]*)"') do
      codes[code] = (codes[code] or 0) + 1
    end
  elseif #samples < 5 then
    samples[#samples + 1] = "HTTP " .. label .. ": " .. body:sub(1, 300)
  end
end

local function encode(value)
  if type(value) == "table" then
    local parts = {}
    if #value > 0 then
      for _, item in ipairs(value) do
        parts[#parts + 1] = encode(item)
      end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    for key, item in pairs(value) do
      parts[#parts + 1] = encode(tostring(key)) .. ":" .. encode(item)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(value) == "string" then
    return '"' .. value:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
  end
  return tostring(value)
end

local function merge(name)
  local total = {}
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get(name) or {}) do
      total[key] = (total[key] or 0) + count
    end
  end
  return total
end

function done(summary, latency, requests)
  local samples_all = {}
  for _, thread in ipairs(threads) do
    for _, sample in ipairs(thread:get("samples") or {}) do
      if #samples_all < 5 then
        samples_all[#samples_all + 1] = sample
      end
    end
  end
  local e = summary.errors
  io.write(encode({
    duration_us = summary.duration,
    requests = summary.requests,
    errors = { connect = e.connect, read = e.read, write = e.write, status = e.status, timeout = e.timeout },
    p50_us = latency:percentile(50),
    p90_us = latency:percentile(90),
    p99_us = latency:percentile(99),
    max_us = latency.max,
    statuses = merge("statuses"),
    outcomes = merge("outcomes"),
    reason_codes = merge("codes"),
    error_samples = samples_all,
  }) .. "\n")
end
