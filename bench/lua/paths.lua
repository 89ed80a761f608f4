-- GET a random line of a file of request paths (argument 1), e.g. /fhir/Patient/pat-1-42.
-- Each thread reads the file once and draws from its own seeded generator.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "summary.lua")

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
end

local paths = {}
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then paths[#paths + 1] = line end
  end
  if #paths == 0 then error("no request paths in " .. args[1]) end
  math.randomseed(os.time() * 1000 + (thread_no or 0))
  wrk.headers["Accept"] = "application/fhir+json"
end

function request()
  return wrk.format("GET", paths[math.random(#paths)])
end
