-- Runs one test scenario against the reaper test double:
--   lua5.4 tests/lua/run_scenario.lua SCENARIO.lua PARAMS.json
-- The scenario is Lua code run with these names in scope:
--   double   the test double (tests/lua/reaper_double.lua); `reaper` is its API, as a global
--   P        the parameters the Python test passed (ports, file paths, ...)
--   H        helpers below (run a VampBridge script, send a control message, report)
-- At the end the runner prints one line "REPORT <json>" with the project snapshot plus
-- whatever the scenario put in H.out, for the Python test to assert on. Lines starting with
-- "READY " tell the Python side that the scenario reached a point it waits for.

local root = arg[0]:match("^(.*)[/\\]tests[/\\]lua[/\\][^/\\]+$") or "."
local scripts_dir = root .. "/reaper_scripts/VampBridge/"
package.path = scripts_dir .. "?.lua;" .. package.path

local double = dofile(root .. "/tests/lua/reaper_double.lua")
local json = require("vampbridge_json")
local osc = require("vampbridge_osc")
local socket = require("socket")
package.loaded["vampbridge_json"], package.loaded["vampbridge_osc"] = nil, nil

reaper = double.api
gfx = double.gfx

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

local P = assert(json.decode(read(arg[2])))
-- Reaper's resource path (logs of the auto-start command go there): the test's own folder.
if P.tmp then double.resource_path = P.tmp .. "/resource" end
local H = { out = {} }

function H.script_path(action) return scripts_dir .. "VampBridge - " .. action .. ".lua" end

--- Runs "VampBridge - <action>.lua" as Reaper would; returns the script record.
function H.run(action, command_id) return double.run_script(H.script_path(action), command_id) end

--- Stores settings the way the Settings script does.
function H.settings(values)
  for key, value in pairs(values) do reaper.SetExtState("VampBridge", key, tostring(value), true) end
end

local control_socket = socket.udp()
control_socket:setsockname("127.0.0.1", 0)

--- Sends an OSC message (to the fake service's control port, usually).
function H.send(port, address, types, ...)
  assert(control_socket:sendto(osc.encode_message(address, types or "", ...), "127.0.0.1", port))
end

--- Tells the Python test that the scenario reached `tag`.
function H.ready(tag)
  io.stdout:write("READY " .. tag .. "\n")
  io.stdout:flush()
end

--- Pumps defer cycles until the Python test sends a message (Scenario.resume) to
--- P.scenario_port; returns it.
local scenario_socket
function H.wait_for_python(timeout_s)
  if not scenario_socket then
    scenario_socket = socket.udp()
    scenario_socket:settimeout(0)
    assert(scenario_socket:setsockname("127.0.0.1", P.scenario_port))
  end
  local message
  double.pump_until(function()
    local data = scenario_socket:receive()
    if data then message = osc.decode(data) end
    return message ~= nil
  end, timeout_s or 20, "a message from the Python test")
  return message
end

--- The names of an item's takes, in order.
function H.take_names(item)
  local names = {}
  for i, take in ipairs(item.takes) do names[i] = take.name end
  return names
end

function H.report()
  local snapshot = double.snapshot()
  snapshot.out = H.out
  io.stdout:write("REPORT " .. json.encode(snapshot) .. "\n")
  io.stdout:flush()
end

local env = setmetatable({ double = double, P = P, H = H }, { __index = _G })
local chunk = assert(load(read(arg[1]), "@scenario", "t", env))
local ok, err = xpcall(chunk, debug.traceback)
if not ok then
  H.out.scenario_error = err
  H.report()
  io.stderr:write(err .. "\n")
  os.exit(1)
end
H.report()
