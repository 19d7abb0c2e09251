-- A test double of the ReaScript `reaper` API used by the VampBridge scripts: an in-memory
-- project (tracks, items, takes, sources and sections, selection, time selection and loop points,
-- repeat, the project sample rate and whether it is in force, a tempo map of tempo and
-- time-signature markers), ExtState, P_EXT, GUIDs, a state-based undo history and the project's
-- dirty flag, the PreventUIRefresh counter, a defer queue the test drives, a gfx window that
-- records what it showed, and captured user interaction (MB, ShowConsoleMsg, GetUserInputs,
-- ExecProcess, which really runs the command unless double.on_exec stands in for it).
-- Items and takes keep their parameters by the API's names (D_PLAYRATE, I_CHANMODE, B_LOOPSRC,
-- D_FADEINLEN, ...); a parameter Reaper does not have reads as 0 and cannot be set, as in Reaper.
-- Every function here is in REAPER's documented API (tests/test_reaper_api_names.py checks it).
--
-- Undo works as in Reaper: an undo point stores the state of the project (here: tracks, items
-- and all their parameters, takes with their names, sources, parameters, P_EXT, the active take) with a
-- description, and undoing the latest point restores the state stored by the point before it (or
-- the project as loaded). Points are made by Undo_EndBlock (closing the outermost block),
-- Undo_OnStateChange*, and automatically when a script that did not defer ends without having
-- made one ("ReaScript: Run"); a deferred script gets none unless it makes one. Changes are
-- also logged one by one (double.changes), and each point lists those made since the point before.
--
-- Signatures and return conventions follow Reaper's ReaScript documentation, e.g.
-- GetSetMediaItemTakeInfo_String returns (retval, string) and GetUserInputs (retval, csv).
-- Objects that Reaper hands out as pointers are tables here; scripts only pass them back.
--
--   local double = dofile("tests/lua/reaper_double.lua")
--   reaper = double.api
--   local item = double.add_item{ track = 1, position_s = 2, length_s = 1, source = {...} }
--   double.run_script("reaper_scripts/VampBridge/VampBridge - Vamp selected items.lua")
--   double.pump_until(function() return #double.undo_log == 1 end, 10)
--   reaper.Undo_DoUndo2(0)   -- back to the state of the point before

local ok_socket, socket = pcall(require, "socket")

local double = {}
local api = {}
double.api = api

-- State ---------------------------------------------------------------------------------------

function double.reset()
  double.project = {
    tracks = {},
    file = "/tmp/vampbridge-test/song.rpp", -- "" for a project never saved
    media_path = "/tmp/vampbridge-test/Media",
    sample_rate = 0,                          -- PROJECT_SRATE
    sample_rate_in_force = false,             -- PROJECT_SRATE_USE: off = the audio device's rate
    time_selection = { 0, 0 },
    loop_points = nil,                        -- nil: linked to the time selection (Reaper's default)
    repeat_on = false,                        -- transport repeat (GetSetRepeat)
    -- The tempo map: markers at measure starts (bpm in quarter notes per minute).
    tempo = { { measure = 0, bpm = 120, num = 4, denom = 4 } },
  }
  double.dirty = false           -- IsProjectDirty: any change or undo point since the project was loaded
  double.os = "Linux-x86_64"     -- GetOS
  double.status_frames = {}      -- what the gfx status window showed, one entry per different frame
  double.gfx_state = { open = false, closed_by_user = false, frame = {} }
  double.ext_state = {}          -- section -> key -> { value, persist }
  double.undo_log = {}           -- the undo history: { description, flags, changes, state, auto }
  double.undo_position = 0       -- how many points of undo_log the project is at (undo lowers it)
  double.undo_baseline = nil     -- the project as loaded: what undoing the first point restores
  double.changes = {}            -- every change, in order, with .undo_block set when inside one
  double.changes_at_last_point = 0
  double.undo_depth = 0
  double.objects = {}            -- GUID -> track, item or take, also deleted ones (undo brings them back)
  double.ui_refresh_prevented = 0
  double.messages = {}           -- MB calls: { message, title, type }
  double.console = {}            -- ShowConsoleMsg texts
  double.exec_log = {}           -- ExecProcess calls: { command, timeout_ms }
  double.on_exec = nil           -- optional function(command) -> output
  double.mb_answers = {}         -- scripted MB return values (default 1 = OK)
  double.user_inputs = {}        -- scripted GetUserInputs answers: list of strings, or false
  double.dialogs = {}            -- GetUserInputs calls: { title, captions, defaults }
  double.commands = {}           -- Main_OnCommand calls
  double.toggle_states = {}      -- "section:command" -> state
  double.toolbar_refreshes = 0
  double.scripts = {}            -- every script run: { path, alive, atexit = {}, errors = {} }
  double.defer_queue = {}        -- { fn, script }
  double.errors = {}             -- script errors, as Reaper would show them
  double.clock_offset_s = 0
  double.guid_counter = 0
  double.resource_path = "/tmp/vampbridge-test/resource"
  double.current_script = nil
  double.next_command_id = 55000
end

local function new_guid()
  double.guid_counter = double.guid_counter + 1
  local n = double.guid_counter
  return string.format("{%08X-%04X-%04X-%04X-%012X}", 0x5EED0000 + n, n % 0x10000, 0x4000 + n % 0x1000,
    0x8000 + n % 0x4000, 0xABC000000000 + n)
end

local function copy(t)
  local c = {}
  for k, v in pairs(t) do c[k] = v end
  return c
end

local function change(op, fields)
  fields.op = op
  fields.undo_block = double.undo_depth > 0
  double.changes[#double.changes + 1] = fields
  double.dirty = true
end

local function now_s()
  local t = ok_socket and socket.gettime() or os.time()
  return t + double.clock_offset_s
end

--- Moves the clock forward (time_precise), to reach timeouts without waiting.
function double.advance(seconds) double.clock_offset_s = double.clock_offset_s + seconds end

-- Building a project (test side) -------------------------------------------------------------

local function read_wav_header(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local data = f:read(4096) or ""
  f:close()
  if data:sub(1, 4) ~= "RIFF" or data:sub(9, 12) ~= "WAVE" then return nil end
  local pos, info = 13, {}
  while pos + 8 <= #data do
    local id, size = data:sub(pos, pos + 3), string.unpack("<I4", data, pos + 4)
    if id == "fmt " then
      info.channels, info.sample_rate = string.unpack("<I2I4", data, pos + 10)
      info.block_align = string.unpack("<I2", data, pos + 20)
    elseif id == "data" then
      info.data_bytes = size
      break
    end
    pos = pos + 8 + size + size % 2
  end
  if not (info.channels and info.data_bytes) then return nil end
  info.length_s = info.data_bytes / info.block_align / info.sample_rate
  return info
end
double.read_wav_header = read_wav_header

--- A source: { file, sample_rate, channels, length_s, type = "WAVE" | "MIDI", parent }.
--- With only `file`, the rest is read from the file's WAV header (as Reaper would).
--- A section of another source: { section = { offset_s, length_s, reversed }, parent = <spec or source> }
--- (no file of its own; its length is the section's).
function double.source(spec)
  if spec.section then
    local parent = spec.parent.kind == "source" and spec.parent or double.source(spec.parent)
    return { kind = "source", file = "", type = "SECTION", parent = parent, length_s = spec.section.length_s,
      section = { offset_s = spec.section.offset_s, length_s = spec.section.length_s,
                  reversed = spec.section.reversed or false },
      sample_rate = parent.sample_rate, channels = parent.channels, peaks_built = false, offline = false }
  end
  local source = { kind = "source", file = spec.file or "", type = spec.type or "WAVE",
    sample_rate = spec.sample_rate, channels = spec.channels, length_s = spec.length_s,
    parent = spec.parent, peaks_built = false, offline = false }
  if source.type == "WAVE" and source.file ~= "" and not source.sample_rate then
    local info = read_wav_header(source.file)
    if info then
      source.sample_rate, source.channels, source.length_s = info.sample_rate, info.channels, info.length_s
    else
      source.offline = true -- Reaper keeps a missing file as an offline source
      source.sample_rate, source.channels, source.length_s = 0, 0, 0
    end
  end
  if source.type == "MIDI" then source.sample_rate, source.channels = 0, 0 end
  return source
end

-- Items and takes keep their parameters in `values` (by the API's names); the fields tests use
-- (item.position_s, take.playrate, ...) are aliases of them.
local ITEM_ALIASES = { position_s = "D_POSITION", length_s = "D_LENGTH" }
local ITEM_FLAGS = { selected = "B_UISEL", loop_source = "B_LOOPSRC" }
local TAKE_ALIASES = { startoffs_s = "D_STARTOFFS", playrate = "D_PLAYRATE", chanmode = "I_CHANMODE" }
local function alias_meta(aliases, flags)
  return {
    __index = function(t, k)
      local values = rawget(t, "values")
      if aliases[k] then return values[aliases[k]] end
      if flags and flags[k] then return values[flags[k]] ~= 0 end
    end,
    __newindex = function(t, k, v)
      local values = rawget(t, "values")
      if aliases[k] then values[aliases[k]] = v
      elseif flags and flags[k] then values[flags[k]] = v and 1 or 0
      else rawset(t, k, v) end
    end,
  }
end
local META = { item = alias_meta(ITEM_ALIASES, ITEM_FLAGS), take = alias_meta(TAKE_ALIASES) }

local function register(object)
  if META[object.kind] then
    object.values = object.values or {}
    setmetatable(object, META[object.kind])
  end
  double.objects[object.guid] = object
  return object
end

function double.add_track()
  local track = register({ kind = "track", items = {}, guid = new_guid() })
  double.project.tracks[#double.project.tracks + 1] = track
  return track
end

-- Take parameters (GetMediaItemTakeInfo_Value) and their values in a take AddTakeToMediaItem makes.
local TAKE_DEFAULTS = { D_STARTOFFS = 0, D_PLAYRATE = 1, B_PPITCH = 0, D_PITCH = 0, I_PITCHMODE = -1,
  D_VOL = 1, D_PAN = 0, D_PANLAW = -1, I_CHANMODE = 0, I_CUSTOMCOLOR = 0, I_STRETCHFLAGS = 0 }
double.TAKE_DEFAULTS = TAKE_DEFAULTS
-- Item parameters (GetMediaItemInfo_Value) and the values of a new item.
local ITEM_DEFAULTS = { D_POSITION = 0, D_LENGTH = 1, B_LOOPSRC = 0, B_MUTE = 0, C_LOCK = 0, B_UISEL = 0,
  D_VOL = 1, D_SNAPOFFSET = 0, D_FADEINLEN = 0, D_FADEOUTLEN = 0, C_FADEINSHAPE = 0, C_FADEOUTSHAPE = 0,
  D_FADEINLEN_AUTO = -1, D_FADEOUTLEN_AUTO = -1, I_CUSTOMCOLOR = 0, B_ALLTAKESPLAY = 0 }
double.ITEM_DEFAULTS = ITEM_DEFAULTS

local function new_take(item, source)
  local values = {}
  for k, v in pairs(TAKE_DEFAULTS) do values[k] = v end
  return register({ kind = "take", item = item, source = source, name = "", values = values,
    guid = new_guid(), ext = {} })
end

--- An item with one take: { track = n, position_s, length_s, startoffs_s, playrate, name,
--- source = <double.source spec or source>, selected = true, loop_source = false,
--- item = { PARM = value } (more item parameters), take = { PARM = value } (more take parameters) }.
function double.add_item(spec)
  local tracks = double.project.tracks
  local track_index = spec.track or 1
  while #tracks < track_index do double.add_track() end
  local track = tracks[track_index]
  local values = {}
  for k, v in pairs(ITEM_DEFAULTS) do values[k] = v end
  for k, v in pairs(spec.item or {}) do values[k] = v end
  values.D_POSITION, values.D_LENGTH = spec.position_s or 0, spec.length_s or 1
  values.B_LOOPSRC = spec.loop_source and 1 or values.B_LOOPSRC
  values.B_UISEL = spec.selected ~= false and 1 or 0
  local item = register({ kind = "item", track = track, values = values, takes = {}, guid = new_guid(), ext = {} })
  if spec.source then
    local source = spec.source.kind == "source" and spec.source or double.source(spec.source)
    local take = new_take(item, source)
    take.name = spec.name or (source.file:match("([^/\\]+)$") or "")
    for k, v in pairs(spec.take or {}) do take.values[k] = v end
    take.values.D_STARTOFFS = spec.startoffs_s or take.values.D_STARTOFFS
    take.values.D_PLAYRATE = spec.playrate or take.values.D_PLAYRATE
    item.takes[1] = take
    item.active = take
  end
  track.items[#track.items + 1] = item
  return item
end

local function all_items()
  local list = {}
  for _, track in ipairs(double.project.tracks) do
    local sorted = {}
    for _, item in ipairs(track.items) do sorted[#sorted + 1] = item end
    table.sort(sorted, function(a, b) return a.position_s < b.position_s end)
    for _, item in ipairs(sorted) do list[#list + 1] = item end
  end
  return list
end
double.all_items = all_items

--- What a user does while a script runs. These change the project without an undo point; follow
--- them with double.user_undo_point(...) where the test needs the point Reaper's own action makes.
function double.move_item(item, position_s, track_index)
  item.position_s = position_s
  if track_index then
    while #double.project.tracks < track_index do double.add_track() end
    local from, to = item.track, double.project.tracks[track_index]
    for i, it in ipairs(from.items) do if it == item then table.remove(from.items, i) break end end
    to.items[#to.items + 1] = item
    item.track = to
  end
end

function double.delete_item(item)
  for i, it in ipairs(item.track.items) do
    if it == item then table.remove(item.track.items, i) break end
  end
  item.deleted = true
end

function double.set_time_selection(start_s, end_s)
  double.project.time_selection = { start_s, end_s }
end

function double.find_item(guid)
  for _, item in ipairs(all_items()) do if item.guid == guid then return item end end
end

-- Scripts, defer and atexit -------------------------------------------------------------------

local function script_error(script, err)
  local text = string.format("%s: %s", script and script.path or "?", tostring(err))
  double.errors[#double.errors + 1] = text
  if script then script.errors[#script.errors + 1] = text end
end

local function end_script(script)
  if not script.alive then return end
  script.alive = false
  for i = #double.defer_queue, 1, -1 do
    if double.defer_queue[i].script == script then table.remove(double.defer_queue, i) end
  end
  local previous = double.current_script
  double.current_script = script
  for _, fn in ipairs(script.atexit) do
    local ok, err = pcall(fn)
    if not ok then script_error(script, err) end
  end
  double.current_script = previous
end

local function has_deferred(script)
  for _, entry in ipairs(double.defer_queue) do
    if entry.script == script then return true end
  end
  return false
end

--- Runs a script file the way Reaper does: as a main chunk, with `reaper` global. Each run gets
--- fresh copies of the VampBridge modules (Reaper gives every script its own Lua state).
--- Returns the script record.
function double.run_script(path, command_id)
  for name in pairs(package.loaded) do
    if name:match("^vampbridge") then package.loaded[name] = nil end
  end
  if not command_id then
    command_id = double.next_command_id
    double.next_command_id = double.next_command_id + 1
  end
  double.load_project()
  local script = { path = path, alive = true, atexit = {}, errors = {}, command_id = command_id, undo_points = 0 }
  double.scripts[#double.scripts + 1] = script
  local previous = double.current_script
  double.current_script = script
  local chunk, err = loadfile(path)
  local ok = chunk ~= nil
  if chunk then
    local run_err
    ok, run_err = pcall(chunk)
    if not ok then script_error(script, run_err) end
  else
    script_error(script, err)
  end
  if not has_deferred(script) then
    -- A script that ran to its end without deferring gets an undo point of its own unless it
    -- made one; calling defer() is how a script avoids it.
    if ok and script.undo_points == 0 then double.add_undo_point("ReaScript: Run", -1, true) end
    end_script(script)
  end
  double.current_script = previous
  return script
end

--- Stops a running script as Reaper does when the user terminates it: its deferred functions
--- are dropped and its atexit functions run.
function double.terminate(script) end_script(script) end

--- Runs one defer cycle: every function deferred before the cycle began, once.
function double.pump_once()
  local queue = double.defer_queue
  double.defer_queue = {}
  local ran = {}
  for _, entry in ipairs(queue) do
    if entry.script.alive then
      ran[entry.script] = true
      local previous = double.current_script
      double.current_script = entry.script
      local ok, err = pcall(entry.fn)
      double.current_script = previous
      if not ok then
        script_error(entry.script, err)
        end_script(entry.script) -- Reaper stops a script that raised an error
      end
    end
  end
  for script in pairs(ran) do
    if script.alive and not has_deferred(script) then end_script(script) end
  end
  return #queue
end

--- Runs n defer cycles.
function double.pump(n)
  for _ = 1, n or 1 do double.pump_once() end
end

--- Runs defer cycles until predicate() is true; raises after timeout_s of real time. Between
--- cycles it waits a couple of milliseconds, like Reaper's ~30 Hz timer but faster.
function double.pump_until(predicate, timeout_s, what)
  local deadline = (ok_socket and socket.gettime() or os.time()) + (timeout_s or 10)
  while not predicate() do
    if (ok_socket and socket.gettime() or os.time()) > deadline then
      error(string.format("timed out after %gs waiting for %s", timeout_s or 10, what or "the condition"), 2)
    end
    double.pump_once()
    if ok_socket then socket.sleep(0.002) end
  end
end

function double.alive(script) return script.alive end

function api.defer(fn)
  if type(fn) ~= "function" then error("defer expects a function", 2) end
  local script = double.current_script
  if not script then error("defer called outside a script", 2) end
  double.defer_queue[#double.defer_queue + 1] = { fn = fn, script = script }
  return true
end

function api.runloop(fn) return api.defer(fn) end

function api.atexit(fn)
  local script = double.current_script
  if not script then error("atexit called outside a script", 2) end
  script.atexit[#script.atexit + 1] = fn
end

function api.get_action_context()
  local script = double.current_script
  local path = script and script.path or ""
  local command_id = script and script.command_id or 0
  -- is_new_value, filename, sectionID, cmdID, mode, resolution, val, contextstr
  return false, path, 0, command_id, -1, -1, -1, ""
end

function api.SetToggleCommandState(section_id, command_id, state)
  double.toggle_states[section_id .. ":" .. command_id] = state
  return true
end

function api.GetToggleCommandStateEx(section_id, command_id)
  return double.toggle_states[section_id .. ":" .. command_id] or -1
end

function api.RefreshToolbar2(section_id, command_id)
  double.toolbar_refreshes = double.toolbar_refreshes + 1
end

function api.RefreshToolbar(command_id) double.toolbar_refreshes = double.toolbar_refreshes + 1 end

-- User interaction ---------------------------------------------------------------------------

function api.ShowConsoleMsg(msg) double.console[#double.console + 1] = tostring(msg) end
function api.ClearConsole() end

function api.MB(msg, title, type)
  double.messages[#double.messages + 1] = { message = msg, title = title, type = type }
  return table.remove(double.mb_answers, 1) or 1
end
api.ShowMessageBox = api.MB

--- captions_csv may end with "extrawidth=N" and "separator=X" entries (X replaces the comma
--- between values, not between captions).
function api.GetUserInputs(title, num_inputs, captions_csv, retvals_csv)
  local captions, separator = {}, ","
  for caption in (captions_csv .. ","):gmatch("(.-),") do
    if caption:match("^separator=") then
      separator = caption:sub(#"separator=" + 1)
    elseif not caption:match("^extrawidth=") then
      captions[#captions + 1] = caption
    end
  end
  if #captions ~= num_inputs then
    error(string.format("GetUserInputs: %d inputs but %d captions", num_inputs, #captions), 2)
  end
  local defaults = {}
  for value in ((retvals_csv or "") .. separator):gmatch("(.-)" .. separator:gsub("%p", "%%%0")) do
    defaults[#defaults + 1] = value
  end
  double.dialogs[#double.dialogs + 1] = { title = title, captions = captions, defaults = defaults }
  if #double.user_inputs == 0 then error("GetUserInputs '" .. title .. "': the test scripted no answer", 2) end
  local answer = table.remove(double.user_inputs, 1)
  if answer == false then return false, retvals_csv end
  if type(answer) == "table" then
    -- Values the test leaves nil keep the dialog's default.
    local values = {}
    for i = 1, num_inputs do values[i] = answer[i] or defaults[i] or "" end
    answer = table.concat(values, separator)
  end
  return true, answer
end

--- Without double.on_exec the command really runs (timeout -1/-2: in the background, as Reaper
--- does: the call returns at once).
function api.ExecProcess(command, timeout_ms)
  double.exec_log[#double.exec_log + 1] = { command = command, timeout_ms = timeout_ms }
  if double.on_exec then return double.on_exec(command) end
  if timeout_ms == -1 or timeout_ms == -2 then
    os.execute(command .. " >/dev/null 2>&1 &")
    return ""
  end
  local pipe = io.popen(command .. " 2>&1")
  local output = pipe:read("a")
  local _, _, code = pipe:close()
  return string.format("%d\n%s", code or 0, output)
end

-- gfx: the status window ---------------------------------------------------------------------
-- Records what is drawn: each gfx.update() with a frame different from the last adds it (its
-- strings joined with newlines) to double.status_frames. double.close_gfx() is the user closing it.

local gfx = { x = 0, y = 0, w = 0, h = 0, clear = 0 }
double.gfx = gfx
function gfx.init(name, w, h)
  double.gfx_state = { open = true, closed_by_user = false, frame = {}, title = name }
  gfx.w, gfx.h = w or 0, h or 0
  return 1
end
function gfx.setfont() return 1 end
function gfx.set() end
function gfx.drawstr(text)
  local frame = double.gfx_state.frame
  frame[#frame + 1] = tostring(text)
end
function gfx.measurestr(text) return 8 * #tostring(text), 15 end
function gfx.update()
  local state = double.gfx_state
  if not state.open then return end
  local text = table.concat(state.frame, "\n")
  if double.status_frames[#double.status_frames] ~= text then double.status_frames[#double.status_frames + 1] = text end
  state.frame = {}
end
function gfx.getchar()
  if not double.gfx_state.open or double.gfx_state.closed_by_user then return -1 end
  return 0
end
function gfx.quit() double.gfx_state.open = false end
function double.close_gfx() double.gfx_state.closed_by_user = true end

function api.Main_OnCommand(command, flag)
  double.commands[#double.commands + 1] = command
  if command == 40047 then -- Peaks: Build any missing peak files
    for _, item in ipairs(all_items()) do
      for _, take in ipairs(item.takes) do take.source.peaks_built = true end
    end
  end
end

-- Project, paths, time -----------------------------------------------------------------------

function api.time_precise() return now_s() end
function api.GetAppVersion() return "7.27/linux-x86_64" end
function api.GetResourcePath() return double.resource_path end
function api.GetProjectPath(_) return double.project.media_path end

function api.EnumProjects(idx)
  if idx == -1 or idx == 0 then return double.project, double.project.file end
  return nil, ""
end

function api.GetSetProjectInfo(_, desc, value, is_set)
  if desc == "PROJECT_SRATE" then
    if is_set then double.project.sample_rate = value end
    return double.project.sample_rate
  elseif desc == "PROJECT_SRATE_USE" then
    if is_set then double.project.sample_rate_in_force = value ~= 0 end
    return double.project.sample_rate_in_force and 1 or 0
  end
  return 0
end

--- is_loop false: the time selection; true: the loop points (linked to the time selection, as
--- in Reaper's default, until a test sets double.project.loop_points).
function api.GetSet_LoopTimeRange(is_set, is_loop, start_s, end_s, allow_autoseek)
  local p = double.project
  if is_set then
    if is_loop and p.loop_points then p.loop_points = { start_s, end_s } else p.time_selection = { start_s, end_s } end
  end
  local range = (is_loop and p.loop_points) or p.time_selection
  return range[1], range[2]
end

--- -1 = query, 0 = clear, 1 = set, >1 = toggle; returns the new value.
function api.GetSetRepeat(val)
  if val == 0 then double.project.repeat_on = false
  elseif val == 1 then double.project.repeat_on = true
  elseif val > 1 then double.project.repeat_on = not double.project.repeat_on end
  return double.project.repeat_on and 1 or 0
end

function api.IsProjectDirty(_) return double.dirty and 1 or 0 end
function api.GetOS() return double.os end

function api.file_exists(path)
  local f = io.open(path, "rb")
  if f then f:close() return true end
  return false
end

-- Tempo map -----------------------------------------------------------------------------------
-- double.project.tempo: markers at measure starts { measure, bpm (quarter notes per minute),
-- num, denom }; each holds until the next. Every conversion goes through quarter notes (QN).

local function tempo_segments()
  local segments, qn, t = {}, 0, 0
  local markers = double.project.tempo
  for i, m in ipairs(markers) do
    local seg = { measure = m.measure, bpm = m.bpm, num = m.num, denom = m.denom, qn = qn, time = t,
      qn_per_measure = m.num * 4 / m.denom }
    segments[i] = seg
    local next_marker = markers[i + 1]
    if next_marker then
      local dq = (next_marker.measure - m.measure) * seg.qn_per_measure
      qn, t = qn + dq, t + dq * 60 / m.bpm
    end
  end
  return segments
end

local function segment_where(key, value)
  local segments = tempo_segments()
  local found = segments[1]
  for _, seg in ipairs(segments) do if seg[key] <= value then found = seg end end
  return found
end

function api.TimeMap2_QNToTime(_, qn)
  local seg = segment_where("qn", qn)
  return seg.time + (qn - seg.qn) * 60 / seg.bpm
end
function api.TimeMap_QNToTime(qn) return api.TimeMap2_QNToTime(0, qn) end

function api.TimeMap2_timeToQN(_, t)
  local seg = segment_where("time", t)
  return seg.qn + (t - seg.time) * seg.bpm / 60
end
function api.TimeMap_timeToQN(t) return api.TimeMap2_timeToQN(0, t) end

--- Returns the beats since the measure start (in the time signature's beats), the measure index,
--- the beats per measure, the full beats since the project start, the denominator.
function api.TimeMap2_timeToBeats(_, t)
  local qn = api.TimeMap2_timeToQN(0, t)
  local seg = segment_where("qn", qn)
  local measures_in = math.floor((qn - seg.qn) / seg.qn_per_measure + 1e-9)
  local measure = seg.measure + measures_in
  local beats = (qn - seg.qn - measures_in * seg.qn_per_measure) * seg.denom / 4
  return beats, measure, seg.num, qn * seg.denom / 4, seg.denom
end

--- Returns the measure's start time, its start and end in QN, time signature and tempo.
function api.TimeMap_GetMeasureInfo(_, measure)
  local seg = segment_where("measure", measure)
  local qn_start = seg.qn + (measure - seg.measure) * seg.qn_per_measure
  return api.TimeMap2_QNToTime(0, qn_start), qn_start, qn_start + seg.qn_per_measure, seg.num, seg.denom, seg.bpm
end

function api.CountTempoTimeSigMarkers(_) return #double.project.tempo end

--- retval, timepos, measurepos, beatpos, bpm, timesig_num, timesig_denom, lineartempo
function api.GetTempoTimeSigMarker(_, idx)
  local seg = tempo_segments()[idx + 1]
  if not seg then return false, -1, -1, -1, -1, -1, -1, false end
  return true, seg.time, seg.measure, 0, seg.bpm, seg.num, seg.denom, false
end
api.GetSet_LoopTimeRange2 = function(_, ...) return api.GetSet_LoopTimeRange(...) end

function api.RecursiveCreateDirectory(path, _)
  double.created_dirs = double.created_dirs or {}
  double.created_dirs[#double.created_dirs + 1] = path
  os.execute("mkdir -p '" .. path:gsub("'", "'\\''") .. "'")
  return 1
end

function api.UpdateArrange() end
function api.UpdateTimeline() end
function api.UpdateItemInProject(item) end

function api.PreventUIRefresh(delta)
  double.ui_refresh_prevented = double.ui_refresh_prevented + delta
end

-- Undo --------------------------------------------------------------------------------------------

--- The undoable state of the project, as plain data: tracks in order, their items in order, each
--- item's fields, P_EXT, selection, active take, and its takes with their fields and sources.
function double.project_state()
  local tracks = {}
  for ti, track in ipairs(double.project.tracks) do
    local list = {}
    for ii, item in ipairs(track.items) do
      local takes = {}
      for ki, take in ipairs(item.takes) do
        takes[ki] = { guid = take.guid, name = take.name, source = take.source, values = copy(take.values),
          ext = copy(take.ext) }
      end
      list[ii] = { guid = item.guid, values = copy(item.values), notes = item.notes, ext = copy(item.ext),
        active = item.active and item.active.guid, takes = takes }
    end
    tracks[ti] = { guid = track.guid, items = list }
  end
  return { tracks = tracks }
end

--- Puts the project back in a stored state. Objects are matched by GUID and updated in place,
--- so a test's references stay usable; objects the state lacks are deleted (ValidatePtr false).
local function restore_state(state)
  local kept = {}
  local tracks = {}
  for ti, t in ipairs(state.tracks) do
    local track = double.objects[t.guid] or register({ kind = "track", guid = t.guid })
    track.items = {}
    kept[track] = true
    for ii, it in ipairs(t.items) do
      local item = double.objects[it.guid] or register({ kind = "item", guid = it.guid })
      item.track, item.deleted = track, nil
      item.values, item.notes, item.ext = copy(it.values), it.notes, copy(it.ext)
      item.takes, item.active = {}, nil
      for ki, tk in ipairs(it.takes) do
        local take = double.objects[tk.guid] or register({ kind = "take", guid = tk.guid })
        take.item, take.name, take.source = item, tk.name, tk.source
        take.values, take.ext = copy(tk.values), copy(tk.ext)
        item.takes[ki] = take
        if tk.guid == it.active then item.active = take end
      end
      track.items[ii] = item
      kept[item] = true
    end
    tracks[ti] = track
  end
  for _, track in ipairs(double.project.tracks) do
    for _, item in ipairs(track.items) do
      if not kept[item] then item.deleted = true end
    end
  end
  double.project.tracks = tracks
end

--- Records the project as Reaper loaded it: the state undoing the first point goes back to.
--- Happens by itself when the first script runs (tests build their project before that).
function double.load_project()
  if double.undo_baseline == nil then
    double.undo_baseline = double.project_state()
    double.changes_at_last_point = #double.changes
  end
end

--- Stores an undo point: the project as it is now. Points that were undone are dropped (Reaper's
--- default: no alternative redo paths).
function double.add_undo_point(description, flags, auto)
  double.load_project()
  for i = #double.undo_log, double.undo_position + 1, -1 do table.remove(double.undo_log, i) end
  local changes = {}
  for i = double.changes_at_last_point + 1, #double.changes do changes[#changes + 1] = double.changes[i] end
  double.changes_at_last_point = #double.changes
  double.undo_log[#double.undo_log + 1] = { description = description, flags = flags, changes = changes,
    state = double.project_state(), auto = auto or false }
  double.undo_position = #double.undo_log
  double.dirty = true
  local script = double.current_script
  if script and not auto then script.undo_points = script.undo_points + 1 end
end

--- What Reaper does after a user's own edit (moving an item, ...): an undo point.
function double.user_undo_point(description) double.add_undo_point(description, -1) end

-- Nested blocks merge into the outermost, as in Reaper.
function api.Undo_BeginBlock()
  double.undo_depth = double.undo_depth + 1
end
function api.Undo_BeginBlock2(_) api.Undo_BeginBlock() end

function api.Undo_EndBlock(description, flags)
  if double.undo_depth == 0 then error("Undo_EndBlock without Undo_BeginBlock", 2) end
  double.undo_depth = double.undo_depth - 1
  if double.undo_depth == 0 then double.add_undo_point(description, flags) end
end
function api.Undo_EndBlock2(_, description, flags) api.Undo_EndBlock(description, flags) end

local UNDO_STATE_ITEMS = 4

--- "limited state change to items": one point, now, without a block.
function api.Undo_OnStateChange(description) double.add_undo_point(description, UNDO_STATE_ITEMS) end
function api.Undo_OnStateChange2(_, description) api.Undo_OnStateChange(description) end
function api.Undo_OnStateChangeEx(description, which_states, _) double.add_undo_point(description, which_states) end
function api.Undo_OnStateChangeEx2(_, description, which_states, _) double.add_undo_point(description, which_states) end

--- The description of the point Undo_DoUndo2 would undo, or nil.
function api.Undo_CanUndo2(_)
  local point = double.undo_log[double.undo_position]
  return point and point.description or nil
end

function api.Undo_CanRedo2(_)
  local point = double.undo_log[double.undo_position + 1]
  return point and point.description or nil
end

--- Returns nonzero when something was undone.
function api.Undo_DoUndo2(_)
  if double.undo_depth > 0 then error("Undo_DoUndo2 inside an undo block", 2) end
  if double.undo_position == 0 then return 0 end
  double.undo_position = double.undo_position - 1
  local previous = double.undo_log[double.undo_position]
  restore_state(previous and previous.state or double.undo_baseline)
  double.changes_at_last_point = #double.changes
  return 1
end

function api.Undo_DoRedo2(_)
  if double.undo_depth > 0 then error("Undo_DoRedo2 inside an undo block", 2) end
  local point = double.undo_log[double.undo_position + 1]
  if not point then return 0 end
  double.undo_position = double.undo_position + 1
  restore_state(point.state)
  double.changes_at_last_point = #double.changes
  return 1
end

-- ExtState -------------------------------------------------------------------------------------

function api.SetExtState(section, key, value, persist)
  double.ext_state[section] = double.ext_state[section] or {}
  double.ext_state[section][key] = { value = tostring(value), persist = persist and true or false }
end

function api.GetExtState(section, key)
  local entry = double.ext_state[section] and double.ext_state[section][key]
  return entry and entry.value or ""
end

function api.HasExtState(section, key)
  return double.ext_state[section] ~= nil and double.ext_state[section][key] ~= nil
end

function api.DeleteExtState(section, key, persist)
  if double.ext_state[section] then double.ext_state[section][key] = nil end
end

--- What survives a Reaper restart: only persisted keys.
function double.restart_reaper()
  for _, keys in pairs(double.ext_state) do
    for key, entry in pairs(keys) do
      if not entry.persist then keys[key] = nil end
    end
  end
end

-- Selection and enumeration -------------------------------------------------------------------

local function selected_items()
  local list = {}
  for _, item in ipairs(all_items()) do if item.selected then list[#list + 1] = item end end
  return list
end

function api.CountSelectedMediaItems(_) return #selected_items() end
function api.GetSelectedMediaItem(_, idx) return selected_items()[idx + 1] end
function api.CountMediaItems(_) return #all_items() end
function api.GetMediaItem(_, idx) return all_items()[idx + 1] end
function api.CountTracks(_) return #double.project.tracks end
function api.GetTrack(_, idx) return double.project.tracks[idx + 1] end
function api.CountTrackMediaItems(track) return #track.items end
function api.GetTrackMediaItem(track, idx) return track.items[idx + 1] end
function api.GetMediaItem_Track(item) return item.track end

function api.ValidatePtr2(_, pointer, type_name)
  if type(pointer) ~= "table" then return false end
  if type_name == "MediaItem*" then return pointer.kind == "item" and not pointer.deleted end
  if type_name == "MediaItem_Take*" then return pointer.kind == "take" and not pointer.item.deleted end
  if type_name == "MediaTrack*" then return pointer.kind == "track" end
  return false
end
function api.ValidatePtr(pointer, type_name) return api.ValidatePtr2(0, pointer, type_name) end

-- Items and takes ------------------------------------------------------------------------------

function api.GetMediaItemInfo_Value(item, parm)
  return item.values[parm] or 0 -- Reaper returns 0 for a name it does not know
end

function api.SetMediaItemInfo_Value(item, parm, value)
  if ITEM_DEFAULTS[parm] == nil then return false end
  item.values[parm] = value
  change("item_value", { item = item.guid, parm = parm, value = value })
  return true
end

function api.SetMediaItemSelected(item, selected)
  item.selected = selected
  change("item_value", { item = item.guid, parm = "B_UISEL", value = selected and 1 or 0 })
end

function api.GetSetMediaItemInfo_String(item, parm, value, set)
  if parm == "GUID" then
    if set then
      item.guid = value
      register(item)
      change("item_string", { item = item.guid, parm = parm, value = value })
    end
    return true, item.guid
  end
  local ext = parm:match("^P_EXT:(.+)$")
  if ext then
    if set then
      item.ext[ext] = value
      change("item_string", { item = item.guid, parm = parm, value = value })
      return true, value
    end
    if item.ext[ext] == nil then return false, "" end
    return true, item.ext[ext]
  end
  if parm == "P_NOTES" then
    if set then item.notes = value end
    return true, item.notes or ""
  end
  return false, ""
end

function api.CountTakes(item) return #item.takes end
function api.GetTake(item, idx) return item.takes[idx + 1] end
function api.GetActiveTake(item) return item.active end
function api.GetMediaItemTake_Item(take) return take.item end

function api.SetActiveTake(take)
  take.item.active = take
  change("active_take", { item = take.item.guid, take = take.guid })
end

function api.AddTakeToMediaItem(item)
  local take = new_take(item, nil)
  item.takes[#item.takes + 1] = take
  -- Reaper keeps the active take; the script chooses with SetActiveTake.
  if not item.active then item.active = take end
  change("add_take", { item = item.guid, take = take.guid })
  return take
end

function api.TakeIsMIDI(take) return take.source ~= nil and take.source.type == "MIDI" end

function api.GetMediaItemTakeInfo_Value(take, parm)
  return take.values[parm] or 0
end

function api.SetMediaItemTakeInfo_Value(take, parm, value)
  if TAKE_DEFAULTS[parm] == nil then return false end
  take.values[parm] = value
  change("take_value", { item = take.item.guid, take = take.guid, parm = parm, value = value })
  return true
end

function api.GetSetMediaItemTakeInfo_String(take, parm, value, set)
  if parm == "P_NAME" then
    if set then
      take.name = value
      change("take_string", { item = take.item.guid, take = take.guid, parm = parm, value = value })
    end
    return true, take.name
  end
  if parm == "GUID" then
    if set then take.guid = value; register(take) end
    return true, take.guid
  end
  local ext = parm:match("^P_EXT:(.+)$")
  if ext then
    if set then
      take.ext[ext] = value
      change("take_string", { item = take.item.guid, take = take.guid, parm = parm, value = value })
      return true, value
    end
    if take.ext[ext] == nil then return false, "" end
    return true, take.ext[ext]
  end
  return false, ""
end

-- Sources --------------------------------------------------------------------------------------

function api.GetMediaItemTake_Source(take) return take.source end

function api.SetMediaItemTake_Source(take, source)
  take.source = source
  change("take_source", { item = take.item.guid, take = take.guid, file = source and source.file })
  return true
end

function api.PCM_Source_CreateFromFile(path) return double.source({ file = path }) end
function api.PCM_Source_CreateFromFileEx(path, _) return double.source({ file = path }) end

function api.GetMediaSourceFileName(source, _) return source.file end
function api.GetMediaSourceParent(source) return source.parent end
function api.GetMediaSourceSampleRate(source) return source.sample_rate or 0 end
function api.GetMediaSourceNumChannels(source) return source.channels or 0 end
function api.GetMediaSourceLength(source) return source.length_s or 0, false end
function api.GetMediaSourceType(source, _) return source.type end

--- retval (true for a section or reversed source), offset, length, reversed.
function api.PCM_Source_GetSectionInfo(source)
  local section = source.section
  if not section then return false, 0, source.length_s or 0, false end
  return true, section.offset_s, section.length_s, section.reversed
end

--- Stretch markers: take.stretch_markers = { { pos_s, srcpos_s }, ... } (tests set them).
function api.GetTakeNumStretchMarkers(take) return #(take.stretch_markers or {}) end

--- Take FX and take envelopes: take.fx = { name, ... }, take.envelopes = { name, ... } (tests set them).
function api.TakeFX_GetCount(take) return #(take.fx or {}) end
function api.CountTakeEnvelopes(take) return #(take.envelopes or {}) end

--- mode 0 begins (nonzero = more to do), mode 1 works (returns the percentage still to do),
--- mode 2 finishes.
function api.PCM_Source_BuildPeaks(source, mode)
  if mode == 0 then
    if source.peaks_built then return 0 end
    source.peaks_remaining = 100
    return 1
  elseif mode == 1 then
    source.peaks_remaining = math.max(0, (source.peaks_remaining or 0) - 50)
    return source.peaks_remaining
  elseif mode == 2 then
    source.peaks_built = true
    return 0
  end
  return 0
end

-- A snapshot for assertions (plain data, JSON friendly) ----------------------------------------

function double.snapshot()
  local tracks = {}
  for ti, track in ipairs(double.project.tracks) do
    local list = {}
    for _, item in ipairs(track.items) do
      local takes = {}
      for _, take in ipairs(item.takes) do
        takes[#takes + 1] = {
          guid = take.guid, name = take.name, file = take.source and take.source.file or "",
          startoffs_s = take.startoffs_s, playrate = take.playrate, ext = copy(take.ext),
          active = item.active == take, peaks_built = take.source and take.source.peaks_built or false,
          sample_rate = take.source and take.source.sample_rate or 0,
          channels = take.source and take.source.channels or 0,
          source_length_s = take.source and take.source.length_s or 0,
          values = copy(take.values),
        }
      end
      list[#list + 1] = { guid = item.guid, position_s = item.position_s, length_s = item.length_s,
        selected = item.selected, loop_source = item.loop_source, ext = copy(item.ext), takes = takes,
        values = copy(item.values) }
    end
    tracks[ti] = { guid = track.guid, items = list }
  end
  local ext = {}
  for section, keys in pairs(double.ext_state) do
    ext[section] = {}
    for key, entry in pairs(keys) do ext[section][key] = entry.value end
  end
  local scripts = {}
  for i, script in ipairs(double.scripts) do
    scripts[i] = { path = script.path, alive = script.alive, errors = script.errors }
  end
  local undo_log = {}
  for i, point in ipairs(double.undo_log) do
    undo_log[i] = { description = point.description, flags = point.flags, changes = point.changes, auto = point.auto }
  end
  return {
    tracks = tracks, undo_log = undo_log, undo_position = double.undo_position,
    changes = double.changes, messages = double.messages,
    console = table.concat(double.console), exec_log = double.exec_log, dialogs = double.dialogs,
    ext_state = ext, toggle_states = double.toggle_states, errors = double.errors,
    ui_refresh_prevented = double.ui_refresh_prevented, undo_depth = double.undo_depth,
    scripts = scripts, commands = double.commands, dirty = double.dirty,
    changes_outside_undo = #double.changes - double.changes_at_last_point,
    status_frames = double.status_frames, gfx_open = double.gfx_state.open,
  }
end

double.reset()
return double
