-- @description VampBridge: open the selected item in the VampBridge mask editor
-- @version 0.1.0
-- @author VampBridge developers
-- @about
--   Sends the selected audio items to the VampBridge companion
--   (`vampbridge gui`), which opens it in its mask editor, with the project's bars and beats. Part of the VampBridge package; see
--   "VampBridge - Vamp selected items".
-- @noindex
-- @changelog
--   Initial release.

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
package.path = script_dir .. "?.lua;" .. package.path

local items = require("vampbridge_items")
local jobs = require("vampbridge_jobs")
local json = require("vampbridge_json")

local TITLE = "VampBridge - Open selected item in editor"

local NO_EDITOR_HELP = "The VampBridge service answering on this port has no editor: it was " ..
  "started headless (vampbridge serve).\n\nTo edit masks, stop it and start the companion " ..
  "instead:\n    vampbridge gui\nIt serves the same port, so the other scripts keep working."

--- Every selected item that can be opened, and a line for each one that cannot.
local function collect_selection()
  local found, skipped = {}, {}
  for i = 0, reaper.CountSelectedMediaItems(0) - 1 do
    local r, why, kind = items.describe(reaper.GetSelectedMediaItem(0, i),
      { time_selection = true, beats = true })
    if r then
      found[#found + 1] = r
    else
      if kind == "midi" then why = why .. "; the editor opens audio items only" end
      skipped[#skipped + 1] = string.format("item %d cannot be opened: %s", i + 1, why)
    end
  end
  return found, skipped
end

--- The `beats` argument: the tempo map's beats so the editor's ruler shows Reaper's bars.
local function beats_argument(r)
  if not r.beats_s or #r.beats_s == 0 then return "" end
  return json.encode({ beats_s = r.beats_s, downbeats_s = r.downbeats_s })
end

local function main()
  local found, skipped = collect_selection()
  if #found == 0 then
    local text = "Select an audio item first."
    if #skipped > 0 then text = text .. "\n\n" .. table.concat(skipped, "\n") .. "." end
    reaper.MB(text, TITLE, 0)
    return
  end
  for _, line in ipairs(skipped) do jobs.console(line) end
  -- The companion is started by the user; auto-starting the headless service would not help.
  local session = jobs.start(TITLE, { recover = false, autostart = false })
  if not session then return end
  session.on_ready = function(s)
    for _, r in ipairs(found) do
      s:request("open", {
        on_reply = function(reply)
          if reply.address == "opened" then
            jobs.console(string.format("opened \"%s\" in the editor", r.take_name))
          elseif reply.address == "error" and reply.args[2] == "no_editor" then
            if not s.told_no_editor then s.problems[#s.problems + 1] = NO_EDITOR_HELP end
            s.told_no_editor = true
          else
            s.problems[#s.problems + 1] = string.format("The editor could not open \"%s\": %s (%s)",
              r.take_name, tostring(reply.args[3]), tostring(reply.args[2]))
          end
        end,
        on_timeout = function()
          s.problems[#s.problems + 1] = "The service accepted the connection but did not answer the open request."
        end,
      }, "ssdddiisss", s.client_name, r.source_path, r.start_s, r.length_s, r.playrate,
        r.sample_rate, r.channels, r.item_guid, r.take_guid, beats_argument(r))
    end
  end
  session:run(function(s) s:report(TITLE) end)
end

main()

-- Opening changes nothing in the project; a script that neither defers nor makes an undo point
-- would get a "ReaScript: Run" point from Reaper. Deferring once, even an empty function,
-- tells Reaper not to add it.
reaper.defer(function() end)
