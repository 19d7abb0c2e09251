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
-- Before any of that, a plain command (no shell syntax) whose program is not on the PATH is told
-- at once, without running anything.

local autostart = {}

local function sh_quote(text) return "'" .. text:gsub("'", "'\\''") .. "'" end

local function is_windows() return (reaper.GetOS() or ""):match("^Win") ~= nil end

local function is_file(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

--- The program of a plain command when it cannot be found (an absolute path that does not exist,
--- or a name on none of the PATH's folders), else nil. Commands with shell syntax are left to
--- the shell, which says so itself (exit status 127).
function autostart.missing_program(command)
  if command:find("[;&|<>`$()*?]") then return nil end
  local rest = command
  local program
  while true do
    local word
    rest = rest:gsub("^%s+", "")
    if rest:sub(1, 1) == '"' or rest:sub(1, 1) == "'" then
      word, rest = rest:match("^(%b" .. rest:sub(1, 1):rep(2) .. ")(.*)$")
      if not word then return nil end
      word = word:sub(2, -2)
    else
      word, rest = rest:match("^(%S+)(.*)$")
      if not word then return nil end
    end
    if not word:match("^[%a_][%w_]*=") then program = word break end -- VAR=value prefixes
  end
  local windows = is_windows()
  if program:find("[/\\]") then
    return not is_file(program) and program or nil
  end
  local suffixes = windows and { "", ".exe", ".bat", ".cmd", ".com" } or { "" }
  for dir in ((os.getenv("PATH") or "") .. (windows and ";" or ":")):gmatch("(.-)" .. (windows and ";" or ":")) do
    for _, suffix in ipairs(suffixes) do
      if dir ~= "" and is_file(dir .. "/" .. program .. suffix) then return nil end
    end
  end
  return program
end

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
  -- ExecProcess returns nil on total failure (then nothing ran), or "<status>\n<output>" when it
  -- waited for the command; with -1 it does not wait, and the status file tells the rest.
  local result = reaper.ExecProcess(wrapped, -1)
  process.exec_failed = result == nil
  local code, output = tostring(result or ""):match("^(%-?%d+)\n(.*)$")
  process.exec_status, process.exec_output = math.tointeger(tonumber(code)), output
  return process
end

--- True when the command certainly never ran: ExecProcess failed and no shell made its log file.
function autostart.failed_to_start(process)
  return process.exec_failed and not is_file(process.log)
end

--- nil while the command runs; its exit status once it has ended.
function autostart.exit_status(process)
  if process.exec_status and process.exec_status ~= 0 then return process.exec_status end
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
  if tail == "" and process.exec_output then tail = process.exec_output:gsub("%s+$", "") end
  if tail ~= "" then text = text .. "\nIt printed:\n" .. tail end
  return text .. "\n\nSet the right command in \"VampBridge - Settings\" (field \"Auto-start command\"), " ..
    "for example with the full path: /path/to/venv/bin/vampbridge serve --port {port}, or start the " ..
    "service yourself in a terminal: vampbridge serve"
end

return autostart
