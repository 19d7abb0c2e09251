-- @noindex
-- VampBridge: running the auto-start command so that its fate can be told.
--
-- reaper.ExecProcess(command, -1) returns at once and says nothing about the command: one not
-- found, or a service that exits at once (a bad flag, a port in use), would look like a slow
-- start, and the script would wait for the whole startup_wait_s. So the command runs inside a
-- shell that writes its output to a log file and, when it ends, its exit status to a status file.
-- While the status file is missing, the command runs (the service is starting: loading models).
-- Once it is there, the command has ended: with a failure status, the log says why; with 0 it
-- may have started the service in the background, which is then waited for as before.

local autostart = {}

local function sh_quote(text) return "'" .. text:gsub("'", "'\\''") .. "'" end

local function is_windows() return (reaper.GetOS() or ""):match("^Win") ~= nil end

--- The folder for the log and status files: under Reaper's resource path.
function autostart.folder() return reaper.GetResourcePath() .. "/VampBridge" end

--- Starts `command` without waiting. Returns a process record, or nil and why.
function autostart.start(command, port)
  local dir = autostart.folder()
  reaper.RecursiveCreateDirectory(dir, 0)
  local process = {
    command = command,
    log = string.format("%s/service-%d.log", dir, port),
    status = string.format("%s/service-%d.status", dir, port),
    started_at = reaper.time_precise(),
  }
  os.remove(process.status)
  local wrapped
  if is_windows() then
    process.log, process.status = process.log:gsub("/", "\\"), process.status:gsub("/", "\\")
    wrapped = string.format('cmd.exe /V:ON /C "%s > "%s" 2>&1 & echo !errorlevel! > "%s""',
      command, process.log, process.status)
  else
    -- A subshell, so a command of several parts (`... & echo $! > pid`) keeps its own meaning;
    -- the newline ends a trailing comment of the command.
    wrapped = "/bin/sh -c " .. sh_quote(string.format("( %s\n) > %s 2>&1; echo $? > %s", command,
      sh_quote(process.log), sh_quote(process.status)))
  end
  -- ExecProcess returns nil on total failure; the shell's log file, created the moment the
  -- shell starts, confirms it (see autostart.failed_to_start).
  process.exec_failed = reaper.ExecProcess(wrapped, -1) == nil
  return process
end

--- True when the command certainly never ran: ExecProcess failed and no shell made its log file.
function autostart.failed_to_start(process)
  if not process.exec_failed then return false end
  local f = io.open(process.log, "r")
  if f then f:close() return false end
  return true
end

--- nil while the command runs; its exit status once it has ended.
function autostart.exit_status(process)
  local f = io.open(process.status, "r")
  if not f then return nil end
  local text = f:read("a") or ""
  f:close()
  return math.tointeger(tonumber(text:match("%-?%d+")))
end

--- The last lines the command printed.
function autostart.output_tail(process, max_lines)
  local f = io.open(process.log, "r")
  if not f then return "" end
  local lines = {}
  for line in f:lines() do
    lines[#lines + 1] = line
    if #lines > max_lines then table.remove(lines, 1) end
  end
  f:close()
  return table.concat(lines, "\n")
end

--- What to tell the user about a command that ended.
function autostart.explain_exit(process, code)
  local what
  if code == 127 or code == 9009 then
    what = "was not found (not installed, or not on the PATH Reaper sees)"
  elseif code == 126 then
    what = "could not be executed (not a program, or no permission)"
  else
    what = string.format("ended at once with status %d", code)
  end
  local text = string.format("The auto-start command \"%s\" %s.", process.command, what)
  local tail = autostart.output_tail(process, 6)
  if tail ~= "" then text = text .. "\nIt printed:\n" .. tail end
  return text .. "\n\nSet the right command in \"VampBridge - Settings\" (field \"Auto-start command\"), " ..
    "for example with the full path: /path/to/venv/bin/vampbridge serve --port {port}, or start the " ..
    "service yourself in a terminal: vampbridge serve"
end

return autostart
