-- @noindex
-- VampBridge: a session's connection to the service (part of the Session of vampbridge_jobs.lua,
-- whose methods these are): hello until it answers, the preset check against its `hello`, the
-- auto-start command when nothing answers (vampbridge_autostart.lua), and what to tell the user
-- when it cannot be reached.

local json = require("vampbridge_json")
local settings_mod = require("vampbridge_settings")
local autostart_mod = require("vampbridge_autostart")

local HELLO_INTERVAL_S = 0.5  -- hello is re-sent this often while connecting
local AUTOSTART_AFTER_S = 1   -- a service on this computer answers hello at once: start it after this
local AUTOSTART_CHECK_S = 2   -- by then an auto-start shell that runs has created its log file
local MAX_AUTOSTARTS = 3      -- per session, so a crashing service is not restarted forever

local Connection = {}

local function console(text)
  reaper.ShowConsoleMsg("VampBridge: " .. text .. "\n")
end

function Connection:connect()
  self.conn = "connecting"
  self.connect_deadline = self:now() + math.min(self.settings.reply_timeout_s, AUTOSTART_AFTER_S)
  self.last_hello = -math.huge
end

function Connection:send_hello()
  self.last_hello = self:now()
  self:request("hello", {
    on_reply = function(reply) self:on_hello(reply) end,
    on_timeout = function() end, -- the connect deadline decides
  }, "")
end

function Connection:on_hello(reply)
  if reply.address == "error" then
    local code, message = reply.args[2], reply.args[3]
    if code == "bad_token" then
      self:fail_connection("the service refused the token. Set the same token in VampBridge " ..
        "settings as the service's --token.")
    else
      self:fail_connection(string.format("hello failed (%s: %s)", tostring(code), tostring(message)))
    end
    return
  end
  if self.conn ~= "connecting" then return end
  if reply.args[2] ~= 1 then
    self:problem(string.format("the service speaks protocol version %s, this script version 1; " ..
      "update VampBridge on both sides", tostring(reply.args[2])))
  end
  self.service_info = { engine_version = reply.args[3], device = reply.args[4] }
  -- A service still loading its models answers hello with device "loading": it is starting.
  if reply.args[4] == "loading" then self.loading_since = self.loading_since or self:now() end
  if self.check_preset and not self:preset_known(reply.args[7]) then return end
  self.conn = "ready"
  -- Hellos sent while waiting are answered too; they need no more attention.
  for id, request in pairs(self.requests) do
    if request.name == "hello" then self.requests[id] = nil end
  end
  self.autostarts_this_outage = 0
  self.process = nil
  local reconnect = self.connected_once
  self.connected_once = true
  if self.recover or reconnect then self:ask_pending() end
  for _, id in ipairs(self.job_order) do
    local job = self.jobs[id]
    if job.state ~= "finished" then
      if not job.sent then self:send_job(job) else self:probe(job) end
    end
  end
  if self.on_ready then self.on_ready(self) end
end

--- False (and every job ended with a message) when the service's hello lists its presets and
--- the mask preset setting is not among them.
function Connection:preset_known(presets_json)
  local preset = self.check_preset
  local presets = type(presets_json) == "string" and json.decode(presets_json) or nil
  local names = type(presets) == "table" and presets.mask or nil
  if type(names) ~= "table" or #names == 0 or preset:match("^%s*[{@]") then return true end
  for _, name in ipairs(names) do if name == preset then return true end end
  self:fail_connection(string.format("The service has no mask preset \"%s\" (it has: %s). Choose one in " ..
    "\"VampBridge - Settings\" (field \"Default preset\").", preset, table.concat(names, ", ")))
  return false
end

function Connection:service_address()
  return string.format("%s:%d", self.settings.host, self.settings.port)
end

function Connection:connection_step(now)
  if now - self.last_hello >= HELLO_INTERVAL_S then self:send_hello() end
  if self.process and not self.process.exited then
    -- The auto-start command ran: has it ended (not found, a bad flag, a port in use)?
    local code = autostart_mod.exit_status(self.process)
    if code == nil and now - self.process.started_at > AUTOSTART_CHECK_S and autostart_mod.failed_to_start(self.process) then
      local command = self.process.command
      self.process = nil
      self:fail_connection(string.format("The VampBridge service at %s does not answer, and the auto-start " ..
        "command \"%s\" could not be run. Check it in \"VampBridge - Settings\" (field " ..
        "\"Auto-start command\"), or start the service yourself: vampbridge serve", self:service_address(), command))
      return
    elseif code == 0 then
      self.process.exited = true -- it may have started the service in the background: wait for it
    elseif code ~= nil then
      local process = self.process
      self.process = nil
      self:fail_connection(string.format("The VampBridge service at %s does not answer, and could not " ..
        "be started.\n", self:service_address()) .. autostart_mod.explain_exit(process, code))
      return
    end
  end
  if now < self.connect_deadline then return end
  local command = settings_mod.autostart_command(self.settings)
  if self.autostart and command ~= "" and (self.autostarts_this_outage or 0) == 0
      and self.autostarts < MAX_AUTOSTARTS then
    self.autostarts = self.autostarts + 1
    self.autostarts_this_outage = 1
    local missing = autostart_mod.missing_program(command)
    if missing then
      self:fail_connection(string.format("The VampBridge service at %s does not answer, and the auto-start " ..
        "command \"%s\" cannot run: the program \"%s\" was not found (not installed, or not on the PATH " ..
        "Reaper sees).\n\nSet the right command in \"VampBridge - Settings\" (field \"Auto-start command\"), " ..
        "for example with the full path: /path/to/venv/bin/vampbridge serve --port {port}, or start the " ..
        "service yourself in a terminal: vampbridge serve", self:service_address(), command, missing))
      return
    end
    console(string.format("the service at %s does not answer; starting it: %s", self:service_address(), command))
    self.process = autostart_mod.start(command, self.settings.port)
    self.autostart_command = command
    self.connect_deadline = now + self.settings.startup_wait_s
    return
  end
  local text = string.format("the VampBridge service at %s does not answer", self:service_address())
  if self.process and self.process.exited then
    text = text .. string.format(" (the auto-start command \"%s\" finished, but nothing answered within %g s; " ..
      "its output is in %s)", self.autostart_command, self.settings.startup_wait_s, self.process.log)
  elseif self.process then
    text = text .. string.format(" (started with \"%s\", then waited %g s; it is still running, so it may be " ..
      "loading its models: raise startup_wait_s, or look at its output in %s)", self.autostart_command,
      self.settings.startup_wait_s, self.process.log)
  elseif self.autostart_command then
    text = text .. string.format(" (started once with \"%s\" already)", self.autostart_command)
  end
  self.process = nil
  self:fail_connection(text .. ".\nStart it yourself (vampbridge serve), or check the host, port and " ..
    "auto-start command in \"VampBridge - Settings\" and that no firewall blocks UDP on that port.")
end

function Connection:fail_connection(text)
  if self.quiet then
    -- The Listener just tries again later.
    self.conn = "idle"
    self.retry_at = self:now() + self.settings.listener_poll_s
    return
  end
  self.conn = "failed"
  local accepted = 0
  for _, job in pairs(self.jobs) do
    if job.state ~= "finished" then
      if job.accepted then accepted = accepted + 1 end
      self:finish_job(job, false)
    end
  end
  if accepted > 0 then
    text = text .. string.format("\n\n%d job(s) had started. If the service comes back, run " ..
      "\"VampBridge - Listener\" (or vamp again) to collect their finished variations.", accepted)
  end
  self.problems[#self.problems + 1] = text
end

return Connection
