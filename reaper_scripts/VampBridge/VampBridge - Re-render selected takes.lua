-- @description VampBridge: re-render the selected VampBridge takes with another effect chain or seed
-- @version 0.1.0
-- @author VampBridge developers
-- @about
--   For every selected item whose active take was made by VampBridge (it keeps its recipe in the
--   take's P_EXT:vampbridge_recipe), asks the VampBridge service to render that recipe again with
--   the effect chain and seed you enter, and adds the render as a new take. Part of the
--   VampBridge package; see "VampBridge - Vamp selected items".
-- @noindex
-- @changelog
--   Initial release.

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
package.path = script_dir .. "?.lua;" .. package.path

local items = require("vampbridge_items")
local jobs = require("vampbridge_jobs")
local settings = require("vampbridge_settings")

local TITLE = "VampBridge - Re-render selected takes"

--- The active takes that carry a recipe.
local function collect_takes()
  local found, skipped = {}, 0
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do
    local item = reaper.GetSelectedMediaItem(0, i)
    local take = reaper.GetActiveTake(item)
    local recipe = take and items.take_ext(take, "vampbridge_recipe") or ""
    if recipe ~= "" then
      found[#found + 1] = {
        item_guid = items.item_guid(item), take_guid = items.take_guid(take),
        take_name = items.take_name(take), recipe_path = recipe,
        -- The render covers the same region with the same channels: it plays exactly like the
        -- take it re-renders (offset, playrate, pitch, volume, pan, channel mode).
        take = items.take_properties(take),
      }
    else
      skipped = skipped + 1
    end
  end
  return found, skipped
end

--- Asks for the effect chain and seed. Returns fx, seed, or nil when cancelled.
local function ask_fx_and_seed()
  local fx, seed = "", "-1"
  while true do
    local ok, answer = reaper.GetUserInputs("VampBridge: re-render", 2,
      "Effect chain (empty = as recorded),Seed (-1 = as recorded),extrawidth=200,separator=\n",
      fx .. "\n" .. seed)
    if not ok then return nil end
    fx, seed = answer:match("^(.-)\n(.*)$")
    fx, seed = (fx or ""):match("^%s*(.-)%s*$"), (seed or ""):match("^%s*(.-)%s*$")
    local seed_number = math.tointeger(tonumber(seed))
    if seed_number and seed_number >= -1 then return fx, seed_number end
    reaper.MB(string.format("The seed must be a whole number (0 or more, or -1 to keep the recorded one), not %q.", seed),
      TITLE, 0)
  end
end

local function main()
  local takes, skipped = collect_takes()
  if #takes == 0 then
    reaper.MB("Select items whose active take was made by VampBridge (\"vamp ...\" takes).", TITLE, 0)
    return
  end
  if skipped > 0 then
    jobs.console(string.format("%d selected item(s) skipped: their active take was not made by VampBridge", skipped))
  end
  local fx, seed = ask_fx_and_seed()
  if not fx then return end

  local session = jobs.start(TITLE)
  if not session then return end
  local output_dir = settings.output_dir(session.settings)
  for _, t in ipairs(takes) do
    session:add_job({
      kind = "rerender",
      label = string.format("re-render of \"%s\"", t.take_name), name = t.take_name,
      item_guid = t.item_guid, take_guid = t.take_guid, take = t.take,
      send = function(client, id)
        return client:send("rerender", id, "sssisss", session.client_name, t.recipe_path, fx, seed,
          output_dir, t.item_guid, t.take_guid)
      end,
    })
  end
  session:run(function(s) s:report(TITLE) end)
end

main()

-- Every project change these scripts make has an undo point of its own (one per job, made when
-- the job ends); a script that neither defers nor makes a point would get an extra "ReaScript:
-- Run" point from Reaper. Deferring once, even an empty function, tells Reaper not to add it.
reaper.defer(function() end)
