-- wrk script for bench/load.py and bench/cds.py: POSTs bodies, each request with an id of its
-- own (X-Request-ID, which the service echoes; "@@ID@@" in a body becomes that id and a suffix),
-- and records every flagged answer (encounter id and review item id) and every request still
-- unanswered when the run ends (wrk drops those), for the lost-case check.
--   WRK_BODIES        file with one body per line; "@@ID@@" marks where each encounter id goes
--   WRK_PATH          request path; WRK_KEY the bearer key; WRK_RUN the id prefix of this run
--   WRK_OUT           where done() writes its counts; WRK_MAX_REQUESTS the most per thread
--   WRK_RATE          when set, an open loop at this many requests/s (run it with -t1): request
--                     i is due at start + i/rate and its latency runs from that time, so a
--                     request that waits for a free connection counts its wait (no coordinated
--                     omission). wrk's own latency figures run from the send, so these replace them.

local ffi = require("ffi")
ffi.cdef([[
typedef struct { long tv_sec; long tv_nsec; } load_timespec;
int clock_gettime(int clock, load_timespec *now);
]])
local clock = ffi.new("load_timespec")

local function now_us()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1e6 + tonumber(clock.tv_nsec) / 1e3
end

threads = {}
local templates = {}
local counter = 0
local limit = 0
local run = ""
flagged = {}
statuses = {}
pending = {}
latencies = {}
local due = {} -- counter -> due time (us) of paced requests in flight
local slots = {} -- due times handed out by delay(), taken in order by request()
local first_slot, next_slot = 1, 1
local interval_us = nil
local start_us = nil

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_id", #threads)
end

function init(args)
  for line in io.lines(os.getenv("WRK_BODIES")) do
    local pieces = {}
    for piece in (line .. "@@ID@@"):gmatch("(.-)@@ID@@") do
      pieces[#pieces + 1] = piece
    end
    templates[#templates + 1] = pieces
  end
  run = os.getenv("WRK_RUN")
  limit = tonumber(os.getenv("WRK_MAX_REQUESTS"))
  wrk.method = "POST"
  wrk.path = os.getenv("WRK_PATH")
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_KEY")
  if os.getenv("WRK_RATE") then
    interval_us = 1e6 / tonumber(os.getenv("WRK_RATE"))
  end
end

if os.getenv("WRK_RATE") then
  -- wrk calls delay() when a connection is free to send, and request() when that delay ends;
  -- timers fire in due order, so request() takes the due times in the order they were given.
  function delay()
    local now = now_us()
    start_us = start_us or now
    local at = start_us + (next_slot - 1) * interval_us
    slots[next_slot] = at
    next_slot = next_slot + 1
    if at <= now then
      return 0
    end
    return math.ceil((at - now) / 1000) -- wrk's timers count whole ms: never send early
  end
end

function request()
  counter = counter + 1
  local pieces = templates[(counter - 1) % #templates + 1]
  local parts = {}
  for k = 1, #pieces - 1 do
    parts[#parts + 1] = pieces[k]
    parts[#parts + 1] = run .. "-" .. thread_id .. "-" .. counter .. "-" .. k
  end
  parts[#parts + 1] = pieces[#pieces]
  local id = run .. "-" .. thread_id .. "-" .. counter
  pending[id] = true
  wrk.headers["X-Request-ID"] = id
  if interval_us then
    due[counter] = slots[first_slot]
    slots[first_slot] = nil
    first_slot = first_slot + 1
  end
  return wrk.format(nil, nil, nil, table.concat(parts))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    local answered = headers["x-request-id"]
    if answered then
      pending[answered] = nil
      local n = tonumber(answered:match("%-(%d+)$"))
      if interval_us and due[n] then
        latencies[#latencies + 1] = now_us() - due[n]
        due[n] = nil
      end
    end
    local pattern = '"encounter_id":"([^"]*)"[^}]-"flagged":true[^}]-"review_item_id":(%d+)'
    for id, item in body:gmatch(pattern) do
      flagged[#flagged + 1] = id .. " " .. item
    end
  end
  if counter >= limit then
    wrk.thread:stop()
  end
end

local function percentile(sorted, q)
  if #sorted == 0 then
    return 0
  end
  return sorted[math.min(#sorted, math.floor(#sorted * q) + 1)]
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_OUT"), "w")
  out:write(string.format("requests %d\n", summary.requests))
  out:write(string.format("duration_us %d\n", summary.duration))
  if os.getenv("WRK_RATE") then
    local all = {}
    for _, thread in ipairs(threads) do
      for _, value in ipairs(thread:get("latencies")) do
        all[#all + 1] = value
      end
    end
    table.sort(all)
    out:write(string.format("p50_us %d\n", percentile(all, 0.5)))
    out:write(string.format("p99_us %d\n", percentile(all, 0.99)))
  else
    out:write(string.format("p50_us %d\n", latency:percentile(50)))
    out:write(string.format("p99_us %d\n", latency:percentile(99)))
  end
  out:write(string.format("max_us %d\n", latency.max))
  local e = summary.errors
  out:write(string.format("errors %d\n", e.connect + e.read + e.write + e.timeout))
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses")) do
      out:write(string.format("status %d %d\n", code, n))
    end
    for prefix, _ in pairs(thread:get("pending")) do
      out:write("unanswered " .. prefix .. "\n")
    end
    for _, line in ipairs(thread:get("flagged")) do
      out:write("flagged " .. line .. "\n")
    end
  end
  out:close()
end
