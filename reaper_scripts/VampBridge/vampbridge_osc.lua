-- @noindex
-- VampBridge: OSC 1.0 encoder and decoder in plain Lua 5.4 (string.pack / string.unpack).
--
-- Messages are written the way liblo's lo_send is called: an address, a type tag string and
-- the values, one per tag that carries data:
--
--   osc.encode_message("/vampbridge/hello", "sis", "reaper-1", 50123, "")
--   osc.encode_message("/flags", "TFN")            -- T, F, N and I carry no value
--
-- Decoding returns plain tables:
--   { address = "/x", types = "sid", args = { "a", 1, 2.5 } }               -- a message
--   { bundle = true, timetag = 1, elements = { <message or bundle>, ... } }  -- a bundle
-- T decodes to true, F to false, N to osc.NIL and I to osc.INFINITUM, so that `args` never
-- has holes and `#args` always equals `#types`.
--
-- Everything on the wire is big-endian and every field is padded with zero bytes to a multiple
-- of four bytes. A string takes its bytes, one terminating zero and 0..3 more zeros; a blob takes
-- an int32 size, its bytes and 0..3 zeros (none when the size is already a multiple of four).

local osc = {}

osc.NIL = setmetatable({}, { __tostring = function() return "osc.NIL" end })
osc.INFINITUM = setmetatable({}, { __tostring = function() return "osc.INFINITUM" end })
osc.IMMEDIATELY = 1 -- the timetag meaning "now" (63 zero bits, then a one)

local BUNDLE_TAG = "#bundle"

local function pad_length(n)
  return (4 - n % 4) % 4
end

local function pack_string(s)
  -- The terminating zero is part of the string field; padding follows it.
  return s .. string.rep("\0", 1 + pad_length(#s + 1))
end

local function pack_blob(b)
  return string.pack(">i4", #b) .. b .. string.rep("\0", pad_length(#b))
end

local function as_integer(value, tag)
  local n = math.tointeger(value)
  if n == nil then
    error(string.format("OSC tag '%s' needs an integer, got %s", tag, tostring(value)), 3)
  end
  return n
end

local function as_number(value, tag)
  if type(value) ~= "number" then
    error(string.format("OSC tag '%s' needs a number, got %s", tag, tostring(value)), 3)
  end
  return value
end

local function as_string(value, tag)
  if type(value) ~= "string" then
    error(string.format("OSC tag '%s' needs a string, got %s", tag, tostring(value)), 3)
  end
  return value
end

-- Tags that carry no data.
local EMPTY_TAGS = { T = true, F = true, N = true, I = true }

-- One packer per data-carrying tag.
local PACKERS = {
  i = function(v) return string.pack(">i4", as_integer(v, "i")) end,
  h = function(v) return string.pack(">i8", as_integer(v, "h")) end,
  t = function(v) return string.pack(">i8", as_integer(v, "t")) end,
  f = function(v) return string.pack(">f", as_number(v, "f")) end,
  d = function(v) return string.pack(">d", as_number(v, "d")) end,
  s = function(v)
    v = as_string(v, "s")
    if v:find("\0", 1, true) then error("OSC strings cannot contain a zero byte", 3) end
    return pack_string(v)
  end,
  S = function(v)
    v = as_string(v, "S")
    if v:find("\0", 1, true) then error("OSC symbols cannot contain a zero byte", 3) end
    return pack_string(v)
  end,
  b = function(v) return pack_blob(as_string(v, "b")) end,
  c = function(v) return string.pack(">i4", as_integer(v, "c")) end,
  -- r (RGBA colour) and m (MIDI message) are four raw bytes, given as 4-byte strings.
  r = function(v)
    v = as_string(v, "r")
    if #v ~= 4 then error("OSC tag 'r' needs a 4-byte string", 3) end
    return v
  end,
  m = function(v)
    v = as_string(v, "m")
    if #v ~= 4 then error("OSC tag 'm' needs a 4-byte string", 3) end
    return v
  end,
}

--- Encodes one OSC message. `types` has one letter per argument (without the leading comma);
--- the values follow for the tags that carry data.
function osc.encode_message(address, types, ...)
  if type(address) ~= "string" or address:sub(1, 1) ~= "/" then
    error("an OSC address must be a string starting with '/', got " .. tostring(address), 2)
  end
  types = types or ""
  local parts = { pack_string(address), pack_string("," .. types) }
  local values = table.pack(...)
  local next_value = 1
  for tag in types:gmatch(".") do
    if not EMPTY_TAGS[tag] then
      local packer = PACKERS[tag]
      if not packer then error("unsupported OSC type tag '" .. tag .. "'", 2) end
      if next_value > values.n then
        error(string.format("OSC message %s: no value for tag '%s' (argument %d)",
          address, tag, next_value), 2)
      end
      parts[#parts + 1] = packer(values[next_value])
      next_value = next_value + 1
    end
  end
  if next_value <= values.n then
    error(string.format("OSC message %s: %d values for %d data tags in '%s'",
      address, values.n, next_value - 1, types), 2)
  end
  return table.concat(parts)
end

--- Encodes a bundle from already encoded packets (messages or bundles).
function osc.encode_bundle(timetag, elements)
  local parts = { pack_string(BUNDLE_TAG), string.pack(">i8", timetag or osc.IMMEDIATELY) }
  for _, element in ipairs(elements) do
    parts[#parts + 1] = string.pack(">s4", element) -- int32 size, then the element
  end
  return table.concat(parts)
end

-- Decoding ---------------------------------------------------------------------------------
-- The readers raise errors carrying a table so that osc.decode can tell a malformed packet
-- (reported as nil, message) from a bug in this file (re-raised).

local Malformed = {}

local function malformed(fmt, ...)
  error(setmetatable({ message = string.format(fmt, ...) }, Malformed), 0)
end

local function read_string(data, pos, limit)
  local zero = data:find("\0", pos, true)
  if not zero or zero > limit then malformed("string at byte %d has no terminating zero", pos) end
  local next_pos = pos + (zero - pos + 1) + pad_length(zero - pos + 1)
  if next_pos - 1 > limit then malformed("string at byte %d is not padded to 4 bytes", pos) end
  return data:sub(pos, zero - 1), next_pos
end

local function read_fixed(data, pos, limit, fmt, size)
  if pos + size - 1 > limit then malformed("packet ends inside an argument at byte %d", pos) end
  return string.unpack(fmt, data, pos)
end

local READERS = {
  i = function(d, p, l) return read_fixed(d, p, l, ">i4", 4) end,
  c = function(d, p, l) return read_fixed(d, p, l, ">i4", 4) end,
  h = function(d, p, l) return read_fixed(d, p, l, ">i8", 8) end,
  t = function(d, p, l) return read_fixed(d, p, l, ">i8", 8) end,
  f = function(d, p, l) return read_fixed(d, p, l, ">f", 4) end,
  d = function(d, p, l) return read_fixed(d, p, l, ">d", 8) end,
  r = function(d, p, l) return read_fixed(d, p, l, "c4", 4) end,
  m = function(d, p, l) return read_fixed(d, p, l, "c4", 4) end,
  s = read_string,
  S = read_string,
  b = function(d, p, l)
    local size, start = read_fixed(d, p, l, ">i4", 4)
    if size < 0 then malformed("negative blob size %d", size) end
    local next_pos = start + size + pad_length(size)
    if next_pos - 1 > l then malformed("blob of %d bytes runs past the packet end", size) end
    return d:sub(start, start + size - 1), next_pos
  end,
}

local EMPTY_VALUES = { T = true, F = false, N = osc.NIL, I = osc.INFINITUM }

local decode_element

local function decode_message(data, pos, limit)
  local address, types
  address, pos = read_string(data, pos, limit)
  if address:sub(1, 1) ~= "/" then malformed("address %q does not start with '/'", address) end
  if pos > limit then
    -- OSC 1.0 says a message without a type tag string should be tolerated.
    return { address = address, types = "", args = {} }
  end
  types, pos = read_string(data, pos, limit)
  if types:sub(1, 1) ~= "," then malformed("type tag string %q does not start with ','", types) end
  types = types:sub(2)
  local args = {}
  for tag in types:gmatch(".") do
    local value = EMPTY_VALUES[tag]
    if value == nil then
      local reader = READERS[tag]
      if not reader then malformed("unsupported type tag '%s'", tag) end
      value, pos = reader(data, pos, limit)
    end
    args[#args + 1] = value
  end
  if pos ~= limit + 1 then malformed("%d bytes left after the last argument", limit + 1 - pos) end
  return { address = address, types = types, args = args }
end

local function decode_bundle(data, pos, limit)
  local _, timetag
  _, pos = read_string(data, pos, limit)
  timetag, pos = read_fixed(data, pos, limit, ">i8", 8)
  local elements = {}
  while pos <= limit do
    local size
    size, pos = read_fixed(data, pos, limit, ">i4", 4)
    if size <= 0 or size % 4 ~= 0 then malformed("bundle element size %d is not a positive multiple of 4", size) end
    if pos + size - 1 > limit then malformed("bundle element of %d bytes runs past the end", size) end
    elements[#elements + 1] = decode_element(data, pos, pos + size - 1)
    pos = pos + size
  end
  return { bundle = true, timetag = timetag, elements = elements }
end

function decode_element(data, pos, limit)
  if (limit - pos + 1) % 4 ~= 0 then malformed("packet size %d is not a multiple of 4", limit - pos + 1) end
  if data:sub(pos, pos + #BUNDLE_TAG) == BUNDLE_TAG .. "\0" then
    return decode_bundle(data, pos, limit)
  end
  return decode_message(data, pos, limit)
end

--- Decodes a packet. Returns the message or bundle table, or nil and a reason when the packet
--- is not valid OSC 1.0 (never raises for bad input).
function osc.decode(packet)
  if type(packet) ~= "string" or #packet == 0 then return nil, "empty packet" end
  local ok, result = pcall(decode_element, packet, 1, #packet)
  if ok then return result end
  if getmetatable(result) == Malformed then return nil, result.message end
  error(result, 0)
end

--- Calls fn(message, timetag) for every message in a decoded packet, bundles flattened in order.
function osc.each_message(decoded, fn, timetag)
  if decoded.bundle then
    for _, element in ipairs(decoded.elements) do
      osc.each_message(element, fn, decoded.timetag)
    end
  else
    fn(decoded, timetag)
  end
end

return osc
