-- wrk script for bench/load.py: POSTs real encounters, each with an encounter_id of its own,
-- and records every flagged answer (encounter id and review item id) and every request still
-- unanswered when the run ends (wrk drops those), for the lost-case check.
--   WRK_BODIES        file with one body per line; "@@ID@@" marks where each encounter id goes
--   WRK_PATH          request path; WRK_KEY the bearer key; WRK_RUN the id prefix of this run
--   WRK_OUT           where done() writes its counts; WRK_MAX_REQUESTS the most per thread

threads = {}
local templates = {}
local counter = 0
local limit = 0
local run = ""
flagged = {}
statuses = {}
pending = {}

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
  pending[run .. "-" .. thread_id .. "-" .. counter] = true
  return wrk.format(nil, nil, nil, table.concat(parts))
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  if status == 200 then
    local answered = body:match('"encounter_id":"([^"]*)%-%d+"')
    if answered then
      pending[answered] = nil
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

function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_OUT"), "w")
  out:write(string.format("requests %d\n", summary.requests))
  out:write(string.format("duration_us %d\n", summary.duration))
  out:write(string.format("p50_us %d\n", latency:percentile(50)))
  out:write(string.format("p99_us %d\n", latency:percentile(99)))
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
