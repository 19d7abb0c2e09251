-- @description VampBridge: VampNet variations of the selected items, as new takes
-- @version 0.1.0
-- @author VampBridge developers
-- @about
--   # VampBridge
--
--   Brings the VampNet music model into Reaper. The model runs in the VampBridge service
--   (`vampbridge serve`, a Python program); these scripts talk to it over OSC/UDP on this computer.
--
--   * **Vamp selected items** (for the media-item right-click menu): sends every selected audio
--     item to the service (with a time selection: only the part under it is regenerated, the
--     rest is kept) and adds each variation as a new take, named `vamp <k> <preset> s<seed>`,
--     that plays exactly like the take it came from. One undo step per item.
--   * **Re-render selected takes**: renders a VampBridge take again with another effect chain or seed.
--   * **Open selected item in editor**: opens the item in the VampBridge companion's mask editor.
--   * **Listener** (toggle): lets the companion add takes and find items, and collects the
--     results of jobs whose script was stopped.
--   * **Settings**: service address, token, default preset, number of variations, effect chain,
--     output folder, auto-start command.
--
--   Needs LuaSocket: install "mavriq-lua-sockets" with ReaPack, then restart Reaper.
--   See docs/reaper.md in the VampBridge repository.
-- @provides
--   [main] VampBridge - Re-render selected takes.lua
--   [main] VampBridge - Open selected item in editor.lua
--   [main] VampBridge - Listener.lua
--   [main] VampBridge - Settings.lua
--   [nomain] vampbridge_osc.lua
--   [nomain] vampbridge_json.lua
--   [nomain] vampbridge_net.lua
--   [nomain] vampbridge_settings.lua
--   [nomain] vampbridge_items.lua
--   [nomain] vampbridge_jobs.lua
--   [nomain] vampbridge_region.lua
--   [nomain] vampbridge_status.lua
--   [nomain] vampbridge_autostart.lua
--   [nomain] vampbridge_connection.lua
-- @changelog
--   Initial release.

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
package.path = script_dir .. "?.lua;" .. package.path

local items = require("vampbridge_items")
local jobs = require("vampbridge_jobs")
local json = require("vampbridge_json")
local settings = require("vampbridge_settings")

local TITLE = "VampBridge - Vamp selected items"

local function item_label(index, item)
  local take = reaper.GetActiveTake(item)
  local name = take and items.take_name(take) or ""
  return string.format("item %d%s", index + 1, name ~= "" and (" (\"" .. name .. "\")") or "")
end

--- The selected items that can be vamped, and a line for each one that cannot (or that will
--- not be copied whole).
local function collect_selection(cfg)
  local regions, skipped = {}, {}
  local opts = { time_selection = true, beats = items.is_beat_driven(cfg.preset) }
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do
    local item = reaper.GetSelectedMediaItem(0, i)
    local region, why, kind = items.describe(item, opts)
    if region then
      regions[#regions + 1] = region
      if region.not_copied then
        skipped[#skipped + 1] = string.format("%s: its %s are not copied to the new takes (add them again)",
          item_label(i, item), region.not_copied)
      end
    else
      if kind == "midi" then why = why .. "; only audio can be vamped" end
      skipped[#skipped + 1] = string.format("%s skipped: %s", item_label(i, item), why)
    end
  end
  return regions, skipped
end

--- The `mask` argument: the preset, with the project's beats for a beat-driven one.
local function mask_argument(preset, r)
  if not r.beats_s then return preset end
  local recipe = preset:match("^%s*{") and json.decode(preset) or { preset = preset }
  recipe.beats_s, recipe.downbeats_s = r.beats_s, r.downbeats_s
  return json.encode(recipe)
end

local function main()
  local cfg = settings.load()
  local regions, skipped = collect_selection(cfg)
  if #regions == 0 then
    local text = "Select one or more audio items first."
    if #skipped > 0 then text = text .. "\n\n" .. table.concat(skipped, "\n") end
    reaper.MB(text, TITLE, 0)
    return
  end
  for _, line in ipairs(skipped) do jobs.console(line) end

  local session = jobs.start(TITLE, { settings = cfg })
  if not session then return end
  session.check_preset = cfg.preset
  local output_dir = settings.output_dir(cfg)
  if require("vampbridge_net").is_loopback(cfg.host) then reaper.RecursiveCreateDirectory(output_dir, 0) end

  for _, r in ipairs(regions) do
    session:add_job({
      kind = "vamp",
      label = string.format("vamp \"%s\"", r.take_name), name = r.take_name,
      item_guid = r.item_guid, take_guid = r.take_guid, take = r.take,
      send = function(client, id)
        local types, args = "ssdddiisssssiis", { session.client_name, r.source_path, r.start_s, r.length_s,
          r.playrate, r.sample_rate, r.channels, r.item_guid, r.take_guid, mask_argument(cfg.preset, r),
          cfg.sampling, cfg.fx, cfg.n_variations, cfg.seed, output_dir }
        if next(r.options) ~= nil then
          -- docs/osc.md: `options` follows `priority` ("" = by client name).
          types = types .. "ss"
          args[#args + 1], args[#args + 2] = "", json.encode(r.options)
        end
        return client:send("vamp", id, types, table.unpack(args))
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
