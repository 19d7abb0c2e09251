-- @noindex
-- VampBridge: UDP transport over LuaSocket and the request framing of docs/osc.md.
--
-- Nothing here ever blocks: sockets are non-blocking (settimeout(0)) and are polled from the
-- scripts' reaper.defer loop, about 30 times a second.

local osc = require("vampbridge_osc")

local net = {}

net.MAX_DATAGRAM_BYTES = 65000 -- docs/osc.md: the service refuses anything larger
local RECEIVE_BYTES = 65535     -- LuaSocket's receivefrom() reads only 8192 bytes by default

net.INSTALL_HELP = table.concat({
  "VampBridge needs LuaSocket, which Reaper does not include.",
  "",
  "Install it with ReaPack:",
  "  Extensions > ReaPack > Browse packages, search for \"mavriq-lua-sockets\",",
  "  right-click it > Install, then Apply, and restart Reaper.",
  "",
  "(ReaPack itself comes from https://reapack.com.)",
}, "\n")

--- Loads LuaSocket: first as installed by ReaPack's mavriq-lua-sockets package, then from the
--- ordinary Lua paths (which is how the tests find Debian's lua-socket).
--- Returns the socket module, or nil and a message saying how to install it.
function net.load_socket()
  if reaper and reaper.GetResourcePath then
    local dir = reaper.GetResourcePath() .. "/Scripts/Mavriq ReaScript Repository/Various/Mavriq-Lua-Sockets/"
    local is_windows = package.config:sub(1, 1) == "\\"
    local lib = is_windows and "?.dll" or "?.so"
    if not package.path:find(dir, 1, true) then
      package.path = dir .. "?.lua;" .. dir .. "?/init.lua;" .. package.path
      package.cpath = dir .. lib .. ";" .. dir .. "socket/" .. lib .. ";" .. package.cpath
    end
  end
  local ok, socket = pcall(require, "socket")
  if ok and type(socket) == "table" and socket.udp then return socket end
  return nil, net.INSTALL_HELP
end

local function is_loopback(host)
  return host == "localhost" or host:match("^127%.") ~= nil or host == "::1"
end
net.is_loopback = is_loopback

-- Endpoint: one non-blocking UDP socket ----------------------------------------------------

local Endpoint = {}
Endpoint.__index = Endpoint

--- Opens a UDP socket bound to bind_host:port (port 0 = any free port).
--- Returns the endpoint, or nil and a message.
function net.open(socket, bind_host, port)
  local udp, err = socket.udp()
  if not udp then return nil, "cannot create a UDP socket: " .. tostring(err) end
  udp:settimeout(0)
  local ok
  ok, err = udp:setsockname(bind_host, port or 0)
  if not ok then
    udp:close()
    return nil, string.format("cannot listen on UDP %s:%s (%s); is another program using that port?",
      bind_host, tostring(port), tostring(err))
  end
  local _, local_port = udp:getsockname()
  return setmetatable({ socket = socket, udp = udp, port = tonumber(local_port), resolved = {} }, Endpoint)
end

--- LuaSocket's sendto wants an IP address; host names are resolved once and remembered.
function Endpoint:resolve(host)
  if host:match("^%d+%.%d+%.%d+%.%d+$") then return host end
  if host == "localhost" then return "127.0.0.1" end
  local ip = self.resolved[host]
  if not ip then
    ip = self.socket.dns.toip(host)
    self.resolved[host] = ip
  end
  return ip
end

function Endpoint:send(host, port, packet)
  if #packet > net.MAX_DATAGRAM_BYTES then
    return nil, string.format("OSC packet of %d bytes is over the %d-byte limit", #packet, net.MAX_DATAGRAM_BYTES)
  end
  local ip = self:resolve(host)
  if not ip then return nil, "cannot resolve host " .. tostring(host) end
  return self.udp:sendto(packet, ip, port)
end

--- Reads every datagram waiting on the socket; returns a list of
--- { message = <decoded message>, ip = ..., port = ... }, bundles flattened.
--- Malformed datagrams are dropped (counted in self.dropped).
function Endpoint:receive_all()
  local received = {}
  while true do
    local data, ip, port = self.udp:receivefrom(RECEIVE_BYTES)
    if not data then break end -- "timeout": nothing more for now
    local decoded = osc.decode(data)
    if decoded then
      osc.each_message(decoded, function(message)
        received[#received + 1] = { message = message, ip = ip, port = tonumber(port) }
      end)
    else
      self.dropped = (self.dropped or 0) + 1
    end
  end
  return received
end

function Endpoint:close()
  if self.udp then self.udp:close() end
  self.udp = nil
end

-- The per-user secret (docs/osc.md, Transport) ---------------------------------------------

--- The folder where VampBridge keeps its files, computed as bridge/paths.py data_dir() does:
--- $VAMPBRIDGE_DATA_DIR, else the platform's per-user data folder.
function net.data_dir()
  local function env(name)
    local value = os.getenv(name)
    if value ~= nil and value ~= "" then return value end
  end
  local home = env("HOME") or env("USERPROFILE") or ""
  local override = env("VAMPBRIDGE_DATA_DIR")
  if override then return (override:gsub("^~", function() return home end)) end
  local os_name = reaper and reaper.GetOS and reaper.GetOS() or ""
  if os_name:match("^OSX") or os_name:match("^macOS") then
    return home .. "/Library/Application Support/VampBridge"
  end
  if package.config:sub(1, 1) == "\\" then
    return (env("APPDATA") or (home .. "\\AppData\\Roaming")) .. "\\VampBridge"
  end
  return (env("XDG_DATA_HOME") or (home .. "/.local/share")) .. "/vampbridge"
end

--- The secret the service created in the data folder (one line of URL-safe text), or "" when
--- there is none yet (no service has started for this user).
function net.read_secret()
  local file = io.open(net.data_dir() .. package.config:sub(1, 1) .. "secret", "rb")
  if not file then return "" end
  local text = file:read(1000) or ""
  file:close()
  return text:match("^%s*([%w_%-]+)%s*$") or ""
end

--- The token requests carry: the one set in the settings, else the per-user secret.
function net.token(settings)
  if settings.token and settings.token ~= "" then return settings.token end
  return net.read_secret()
end

-- Client: requests to the service ---------------------------------------------------------

local Client = {}
Client.__index = Client

local request_counter = 0

--- A client of the service at settings.host:settings.port. Replies come back to the client's
--- own ephemeral port, which every request names as its reply_port.
function net.client(socket, settings)
  local bind_host = is_loopback(settings.host) and "127.0.0.1" or "*"
  local endpoint, err = net.open(socket, bind_host, 0)
  if not endpoint then return nil, err end
  -- Request ids must be unique per client across runs, so they carry the start time and a
  -- random part as well as a counter.
  local prefix = string.format("reaper-%d-%04x", os.time(), math.random(0, 0xffff))
  return setmetatable({
    endpoint = endpoint, host = settings.host, port = settings.port,
    token = net.token(settings), settings = settings, prefix = prefix,
  }, Client)
end

function Client:new_id()
  request_counter = request_counter + 1
  return string.format("%s-%d", self.prefix, request_counter)
end

--- Sends /vampbridge/<name> with id, reply_port and token first. `id` may be nil (a new one is
--- made). Returns the id, or nil and a message.
function Client:send(name, id, types, ...)
  id = id or self:new_id()
  -- An auto-started service creates the secret after this client was made: read it again.
  if self.token == "" then self.token = net.token(self.settings) end
  local packet = osc.encode_message("/vampbridge/" .. name, "sis" .. (types or ""),
    id, self.endpoint.port, self.token, ...)
  local ok, err = self.endpoint:send(self.host, self.port, packet)
  if not ok then return nil, err end
  return id
end

--- Replies waiting now, as a list of { address = "<name without /vampbridge/>", args = {...},
--- types = ... }. Messages from elsewhere than /vampbridge/ are ignored.
function Client:receive()
  local replies = {}
  for _, r in ipairs(self.endpoint:receive_all()) do
    local name = r.message.address:match("^/vampbridge/(.+)$")
    if name then
      replies[#replies + 1] = { address = name, args = r.message.args, types = r.message.types }
    end
  end
  return replies
end

function Client:close()
  self.endpoint:close()
end

return net
