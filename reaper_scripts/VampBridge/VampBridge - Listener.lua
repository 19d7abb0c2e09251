-- @description VampBridge: listener for the companion (toggle)
-- @version 0.1.0
-- @author VampBridge developers
-- @about
--   Keeps running in the background (toggle it off to stop). It listens on the listener port
--   (default 9072) so the VampBridge companion can add takes to items (`take`) and ask where an
--   item's audio is (`locate`), and it collects the finished variations of jobs whose script was
--   stopped or whose Reaper was restarted, adding them as takes. Part of the VampBridge package;
--   see "VampBridge - Vamp selected items".
-- @noindex
-- @changelog
--   Initial release.

local script_dir = debug.getinfo(1, "S").source:match("^@?(.*[/\\])") or "./"
package.path = script_dir .. "?.lua;" .. package.path

local osc = require("vampbridge_osc")
local net = require("vampbridge_net")
local items = require("vampbridge_items")
local jobs = require("vampbridge_jobs")

local TITLE = "VampBridge - Listener"

local _, _, section_id, command_id = reaper.get_action_context()

local function set_toggle(state)
  reaper.SetToggleCommandState(section_id, command_id, state)
  reaper.RefreshToolbar2(section_id, command_id)
end

-- Requests from the companion ------------------------------------------------------------------
-- Each handler gets the arguments after id, reply_port and token, and returns the reply's
-- address (under /vampbridge/) with its types and values after the id.

local handlers = {}

handlers.take = {
  types = "ssss",
  run = function(item_guid, output_path, recipe_path, take_name)
    local item = items.find_item(item_guid)
    if not item then
      return "take_added", "Fs", "no item with GUID " .. item_guid .. " in the current project"
    end
    if items.has_take_for(item, output_path, recipe_path) then
      return "take_added", "Ts", "the item already has this take"
    end
    reaper.PreventUIRefresh(1)
    reaper.Undo_BeginBlock()
    items.add_take(item, { output_path = output_path, recipe_path = recipe_path, take_name = take_name,
      take = items.take_values_for_recipe(item, recipe_path) })
    reaper.Undo_EndBlock(string.format("VampBridge: add take \"%s\"", take_name), -1)
    reaper.PreventUIRefresh(-1)
    reaper.UpdateArrange()
    return "take_added", "Ts", ""
  end,
}

handlers.locate = {
  types = "s",
  run = function(item_guid)
    local item = items.find_item(item_guid)
    local r = item and items.describe(item)
    if not r then return "located", "Fsdddii", "", 0.0, 0.0, 1.0, 0, 0 end
    return "located", "Tsdddii", r.source_path, r.start_s, r.length_s, r.playrate, r.sample_rate, r.channels
  end,
}

handlers.ping = { types = "", run = function() return "pong", "" end }

--- Checks and answers one request. Replies go to the sender's address at its reply_port.
local function serve(server, token, received)
  local m = received.message
  local name = m.address:match("^/vampbridge/(.+)$")
  if m.types:sub(1, 3) ~= "sis" then return end -- not framed as docs/osc.md says: not for us
  local id, reply_port, their_token = m.args[1], m.args[2], m.args[3]
  if their_token ~= token then return end -- like the service: dropped without an answer
  local function reply(address, types, ...)
    server:send(received.ip, reply_port, osc.encode_message("/vampbridge/" .. address, "s" .. types, id, ...))
  end
  local handler = name and handlers[name]
  if not handler then
    reply("error", "ss", "unknown_address", "the Reaper listener does not know " .. m.address)
  elseif m.types:sub(4) ~= handler.types then
    reply("error", "ss", "bad_request", string.format("%s takes arguments of types '%s', got '%s'",
      m.address, handler.types, m.types:sub(4)))
  else
    reply(handler.run(table.unpack(m.args, 4)))
  end
end

local function main()
  local session = jobs.start(TITLE, { quiet = true })
  if not session then return end
  local cfg = session.settings
  local socket = require("socket")
  local bind_host = net.is_loopback(cfg.host) and "127.0.0.1" or "*"
  local server, err = net.open(socket, bind_host, cfg.listener_port)
  if not server then
    session:close()
    reaper.MB(err .. "\n\nIs the Listener already running? Otherwise choose another listener " ..
      "port in \"VampBridge - Settings\".", TITLE, 0)
    return
  end
  set_toggle(1)
  reaper.atexit(function()
    server:close()
    session:close()
    set_toggle(0)
  end)

  -- Results of ended scripts are asked for at start and every listener_poll_s.
  local next_poll = reaper.time_precise() + cfg.listener_poll_s
  session:connect()
  local token = ""
  local function loop()
    token = token ~= "" and token or net.token(cfg) -- the companion sends the per-user secret
    for _, received in ipairs(server:receive_all()) do serve(server, token, received) end
    session:step()
    local now = reaper.time_precise()
    if now >= next_poll then
      next_poll = now + cfg.listener_poll_s
      if session.conn == "ready" then session:ask_pending() end
    end
    reaper.defer(loop)
  end
  loop()
end

main()
