-- POST one of the JSON bodies of a file (argument 1, one resource per line) to a path
-- (argument 2, e.g. /fhir/Patient): single creates, the server assigning ids.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "summary.lua")

local counter = 0
function setup(thread)
  counter = counter + 1
  thread:set("thread_no", counter)
end

local bodies = {}
local target = "/"
function init(args)
  for line in io.lines(args[1]) do
    if #line > 0 then bodies[#bodies + 1] = line end
  end
  if #bodies == 0 then error("no bodies in " .. args[1]) end
  target = args[2]
  math.randomseed(os.time() * 1000 + (thread_no or 0))
  wrk.headers["Content-Type"] = "application/fhir+json"
  wrk.headers["Accept"] = "application/fhir+json"
end

function request()
  return wrk.format("POST", target, nil, bodies[math.random(#bodies)])
end
