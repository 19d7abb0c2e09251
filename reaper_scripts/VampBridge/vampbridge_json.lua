-- @noindex
-- VampBridge: the small JSON subset the protocol needs (docs/osc.md): `status` replies carry a
-- JSON list of jobs, `hello` carries JSON lists and objects. Decodes objects, arrays, strings
-- (with \u escapes, surrogate pairs included), numbers, true, false and null (as json.null).
-- Encodes the same, with object keys sorted so the output is stable.

local json = {}

json.null = setmetatable({}, { __tostring = function() return "json.null" end })

local ESCAPES = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }

local function fail(text, pos, what)
  error(string.format("JSON: %s at character %d", what, pos), 0)
end

local function skip_space(text, pos)
  return text:find("[^ \t\r\n]", pos) or #text + 1
end

local decode_value

local function decode_string(text, pos)
  local parts = {}
  local i = pos + 1
  while true do
    local c = text:sub(i, i)
    if c == "" then fail(text, pos, "unterminated string") end
    if c == '"' then return table.concat(parts), i + 1 end
    if c == "\\" then
      local e = text:sub(i + 1, i + 1)
      if e == "u" then
        local code = tonumber(text:sub(i + 2, i + 5), 16)
        if not code then fail(text, i, "bad \\u escape") end
        i = i + 6
        if code >= 0xD800 and code <= 0xDBFF and text:sub(i, i + 1) == "\\u" then
          local low = tonumber(text:sub(i + 2, i + 5), 16)
          if low and low >= 0xDC00 and low <= 0xDFFF then
            code = 0x10000 + (code - 0xD800) * 0x400 + (low - 0xDC00)
            i = i + 6
          end
        end
        parts[#parts + 1] = utf8.char(code)
      elseif ESCAPES[e] then
        parts[#parts + 1] = ESCAPES[e]
        i = i + 2
      else
        fail(text, i, "bad escape")
      end
    else
      local run_end = text:find('["\\]', i) or #text + 1
      parts[#parts + 1] = text:sub(i, run_end - 1)
      i = run_end
    end
  end
end

local function decode_array(text, pos)
  local result = {}
  pos = skip_space(text, pos + 1)
  if text:sub(pos, pos) == "]" then return result, pos + 1 end
  while true do
    result[#result + 1], pos = decode_value(text, pos)
    pos = skip_space(text, pos)
    local c = text:sub(pos, pos)
    if c == "]" then return result, pos + 1 end
    if c ~= "," then fail(text, pos, "expected ',' or ']'") end
    pos = skip_space(text, pos + 1)
  end
end

local function decode_object(text, pos)
  local result = {}
  pos = skip_space(text, pos + 1)
  if text:sub(pos, pos) == "}" then return result, pos + 1 end
  while true do
    if text:sub(pos, pos) ~= '"' then fail(text, pos, "expected a string key") end
    local key
    key, pos = decode_string(text, pos)
    pos = skip_space(text, pos)
    if text:sub(pos, pos) ~= ":" then fail(text, pos, "expected ':'") end
    result[key], pos = decode_value(text, skip_space(text, pos + 1))
    pos = skip_space(text, pos)
    local c = text:sub(pos, pos)
    if c == "}" then return result, pos + 1 end
    if c ~= "," then fail(text, pos, "expected ',' or '}'") end
    pos = skip_space(text, pos + 1)
  end
end

local LITERALS = { ["true"] = true, ["false"] = false, null = json.null }

function decode_value(text, pos)
  pos = skip_space(text, pos)
  local c = text:sub(pos, pos)
  if c == "{" then return decode_object(text, pos) end
  if c == "[" then return decode_array(text, pos) end
  if c == '"' then return decode_string(text, pos) end
  local number = text:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
  if number and number ~= "" and number ~= "-" then
    local value = tonumber(number)
    if value == nil then fail(text, pos, "bad number") end
    return value, pos + #number
  end
  for word, value in pairs(LITERALS) do
    if text:sub(pos, pos + #word - 1) == word then return value, pos + #word end
  end
  fail(text, pos, "unexpected character " .. string.format("%q", c))
end

--- Decodes a JSON text. Returns the value, or nil and a message when the text is not JSON.
function json.decode(text)
  local ok, value, pos = pcall(decode_value, text, 1)
  if not ok then return nil, value end
  if skip_space(text, pos) <= #text then return nil, "JSON: trailing characters at " .. pos end
  return value
end

local function encode_string(s)
  return '"' .. s:gsub('[%c"\\]', function(c)
    local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
    return named[c] or string.format("\\u%04x", c:byte())
  end) .. '"'
end

local function is_array(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

function json.encode(value)
  local kind = type(value)
  if value == json.null or value == nil then return "null" end
  if kind == "boolean" then return tostring(value) end
  if kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then
      error("JSON cannot hold " .. tostring(value), 2)
    end
    if math.type(value) == "integer" then return tostring(value) end
    return string.format("%.17g", value)
  end
  if kind == "string" then return encode_string(value) end
  if kind == "table" then
    local parts = {}
    if next(value) ~= nil and is_array(value) then
      for i = 1, #value do parts[i] = json.encode(value[i]) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    if next(value) == nil then return "[]" end
    local keys = {}
    for k in pairs(value) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    for i, k in ipairs(keys) do
      local v = value[k]
      if v == nil then v = value[tonumber(k)] end
      parts[i] = encode_string(k) .. ":" .. json.encode(v)
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  error("JSON cannot hold a " .. kind, 2)
end

return json
