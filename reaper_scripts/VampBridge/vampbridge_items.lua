-- @noindex
-- VampBridge: what the scripts read from and write to the project: the source region under an
-- item, items found again by GUID, results added as takes, progress shown in a take's name.

local items = {}

local EPSILON_S = 1e-9

--- The part of the source file heard under an item, as plain numbers (no Reaper calls, so the
--- arithmetic can be tested on its own).
---   g.position_s, g.length_s       the item on the timeline
---   g.startoffs_s, g.playrate      the active take (D_STARTOFFS, D_PLAYRATE)
---   g.source_length_s              the source file's length (nil or 0 when unknown)
---   g.sel_start_s, g.sel_end_s     the time selection (equal when there is none)
--- Returns { start_s, length_s (source seconds), item_offset_s (where in the item, in project
--- seconds, the region starts), partial (true when limited by the time selection) },
--- or nil and a reason.
function items.source_region(g)
  local lo, hi = g.position_s, g.position_s + g.length_s
  local partial = false
  -- A time selection limits the region only where it intersects the item.
  local sel_lo = math.max(g.sel_start_s or 0, lo)
  local sel_hi = math.min(g.sel_end_s or 0, hi)
  if sel_hi - sel_lo > EPSILON_S then
    partial = sel_lo > lo + EPSILON_S or sel_hi < hi - EPSILON_S
    lo, hi = sel_lo, sel_hi
  end
  -- Project time -> source time: the take plays its source from D_STARTOFFS at D_PLAYRATE.
  local start_s = g.startoffs_s + (lo - g.position_s) * g.playrate
  local end_s = g.startoffs_s + (hi - g.position_s) * g.playrate
  -- Only real audio can be sent: a negative start offset (the item extended left of its
  -- source) or an item longer than an unlooped source covers silence.
  local clamped_start_s = math.max(start_s, 0)
  if g.source_length_s and g.source_length_s > 0 then end_s = math.min(end_s, g.source_length_s) end
  if end_s - clamped_start_s <= EPSILON_S then
    return nil, "there is no source audio under the item"
  end
  return {
    start_s = clamped_start_s,
    length_s = end_s - clamped_start_s,
    item_offset_s = (lo - g.position_s) + (clamped_start_s - start_s) / g.playrate,
    partial = partial,
  }
end

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

local function source_file(source)
  local path = reaper.GetMediaSourceFileName(source, "")
  if path == "" then
    -- Sections and reversed sources wrap the file's source.
    local parent = reaper.GetMediaSourceParent(source)
    if parent then return source_file(parent), parent end
  end
  return path, source
end

--- Everything a `vamp` or `open` request needs about an item.
--- Returns a table, or nil and a reason to tell the user (and `kind`: "midi", "empty", ...).
function items.describe(item, use_time_selection)
  local take = reaper.GetActiveTake(item)
  if not take then return nil, "the item is empty (no take)", "empty" end
  if reaper.TakeIsMIDI(take) then return nil, "it is a MIDI item; only audio can be vamped", "midi" end
  local path, source = source_file(reaper.GetMediaItemTake_Source(take))
  if path == "" then return nil, "its take has no source file (an in-project or generated source)", "nofile" end

  local sel_start_s, sel_end_s = 0, 0
  if use_time_selection then
    sel_start_s, sel_end_s = reaper.GetSet_LoopTimeRange(false, false, 0, 0, false)
  end
  local source_length_s = reaper.GetMediaSourceLength(source)
  local playrate = reaper.GetMediaItemTakeInfo_Value(take, "D_PLAYRATE")
  local region, why = items.source_region({
    position_s = reaper.GetMediaItemInfo_Value(item, "D_POSITION"),
    length_s = reaper.GetMediaItemInfo_Value(item, "D_LENGTH"),
    startoffs_s = reaper.GetMediaItemTakeInfo_Value(take, "D_STARTOFFS"),
    playrate = playrate,
    source_length_s = source_length_s,
    sel_start_s = sel_start_s, sel_end_s = sel_end_s,
  })
  if not region then return nil, why, "noaudio" end

  -- Output at the project rate so the new take needs no resampling; 0 means the project
  -- follows the audio device, and then the source's own rate is the best guess.
  local sample_rate = math.floor(reaper.GetSetProjectInfo(0, "PROJECT_SRATE", 0, false) + 0.5)
  if sample_rate <= 0 then sample_rate = math.floor(reaper.GetMediaSourceSampleRate(source) + 0.5) end

  return {
    item_guid = items.item_guid(item),
    take_guid = items.take_guid(take),
    take_name = items.take_name(take),
    source_path = path,
    start_s = region.start_s,
    length_s = region.length_s,
    item_offset_s = region.item_offset_s,
    partial = region.partial,
    playrate = playrate,
    sample_rate = sample_rate,
    channels = reaper.GetMediaSourceNumChannels(source),
  }
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

--- True when the item already has a take for this render (same file or same recipe), so a
--- result delivered twice (a resent `result`, or the listener and a script both holding it)
--- adds one take only.
function items.has_take_for(item, output_path, recipe_path)
  for i = 0, reaper.CountTakes(item) - 1 do
    local take = reaper.GetTake(item, i)
    if take then
      if recipe_path ~= "" and items.take_ext(take, "vampbridge_recipe") == recipe_path then return true end
      local source = reaper.GetMediaItemTake_Source(take)
      if source and reaper.GetMediaSourceFileName(source, "") == output_path then return true end
    end
  end
  return false
end

--- Adds one render as a new active take, aligned with the audio it replaces: a whole-item render
--- starts at the item start (D_STARTOFFS 0); a time-selection render starts where the time
--- selection did (a negative start offset, silence before it).
--- Makes no undo point: the caller makes one for all the takes of a job. Returns the take.
function items.add_take(item, r)
  local take = reaper.AddTakeToMediaItem(item)
  local source = reaper.PCM_Source_CreateFromFile(r.output_path)
  reaper.SetMediaItemTake_Source(take, source)
  reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", r.take_name, true)
  if r.recipe_path and r.recipe_path ~= "" then
    reaper.GetSetMediaItemTakeInfo_String(take, "P_EXT:vampbridge_recipe", r.recipe_path, true)
  end
  -- The render already has the playrate applied, so it plays at rate 1.
  reaper.SetMediaItemTakeInfo_Value(take, "D_PLAYRATE", 1)
  reaper.SetMediaItemTakeInfo_Value(take, "D_STARTOFFS", -(r.item_offset_s or 0))
  reaper.SetActiveTake(take)
  items.build_peaks(source)
  reaper.UpdateItemInProject(item)
  return take
end

-- Progress in a take name --------------------------------------------------------------------
-- While a job runs, the name of the item's active take carries "[VampBridge 40%]", so the item
-- shows it in the arrange view. The text follows the active take: when a new variation becomes
-- the active take, the text moves there and the previous take gets its name back. The original
-- name comes back at the end; if the user renamed the take meanwhile, their name is left alone
-- and no more progress is shown.

local Progress = {}
Progress.__index = Progress

function items.progress(item_guid)
  return setmetatable({ item_guid = item_guid }, Progress)
end

--- Shows `text` (kept, for show_again) in the active take's name.
function Progress:show(text)
  self.text = text
  if self.abandoned then return end
  local item = items.find_item(self.item_guid)
  local take = item and reaper.GetActiveTake(item)
  if not take then return end
  local guid = items.take_guid(take)
  if self.take_guid ~= nil and self.take_guid ~= guid then
    self:restore() -- another take became the active one: the text moves with it
    if self.abandoned then return end
  end
  local current = items.take_name(take)
  if self.take_guid == nil then
    self.take_guid, self.original = guid, current
  elseif current ~= self.shown then
    self.abandoned, self.take_guid, self.original, self.shown = true, nil, nil, nil
    return -- renamed by the user: not ours any more
  end
  local name = string.format("%s [VampBridge %s]", self.original, text)
  if name ~= current then
    reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", name, true)
    reaper.UpdateItemInProject(item)
  end
  self.shown = name
end

--- True while a take's name carries the progress text.
function Progress:is_shown() return self.take_guid ~= nil end

--- Gives the take its name back (unless the user renamed it: then nothing more is shown).
function Progress:restore()
  if self.take_guid == nil then return end
  local item = items.find_item(self.item_guid)
  local take = item and items.find_take(item, self.take_guid)
  if take then
    if items.take_name(take) == self.shown then
      reaper.GetSetMediaItemTakeInfo_String(take, "P_NAME", self.original, true)
      reaper.UpdateItemInProject(item)
    else
      self.abandoned = true
    end
  end
  self.take_guid, self.original, self.shown = nil, nil, nil
end

--- Shows the last text again after restore().
function Progress:show_again()
  if self.text then self:show(self.text) end
end

return items
