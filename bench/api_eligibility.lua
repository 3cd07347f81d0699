-- The loads of bench/api_eligibility.py on the API, run by wrk (Debian's wrk package, built with LuaJIT):
--
--   BENCH_AUTHORIZATION="Bearer KEY" wrk -t1 -c8 -d30s --timeout 30s -s bench/api_eligibility.lua URL -- PATHS 1
--   BENCH_AUTHORIZATION="Bearer KEY" wrk -t32 -c32 -d37s --timeout 30s -s bench/api_eligibility.lua URL \
--       -- PATHS 32 RATE T0 WARMUP DURATION
--
-- Each request is GET of the next line of PATHS (request paths drawn by bench/api_eligibility.py: uniformly
-- random items of the synthetic index, a share of unknown ids; each wrk thread starts at its own offset),
-- with the Authorization header from the environment (not the command line, which other users can read).
--
-- Closed loop (two arguments): each connection sends its next request when the previous answer is read;
-- wrk's own latency (from the send to the answer) is the figure. Every answer's status is counted; a 200's
-- outcome and reason codes are read from its body (the API's compact JSON).
--
-- Open loop (RATE given; one connection per wrk thread): requests are *scheduled* at a constant RATE per
-- second from T0 (CLOCK_MONOTONIC seconds, the clock of Python's time.monotonic()): the global request g at
-- T0 + g / RATE, sent by thread g mod THREADS, whatever the answers so far, as wrk2 does. A connection sends
-- its request at its scheduled time, or at once when the previous answer came later than that; latency is
-- measured from the scheduled time (no coordinated omission: a stall counts against every request it
-- delayed), also from the actual send, and how late each send was. request() waits for the scheduled time
-- in nanosleep: the thread has only this connection to serve (wrk's delay() counts whole milliseconds, and
-- its event loop spins through the last one, a core's worth of CPU at these rates). Requests scheduled in
-- [T0 + WARMUP, T0 + WARMUP + DURATION) count; the schedule goes on until wrk stops, so the load stays the
-- same while the last counted answers arrive.
--
-- done() prints one JSON line with wrk's figures, these counts and, in the open loop, the measured latencies
-- in microseconds: the last line of wrk's output. Only strings and numbers cross from the threads to done()
-- (thread:get): wrk 4.1's copy of a table unbalances the thread's Lua stack and crashes it. So each count is
-- a number of its own (``status_200``) with the names seen in a string (``status_names``), and each thread
-- of the open loop publishes its latencies as one string once its last counted request is answered.

local ffi = require("ffi")
ffi.cdef([[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *tp);
  int nanosleep(const bench_timespec *req, bench_timespec *rem);
]])
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("bench_timespec")
local sleep_ts = ffi.new("bench_timespec")

local function now()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts.tv_sec) + tonumber(now_ts.tv_nsec) * 1e-9
end

local function sleep(seconds)
  if seconds > 0 then
    sleep_ts.tv_sec = math.floor(seconds)
    sleep_ts.tv_nsec = math.floor((seconds - math.floor(seconds)) * 1e9)
    ffi.C.nanosleep(sleep_ts, nil)
  end
end

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
  samples, sample_count = "", 0
  rate = tonumber(args[3])
  if rate then
    stride = threads_total
    slot = thread_number - 1
    t0 = tonumber(args[4])
    window_start = t0 + tonumber(args[5])
    window_end = window_start + tonumber(args[6])
    from_scheduled, from_sent, late, answered_in_window = {}, {}, {}, 0
    checking = thread_number == 1
  end
end

local scheduled, sent

function request()
  next_path = next_path % #paths + 1
  if rate then
    if checking then
      checking = false -- wrk's check of the request format, before the threads start: not a send
    else
      scheduled = t0 + slot / rate
      slot = slot + stride
      sleep(scheduled - now())
      sent = now()
    end
  end
  return wrk.format("GET", paths[next_path])
end

local function count(kind, name)
  local key = kind .. "_" .. name
  local value = _G[key]
  if value == nil then
    _G[kind .. "_names"] = (_G[kind .. "_names"] or "") .. name .. "\n"
    value = 0
  end
  _G[key] = value + 1
end

local function publish()
  published_from_scheduled = table.concat(from_scheduled, " ")
  published_from_sent = table.concat(from_sent, " ")
  published_late = table.concat(late, " ")
  published = 1
end

function response(status, headers, body)
  local done = now()
  if rate then
    -- the answer to the request sent last on this thread's only connection
    if scheduled == nil or scheduled < window_start then
      return
    elseif scheduled >= window_end then
      if not published then
        publish() -- every counted request of this thread was answered before this one
      end
      return
    end
  end
  count("status", tostring(status))
  if status == 200 then
    if rate then
      from_scheduled[#from_scheduled + 1] = math.floor((done - scheduled) * 1e6)
      from_sent[#from_sent + 1] = math.floor((done - sent) * 1e6)
      late[#late + 1] = math.floor((sent - scheduled) * 1e6)
      if done <= window_end then
        answered_in_window = answered_in_window + 1
      end
    end
    local outcome = body:match('"outcome":"([^"]*)"')
    if outcome then
      count("outcome", outcome)
    end
    for code in body:gmatch('"code":"([^"]*)"') do
      count("code", code)
    end
  elseif sample_count < 5 then
    samples = samples .. "HTTP " .. status .. ": " .. body:sub(1, 300) .. "\31"
    sample_count = sample_count + 1
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

local function merged(kind)
  local total = {}
  for _, thread in ipairs(threads) do
    for name in (thread:get(kind .. "_names") or ""):gmatch("[^\n]+") do
      total[name] = (total[name] or 0) + thread:get(kind .. "_" .. name)
    end
  end
  return total
end

local function joined(name)
  local all = {}
  for _, thread in ipairs(threads) do
    for value in (thread:get("published_" .. name) or ""):gmatch("%d+") do
      all[#all + 1] = tonumber(value)
    end
  end
  return all
end

function done(summary, latency, requests)
  local samples_all, answered, unpublished = {}, 0, 0
  for _, thread in ipairs(threads) do
    for sample in (thread:get("samples") or ""):gmatch("[^\31]+") do
      if #samples_all < 5 then
        samples_all[#samples_all + 1] = sample
      end
    end
    answered = answered + (thread:get("answered_in_window") or 0)
    if rate and not thread:get("published") then
      unpublished = unpublished + 1
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
    statuses = merged("status"),
    outcomes = merged("outcome"),
    reason_codes = merged("code"),
    error_samples = samples_all,
    from_scheduled_us = joined("from_scheduled"),
    from_sent_us = joined("from_sent"),
    late_us = joined("late"),
    answered_in_window = answered,
    threads_unfinished = unpublished,
  }) .. "\n")
end
