-- @description VampBridge: settings
-- @version 0.1.0
-- @author VampBridge developers
-- @about
--   Edits the VampBridge settings: service host and port, listener port, token, default preset,
--   number of variations, effect chain, output folder and the command that starts the service
--   when it does not answer. Stored with SetExtState("VampBridge", ...), so they persist.
--   Part of the VampBridge package; see "VampBridge - Vamp selected items".
-- @noindex
-- @changelog
--   Initial release.

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
package.path = script_dir .. "?.lua;" .. package.path

local settings = require("vampbridge_settings")

local saved = settings.edit()
if saved then
  reaper.ShowConsoleMsg(string.format("VampBridge: settings saved (service %s:%d, renders in %s)\n",
    saved.host, saved.port, settings.output_dir(saved)))
end

-- Settings are no project change; a script that neither defers nor makes an undo point would get
-- a "ReaScript: Run" point from Reaper. Deferring once, even an empty function, prevents it.
reaper.defer(function() end)
