-- @noindex
-- VampBridge: what the scripts read from and write to the project: the source region under an
-- item and how its takes play, items found again by GUID, results added as takes.

local json = require("vampbridge_json")
local region = require("vampbridge_region")

local items = {}

function items.item_guid(item)
  local _, guid = reaper.GetSetMediaItemInfo_String(item, "GUID", "", false)
  return guid
end

function items.take_guid(take)
  local _, guid = reaper.GetSetMediaItemTakeInfo_String(take, "GUID", "", false)
  return guid
end

function items.take_name(take)
  local _, name = reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", "", false)
  return name
end

function items.take_ext(take, key)
  local _, value = reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:" .. key, "", false)
  return value
end

--- Finds an item by GUID by scanning the project (the stock API has no lookup), so an item
--- moved to another place or track is still found. Returns nil when it was deleted.
function items.find_item(guid)
  for i = 0, reaper.CountMediaItems(0) - 1 do
    local item = reaper.GetMediaItem(0, i)
    if items.item_guid(item) == guid then return item end
  end
  return nil
end

function items.find_take(item, guid)
  for i = 0, reaper.CountTakes(item) - 1 do
    local take = reaper.GetTake(item, i)
    if take and items.take_guid(take) == guid then return take end
  end
  return nil
end

--- The file a take plays and where in it the take's source starts. A section source (Item
--- properties: Section) wraps the file's source: the take's source seconds are file seconds from
--- the section's offset. Returns { path ("" for no file), source (the file's), offset_s,
--- length_s (the section's, nil for the whole file) }, or nil and why for a reversed source.
local function take_source(take)
  local source = reaper.GetMediaItemTake_Source(take)
  local found = { path = "", source = source, offset_s = 0 }
  while source do
    local path = reaper.GetMediaSourceFileName(source, "")
    if path ~= "" then
      found.path, found.source = path, source
      return found
    end
    local parent = reaper.GetMediaSourceParent(source)
    if not parent then return found end
    local is_section, offs, len, reversed = reaper.PCM_Source_GetSectionInfo(source)
    if is_section then
      if reversed then
        return nil, "its take plays its source reversed; apply the reverse first (Item: Render items " ..
          "to new take), then vamp that take"
      end
      found.offset_s = found.offset_s + offs
      found.length_s = found.length_s and math.min(found.length_s, len) or len
    end
    source = parent
  end
  return found
end

-- How a take sounds, besides its source and start offset: copied onto every take made from it
-- (AddTakeToMediaItem makes a take at rate 1, volume 1, centre, no pitch shift).
items.TAKE_PROPERTIES = { "D_PLAYRATE", "B_PPITCH", "D_PITCH", "I_PITCHMODE", "D_VOL", "D_PAN", "D_PANLAW",
  "I_CHANMODE" }

--- The values of items.TAKE_PROPERTIES and D_STARTOFFS of a take, by name.
function items.take_properties(take)
  local values = { D_STARTOFFS = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS") }
  for _, name in ipairs(items.TAKE_PROPERTIES) do
    values[name] = reaper.GetMediaItemTakeInfo_Value(take, name)
  end
  return values
end

-- Beat-driven mask presets: their request carries the project's beats (docs/reaper.md).
local BEAT_PRESETS = { rhythm = true }

--- True when a mask setting (a preset name or a recipe as JSON) keeps audio around beats.
function items.is_beat_driven(mask)
  if BEAT_PRESETS[mask] then return true end
  if type(mask) == "string" and mask:match("^%s*{") then
    local recipe = json.decode(mask)
    if type(recipe) == "table" then
      if tonumber(recipe.beat_after_s) and tonumber(recipe.beat_after_s) > 0 then return true end
      return recipe.beat_after_s == nil and BEAT_PRESETS[recipe.preset] == true
    end
  end
  return false
end

--- The project's beats and downbeats in the timeline window [t_lo, t_hi), mapped by to_region.
local function tempo_map_beats(t_lo, t_hi, to_region)
  local _, first = reaper.TimeMap2_timeToBeats(0, t_lo)
  local _, last = reaper.TimeMap2_timeToBeats(0, t_hi)
  local measures = {}
  for m = math.max(0, (first or 0) - 1), (last or 0) + 1 do
    local _, qn_start, qn_end, num = reaper.TimeMap_GetMeasureInfo(0, m)
    if num and num > 0 and qn_end > qn_start then
      measures[#measures + 1] = { qn_start = qn_start, qn_end = qn_end, num = num }
    end
  end
  return region.beats(measures, function(qn) return reaper.TimeMap2_QNToTime(0, qn) end,
    { t_lo, t_hi }, to_region)
end

--- The project's output sample rate setting: the rate, and whether it is in force
--- (PROJECT_SRATE only counts when PROJECT_SRATE_USE is on).
local function project_rate()
  local in_force = reaper.GetSetProjectInfo(0, "PROJECT_SRATE_USE", 0, false) >= 0.5
  return reaper.GetSetProjectInfo(0, "PROJECT_SRATE", 0, false), in_force
end

--- True when the time selection is the loop that playback repeats (loop points equal to it and
--- repeat on): a selection to vamp as a seamless loop.
local function selection_is_loop(sel_start_s, sel_end_s)
  if sel_end_s - sel_start_s <= 0 or reaper.GetSetRepeat(-1) ~= 1 then return false end
  local loop_start_s, loop_end_s = reaper.GetSet_LoopTimeRange(false, true, 0, 0, false)
  return math.abs(loop_start_s - sel_start_s) < 1e-6 and math.abs(loop_end_s - sel_end_s) < 1e-6
end

--- Everything a `vamp` or `open` request needs about an item, and how its new takes must play.
--- opts.time_selection: regenerate only under the time selection; opts.beats: add the tempo
--- map's beats (beats_s, downbeats_s: seconds from the region start).
--- Returns a table, or nil and a reason to tell the user (and `kind`: "midi", "empty", ...).
function items.describe(item, opts)
  opts = opts or {}
  local take = reaper.GetActiveTake(item)
  if not take then return nil, "the item is empty (no take)", "empty" end
  if reaper.TakeIsMIDI(take) then return nil, "it is a MIDI item, not audio", "midi" end
  local file, why_not = take_source(take)
  if not file then return nil, why_not, "reversed" end
  local path, source = file.path, file.source
  if path == "" then return nil, "its take has no source file (an in-project or generated source)", "nofile" end
  if not reaper.file_exists(path) then
    return nil, string.format("its source file is missing (%s); find it again with Item properties or " ..
      "File > Clean current project directory's media", path), "missing"
  end

  if reaper.GetTakeNumStretchMarkers(take) > 0 then
    return nil, "its take has stretch markers, which a new take would not follow; render the item " ..
      "first (Item: Render items to new take), then vamp that take", "stretch"
  end
  local sel_start_s, sel_end_s = 0, 0
  if opts.time_selection then
    sel_start_s, sel_end_s = reaper.GetSet_LoopTimeRange(false, false, 0, 0, false)
  end
  -- Seconds of the take's source (of its section, for a section source).
  local source_length_s = file.length_s or reaper.GetMediaSourceLength(source)
  local source_rate = reaper.GetMediaSourceSampleRate(source)
  local source_channels = math.tointeger(reaper.GetMediaSourceNumChannels(source)) or 0
  local props = items.take_properties(take)
  local position_s = reaper.GetMediaItemInfo_Value(item, "D_POSITION")
  local r, why = region.of_item({
    position_s = position_s,
    length_s = reaper.GetMediaItemInfo_Value(item, "D_LENGTH"),
    startoffs_s = props.D_STARTOFFS, playrate = props.D_PLAYRATE,
    loop_source = reaper.GetMediaItemInfo_Value(item, "B_LOOPSRC") >= 0.5,
    source_length_s = source_length_s, source_rate = source_rate,
    sel_start_s = sel_start_s, sel_end_s = sel_end_s,
    selection_is_loop = opts.time_selection and selection_is_loop(sel_start_s, sel_end_s),
  })
  if not r then return nil, why, "noaudio" end

  local rate, in_force = project_rate()
  local channel, channels, chanmode = region.channel_plan(props.I_CHANMODE, source_channels)
  local new_take = {}
  for k, v in pairs(props) do new_take[k] = v end
  new_take.D_STARTOFFS = region.new_startoffs(props.D_STARTOFFS, r.start_s)
  new_take.I_CHANMODE = chanmode

  -- Options the service needs beyond the defaults (docs/osc.md): absent keys are defaults.
  local options = {}
  if channel ~= "all" then options.channel = channel end
  if r.loop then options.loop = true end
  if r.regen_start_s then
    options.regen_start_s, options.regen_length_s = r.regen_start_s + file.offset_s, r.regen_length_s
  end

  -- What AddTakeToMediaItem cannot copy: said, so the user knows why the new takes differ.
  local not_copied = {}
  if reaper.TakeFX_GetCount(take) > 0 then not_copied[#not_copied + 1] = "take FX" end
  if reaper.CountTakeEnvelopes(take) > 0 then not_copied[#not_copied + 1] = "take envelopes" end

  local described = {
    not_copied = #not_copied > 0 and table.concat(not_copied, " and ") or nil,
    item_guid = items.item_guid(item),
    take_guid = items.take_guid(take),
    take_name = items.take_name(take),
    source_path = path,
    start_s = r.start_s + file.offset_s, -- file seconds
    length_s = r.length_s,
    playrate = props.D_PLAYRATE,
    sample_rate = region.output_rate(rate, in_force, source_rate, r.loop and (r.regen_length_s or r.length_s) or nil),
    channels = channels,
    options = options,
    take = new_take,
  }
  if opts.beats then
    -- The timeline window of the region (for a loop: the cycle the item starts in).
    local so, pr = props.D_STARTOFFS, props.D_PLAYRATE
    local origin_s = r.start_s
    if r.looping then origin_s = math.floor(so / source_length_s) * source_length_s end
    local t_lo = position_s + (origin_s - so) / pr
    local t_hi = t_lo + r.length_s / pr
    described.beats_s, described.downbeats_s = tempo_map_beats(t_lo, t_hi, function(t)
      return so + (t - position_s) * pr - origin_s
    end)
  end
  return described
end

--- Builds the peak file of a source so the new take shows its waveform at once.
function items.build_peaks(source)
  if reaper.PCM_Source_BuildPeaks(source, 0) ~= 0 then
    -- Mode 1 returns the percentage still to do; small renders finish in a few calls.
    local calls = 0
    while reaper.PCM_Source_BuildPeaks(source, 1) ~= 0 and calls < 10000 do calls = calls + 1 end
    reaper.PCM_Source_BuildPeaks(source, 2)
  end
end

--- The take of the item that already holds this render (same file or same recipe), as
--- { index (1-based), name }, or nil. So a result delivered twice (a resent `result`, or the
--- listener and a script both holding it) adds one take only.
function items.has_take_for(item, output_path, recipe_path)
  for i = 0, reaper.CountTakes(item) - 1 do
    local take = reaper.GetTake(item, i)
    if take then
      local same = recipe_path ~= "" and items.take_ext(take, "vampbridge_recipe") == recipe_path
      local source = reaper.GetMediaItemTake_Source(take)
      same = same or (source ~= nil and reaper.GetMediaSourceFileName(source, "") == output_path)
      if same then return { index = i + 1, name = items.take_name(take) } end
    end
  end
  return nil
end

-- Channel modes that play one channel (mono downmix, left, right).
local ONE_CHANNEL_MODES = { [2] = true, [3] = true, [4] = true }

--- How a render made elsewhere (the companion's, handed over through the Listener) must play:
--- like the item's take whose source it was made from, found through the render's recipe
--- (`input.path`, `input.start_s`: docs/formats.md). nil when the recipe cannot tell.
function items.take_values_for_recipe(item, recipe_path)
  local f = recipe_path ~= "" and io.open(recipe_path, "r")
  if not f then return nil end
  local recipe = json.decode(f:read("a") or "")
  f:close()
  local input = type(recipe) == "table" and recipe.input
  if type(input) ~= "table" or type(input.path) ~= "string" or type(input.start_s) ~= "number" then return nil end
  local from
  local active = reaper.GetActiveTake(item)
  local offset_s
  for i = 0, reaper.CountTakes(item) - 1 do
    local take = reaper.GetTake(item, i)
    local file = take and not reaper.TakeIsMIDI(take) and take_source(take)
    if file and file.path == input.path and (from == nil or take == active) then from, offset_s = take, file.offset_s end
  end
  if not from then return nil end
  local values = items.take_properties(from)
  values.D_STARTOFFS = region.new_startoffs(values.D_STARTOFFS + offset_s, input.start_s)
  return values
end

--- Adds one render as a new active take that plays like the take it was made from:
--- r.take holds D_STARTOFFS and items.TAKE_PROPERTIES for it (see items.describe). The item's
--- own properties (position, length, fades, loop, lock, colour, mute) are left alone.
--- Makes no undo point: the caller makes one for all the takes of a job. Returns the take.
function items.add_take(item, r)
  local take = reaper.AddTakeToMediaItem(item)
  local source = reaper.PCM_Source_CreateFromFile(r.output_path)
  reaper.SetMediaItemTake_Source(take, source)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", r.take_name, true)
  if r.recipe_path and r.recipe_path ~= "" then
    reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:vampbridge_recipe", r.recipe_path, true)
  end
  local values = r.take or {}
  if ONE_CHANNEL_MODES[math.tointeger(values.I_CHANMODE) or 0] and reaper.GetMediaSourceNumChannels(source) == 1 then
    values = setmetatable({ I_CHANMODE = 0 }, { __index = values }) -- a one-channel render plays as it is
  end
  reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", values.D_STARTOFFS or 0)
  for _, name in ipairs(items.TAKE_PROPERTIES) do
    if values[name] ~= nil then reaper.SetMediaItemTakeInfo_Value(take, name, values[name]) end
  end
  reaper.SetActiveTake(take)
  items.build_peaks(source)
  reaper.UpdateItemInProject(item)
  return take
end

return items
