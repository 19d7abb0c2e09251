-- Drives reaper_scripts/VampBridge/vampbridge_osc.lua for tests/test_lua_osc.py.
--   lua5.4 run_osc.lua encode SPEC.json        one hex line per packet in SPEC
--   lua5.4 run_osc.lua decode < HEXLINES       one JSON line per hex line
--   lua5.4 run_osc.lua send PORT SPEC.json     sends the packets over UDP to 127.0.0.1:PORT
--   lua5.4 run_osc.lua receive N               prints "PORT <p>", then N decoded datagrams
-- A SPEC is a JSON list of packets: {"address", "types", "values"} or
-- {"bundle": true, "timetag", "elements": [...]}. Values of tags b, m and r are hex strings.

local root = arg[0]:match("^(.*)[/\\]tests[/\\]lua[/\\][^/\\]+$") or "."
package.path = root .. "/reaper_scripts/VampBridge/?.lua;" .. package.path
local osc = require("vampbridge_osc")
local json = require("vampbridge_json")

local function from_hex(h) return (h:gsub("%x%x", function(b) return string.char(tonumber(b, 16)) end)) end
local function to_hex(s) return (s:gsub(".", function(c) return string.format("%02x", c:byte()) end)) end

local BYTES_TAGS = { b = true, m = true, r = true }

local function encode(packet)
  if packet.bundle then
    local elements = {}
    for i, e in ipairs(packet.elements) do elements[i] = encode(e) end
    return osc.encode_bundle(math.tointeger(packet.timetag) or osc.IMMEDIATELY, elements)
  end
  -- Values go to the encoder as given (extra ones too, so its checks can be tested); only
  -- hex strings and JSON whole numbers for f and d are converted.
  local data_tags = packet.types:gsub("[TFNI]", "")
  local values = {}
  for i, value in ipairs(packet.values or {}) do
    local tag = data_tags:sub(i, i)
    if BYTES_TAGS[tag] then value = from_hex(value) end
    if (tag == "f" or tag == "d") and type(value) == "number" then value = value + 0.0 end
    values[i] = value
  end
  return osc.encode_message(packet.address, packet.types, table.unpack(values, 1, #(packet.values or {})))
end

local function plain(decoded)
  if decoded.bundle then
    local elements = {}
    for i, e in ipairs(decoded.elements) do elements[i] = plain(e) end
    return { bundle = true, timetag = decoded.timetag, elements = elements }
  end
  local args = {}
  for i = 1, #decoded.types do
    local tag, value = decoded.types:sub(i, i), decoded.args[i]
    if BYTES_TAGS[tag] then value = { hex = to_hex(value) }
    elseif value == osc.NIL then value = json.null
    elseif value == osc.INFINITUM then value = "INFINITUM"
    end
    args[i] = value
  end
  return { address = decoded.address, types = decoded.types, args = args }
end

local function read_spec(path)
  local f = assert(io.open(path, "rb"))
  local spec = assert(json.decode(f:read("a")))
  f:close()
  return spec
end

local command = arg[1]
if command == "encode" then
  for _, packet in ipairs(read_spec(arg[2])) do print(to_hex(encode(packet))) end
elseif command == "decode" then
  for line in io.lines() do
    local decoded, err = osc.decode(from_hex(line))
    print(json.encode(decoded and plain(decoded) or { error = err }))
  end
elseif command == "send" then
  local socket = require("socket")
  local udp = socket.udp()
  for _, packet in ipairs(read_spec(arg[3])) do
    assert(udp:sendto(encode(packet), "127.0.0.1", tonumber(arg[2])))
  end
  udp:close()
elseif command == "receive" then
  local socket = require("socket")
  local udp = socket.udp()
  assert(udp:setsockname("127.0.0.1", 0))
  udp:settimeout(10)
  local _, port = udp:getsockname()
  print("PORT " .. port)
  io.stdout:flush()
  for _ = 1, tonumber(arg[2]) do
    local data = assert(udp:receive(65535))
    local decoded, err = osc.decode(data)
    print(json.encode(decoded and plain(decoded) or { error = err }))
    io.stdout:flush()
  end
else
  io.stderr:write("usage: run_osc.lua encode|decode|send|receive ...\n")
  os.exit(2)
end
