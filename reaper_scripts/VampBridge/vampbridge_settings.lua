-- @noindex
-- VampBridge: user settings, kept with reaper.SetExtState("VampBridge", key, value, true) so
-- they survive restarts (reaper-extstate.ini), and edited with reaper.GetUserInputs.

local settings = {}

settings.SECTION = "VampBridge"

-- Every setting, in dialog order. `hidden` ones are not in the dialog (advanced, set with
-- SetExtState or by editing reaper-extstate.ini; docs/reaper.md lists them).
settings.FIELDS = {
  { key = "host", caption = "Service host", default = "127.0.0.1", kind = "string" },
  { key = "port", caption = "Service port", default = 9071, kind = "port" },
  { key = "listener_port", caption = "Listener port", default = 9072, kind = "port" },
  { key = "token", caption = "Token (empty = per-user secret)", default = "", kind = "string" },
  { key = "preset", caption = "Default preset", default = "balanced", kind = "preset" },
  { key = "n_variations", caption = "Variations per item", default = 2, kind = "count" },
  { key = "fx", caption = "Effect chain (none/glue/space/lofi/wide)", default = "none", kind = "fx" },
  { key = "output_dir", caption = "Output folder (empty = beside project)", default = "", kind = "string" },
  { key = "autostart", caption = "Auto-start command (empty = none)", default = "vampbridge serve --port {port}", kind = "string" },
  { key = "seed", default = -1, kind = "integer", hidden = true },
  { key = "sampling", default = "", kind = "string", hidden = true },
  { key = "reply_timeout_s", default = 3, kind = "seconds", hidden = true },
  { key = "startup_wait_s", default = 30, kind = "seconds", hidden = true },
  { key = "listener_poll_s", default = 10, kind = "seconds", hidden = true },
}

-- The service's built-in presets (docs/osc.md); a recipe or chain can also be given as JSON or
-- as @/path/to/file.json.
settings.MASK_PRESETS = { "subtle", "balanced", "creative", "rhythm" }
settings.FX_PRESETS = { "none", "glue", "space", "lofi", "wide" }

local function one_of(list, text)
  for _, name in ipairs(list) do if name == text then return true end end
  return false
end

local function is_json_or_file(text, opening)
  if text:sub(1, 1) == "@" then return #text > 1 end
  if not opening:find(text:sub(1, 1), 1, true) then return false end
  return type(require("vampbridge_json").decode(text)) == "table"
end

local BY_KEY = {}
for _, field in ipairs(settings.FIELDS) do BY_KEY[field.key] = field end

-- Parses one text value; returns the value or nil and what is wrong with it.
local function parse(field, text)
  text = text:match("^%s*(.-)%s*$")
  if field.kind == "string" then return text end
  if field.kind == "preset" then
    if one_of(settings.MASK_PRESETS, text) or is_json_or_file(text, "{") then return text end
    return nil, string.format("%s %q is not a preset: use %s, a mask recipe as JSON, or @/path/to/recipe.json",
      field.caption, text, table.concat(settings.MASK_PRESETS, ", "))
  end
  if field.kind == "fx" then
    if text == "" or one_of(settings.FX_PRESETS, text) or is_json_or_file(text, "{[") then return text end
    return nil, string.format("Effect chain %q is not one: use %s, a chain as JSON, or @/path/to/chain.json",
      text, table.concat(settings.FX_PRESETS, ", "))
  end
  local number = tonumber(text)
  if field.kind == "seconds" then
    if number and number > 0 then return number end
    return nil, string.format("%s must be a positive number of seconds, not %q", field.key, text)
  end
  number = math.tointeger(number)
  if field.kind == "port" then
    if number and number >= 1 and number <= 65535 then return number end
    return nil, string.format("%s must be a UDP port between 1 and 65535, not %q", field.caption, text)
  end
  if field.kind == "count" then
    if number and number >= 1 and number <= 16 then return number end
    return nil, string.format("%s must be a whole number from 1 to 16, not %q", field.caption, text)
  end
  if number then return number end
  return nil, string.format("%s must be a whole number, not %q", field.caption or field.key, text)
end

--- All settings as a table, defaults filled in where nothing (or something unreadable) is stored.
function settings.load()
  local values = {}
  for _, field in ipairs(settings.FIELDS) do
    values[field.key] = field.default
    if reaper.HasExtState(settings.SECTION, field.key) then
      local value = parse(field, reaper.GetExtState(settings.SECTION, field.key))
      if value ~= nil then values[field.key] = value end
    end
  end
  return values
end

function settings.save(values)
  for _, field in ipairs(settings.FIELDS) do
    if values[field.key] ~= nil then
      reaper.SetExtState(settings.SECTION, field.key, tostring(values[field.key]), true)
    end
  end
end

--- Shows the settings dialog until the user enters valid values or cancels.
--- Returns the saved settings, or nil when cancelled.
function settings.edit()
  local current = settings.load()
  local shown = {}
  for _, field in ipairs(settings.FIELDS) do
    if not field.hidden then shown[#shown + 1] = field end
  end
  local captions, texts = {}, {}
  for i, field in ipairs(shown) do
    captions[i] = field.caption
    texts[i] = tostring(current[field.key])
  end
  -- A newline separates the values, so paths and JSON effect chains may hold commas.
  local captions_csv = table.concat(captions, ",") .. ",extrawidth=220,separator=\n"
  while true do
    local ok, answer = reaper.GetUserInputs("VampBridge settings", #shown, captions_csv, table.concat(texts, "\n"))
    if not ok then return nil end
    local parts = {}
    for part in (answer .. "\n"):gmatch("(.-)\n") do parts[#parts + 1] = part end
    local errors, values = {}, {}
    for i, field in ipairs(shown) do
      texts[i] = parts[i] or ""
      local value, err = parse(field, texts[i])
      if value == nil then errors[#errors + 1] = err else values[field.key] = value end
    end
    if #errors == 0 then
      settings.save(values)
      return settings.load()
    end
    reaper.MB(table.concat(errors, "\n") .. "\n\nPlease correct it.", "VampBridge settings", 0)
  end
end

--- The project file's full path, or "" for a project never saved.
function settings.project_file()
  local _, path = reaper.EnumProjects(-1)
  return path or ""
end

--- Where renders go: the configured folder, else a "VampBridge" folder beside the project file
--- (or in the project's media path for an unsaved project).
function settings.output_dir(values)
  if values.output_dir ~= "" then return values.output_dir end
  local dir = settings.project_file():match("^(.*)[/\\][^/\\]*$")
  if not dir or dir == "" then dir = reaper.GetProjectPath("") end
  return dir .. "/VampBridge"
end

--- The client name that `pending` recovery uses: one per project.
function settings.client_name()
  local path = settings.project_file()
  return "reaper:" .. (path ~= "" and path or "unsaved project")
end

--- The auto-start command with {host}, {port} and {token} filled in.
function settings.autostart_command(values)
  return (values.autostart:gsub("{(%w+)}", function(name)
    if name == "host" or name == "port" or name == "token" then return tostring(values[name]) end
  end))
end

settings.parse = function(key, text) return parse(BY_KEY[key], text) end

return settings
