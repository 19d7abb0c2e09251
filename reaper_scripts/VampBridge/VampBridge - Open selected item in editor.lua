-- @description VampBridge: open the selected item in the VampBridge mask editor
-- @version 0.1.0
-- @author VampBridge developers
-- @about
--   Sends the selected item (or the part under the time selection) to the VampBridge companion
--   (`vampbridge gui`), which opens it in its mask editor. Part of the VampBridge package; see
--   "VampBridge - Vamp selected items".
-- @noindex
-- @changelog
--   Initial release.

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
package.path = script_dir .. "?.lua;" .. package.path

local items = require("vampbridge_items")
local jobs = require("vampbridge_jobs")

local TITLE = "VampBridge - Open selected item in editor"

local NO_EDITOR_HELP = "The VampBridge service answering on this port has no editor: it was " ..
  "started headless (vampbridge serve).\n\nTo edit masks, stop it and start the companion " ..
  "instead:\n    vampbridge gui\nIt serves the same port, so the other scripts keep working."

local function main()
  local item = reaper.GetSelectedMediaItem(0, 0)
  if not item then
    reaper.MB("Select an audio item first.", TITLE, 0)
    return
  end
  local r, why = items.describe(item, true)
  if not r then
    reaper.MB("This item cannot be opened: " .. why .. ".", TITLE, 0)
    return
  end
  -- The companion is started by the user; auto-starting the headless service would not help.
  local session = jobs.start(TITLE, { recover = false, autostart = false })
  if not session then return end
  session.on_ready = function(s)
    s:request("open", {
      on_reply = function(reply)
        if reply.address == "opened" then
          jobs.console(string.format("opened \"%s\" in the editor", r.take_name))
        elseif reply.address == "error" and reply.args[2] == "no_editor" then
          s.problems[#s.problems + 1] = NO_EDITOR_HELP
        else
          s.problems[#s.problems + 1] = string.format("The editor could not open the item: %s (%s)",
            tostring(reply.args[3]), tostring(reply.args[2]))
        end
      end,
      on_timeout = function()
        s.problems[#s.problems + 1] = "The service accepted the connection but did not answer the open request."
      end,
    }, "ssdddiiss", s.client_name, r.source_path, r.start_s, r.length_s, r.playrate,
      r.sample_rate, r.channels, r.item_guid, r.take_guid)
  end
  session:run(function(s) s:report(TITLE) end)
end

main()

-- Opening changes nothing in the project; a script that neither defers nor makes an undo point
-- would get a "ReaScript: Run" point from Reaper. Deferring once, even an empty function,
-- tells Reaper not to add it.
reaper.defer(function() end)
