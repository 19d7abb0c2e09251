-- @noindex
-- VampBridge: a session with the service (docs/osc.md), polled once per reaper.defer cycle.
--
-- A session connects (hello, auto-starting the service if it does not answer), sends the jobs
-- it was given (vamp / rerender) and shows their progress in a status window (never in the
-- project: see vampbridge_status.lua). Each variation is added as a take as
-- soon as its `result` arrives, then acknowledged; when the job ends, ONE undo point covers all
-- the takes it added (see Session:undo_point). It also recovers:
--   * a job not heard of for reply_timeout_s is probed with `status`;
--   * a probe nobody answers means the service is gone: reconnect (auto-start again), then ask
--     for `pending` results and probe every job again;
--   * a job the restarted service no longer knows is `resume`d (or re-sent if it was never
--     accepted); results are deduplicated, so anything delivered twice adds one take only.
-- Results of jobs that belong to no running script (their script ended) are "orphans": they
-- arrive through `pending` and are added, one undo point per job, when the `pending` reply
-- closes the batch.

local net = require("vampbridge_net")
local json = require("vampbridge_json")
local items = require("vampbridge_items")
local settings_mod = require("vampbridge_settings")
local status_mod = require("vampbridge_status")

local jobs = {}

local HEARTBEAT_S = 1         -- how often a script marks its jobs as alive (ExtState)
local HEARTBEAT_STALE_S = 5   -- older than this, a job's script is considered gone
local TERMINAL_STATES = { done = true, failed = true, cancelled = true }

-- Shared marks in (non-persistent) ExtState -------------------------------------------------

local function live_key(job_id) return "live:" .. job_id end
local function take_key(job_id) return "take:" .. job_id end

--- True while another running script (or this one) owns the job and will add its takes.
function jobs.is_live(job_id)
  local stamp = tonumber(reaper.GetExtState(settings_mod.SECTION, live_key(job_id)))
  return stamp ~= nil and reaper.time_precise() - stamp < HEARTBEAT_STALE_S
end

local function console(text)
  reaper.ShowConsoleMsg("VampBridge: " .. text .. "\n")
end
jobs.console = console

-- Session ----------------------------------------------------------------------------------

local Session = {}
Session.__index = Session

--- opts: settings (from vampbridge_settings.load), socket (LuaSocket), title (for messages),
---       quiet (no auto-start and no message box when the service is away: the Listener),
---       recover (send `pending` once connected, to add orphaned results; default true),
---       autostart (run the auto-start command when nothing answers; default true unless quiet).
function jobs.session(opts)
  local client, err = net.client(opts.socket, opts.settings)
  if not client then return nil, err end
  return setmetatable({
    settings = opts.settings, client = client, title = opts.title or "VampBridge",
    quiet = opts.quiet, recover = opts.recover ~= false,
    autostart = opts.autostart ~= false and not opts.quiet,
    client_name = settings_mod.client_name(),
    window = not opts.quiet and status_mod.window(opts.title or "VampBridge") or nil,
    conn = "idle",          -- idle, connecting, ready, failed
    connected_once = false,
    autostarts = 0,
    jobs = {}, job_order = {},
    requests = {},          -- request id -> { on_reply, on_timeout, sent_at }
    aliases = {},           -- resume request id -> job id (replies may carry either)
    orphans = {},           -- job id -> { results = {variation -> result} }
    problems = {},          -- lines for the final message
    last_heartbeat = -math.huge,
  }, Session)
end

-- Connecting, hello and auto-start: vampbridge_connection.lua.
for name, method in pairs(require("vampbridge_connection")) do Session[name] = method end

function Session:now() return reaper.time_precise() end

function Session:problem(text)
  self.problems[#self.problems + 1] = text
  console(text)
end

-- Requests with a callback ------------------------------------------------------------------

--- Sends a request whose reply (or error) goes to handlers.on_reply(reply); on_timeout() runs
--- when nothing answers within reply_timeout_s.
function Session:request(name, handlers, types, ...)
  local id, err = self.client:send(name, nil, types, ...)
  if not id then
    self:problem("cannot send " .. name .. ": " .. tostring(err))
    return nil
  end
  self.requests[id] = { name = name, on_reply = handlers.on_reply, on_timeout = handlers.on_timeout,
    sent_at = self:now() }
  return id
end

-- Jobs --------------------------------------------------------------------------------------

--- job: { kind ("vamp" or "rerender"), label (for messages), name (the source take's name, for
---        the undo point), item_guid, take_guid, take (the new takes' D_STARTOFFS and
---        properties, see items.describe), send = function(client, id) -> id or nil, err }
function Session:add_job(job)
  job.id = self.client:new_id()
  job.state, job.results = "waiting", {}
  job.added, job.lost = 0, {}   -- takes added so far; results whose item is gone
  job.status = "waiting for the service"
  self.jobs[job.id] = job
  self.job_order[#self.job_order + 1] = job.id
  -- How the new takes play, for whoever adds them (maybe the Listener after this script has
  -- ended, maybe after a Reaper restart: hence persistent).
  if job.take then
    reaper.SetExtState(settings_mod.SECTION, take_key(job.id), json.encode(job.take), true)
  end
  if self.conn == "ready" then self:send_job(job) end
  return job
end

function Session:send_job(job)
  local ok, err = job.send(self.client, job.id)
  if not ok then
    self:problem(string.format("%s: cannot send the request (%s)", job.label, tostring(err)))
    self:finish_job(job, true) -- it never reached the service: nothing will come for it
    return
  end
  job.sent, job.state, job.last_heard = true, "sending", self:now()
  job.status = "sent"
end

function Session:job_for(id)
  return self.jobs[id] or self.jobs[self.aliases[id] or ""]
end

--- Asks the service about a job that has been silent. No answer at all: the service is gone.
function Session:probe(job)
  if job.probe_id then return end
  job.probe_id = self:request("status", {
    on_reply = function(reply)
      job.probe_id = nil
      self:on_probe_reply(job, reply)
    end,
    on_timeout = function()
      job.probe_id = nil
      if self.conn == "ready" then
        console(string.format("no answer from the service at %s; reconnecting", self:service_address()))
        self:connect()
      end
    end,
  }, "s", job.id)
end

function Session:on_probe_reply(job, reply)
  if job.state == "finished" then return end
  job.last_heard = self:now()
  local entry
  if reply.address == "status" then
    for _, j in ipairs(json.decode(reply.args[2] or "") or {}) do
      if type(j) == "table" and j.job_id == job.id then entry = j end
    end
  elseif reply.address == "error" and reply.args[2] ~= "unknown_job" then
    self:problem(string.format("%s: status failed (%s: %s)", job.label, tostring(reply.args[2]), tostring(reply.args[3])))
    return
  end
  if entry == nil then
    if not job.accepted then
      self:send_job(job) -- the request itself was lost
    else
      self:problem(string.format("%s: the service no longer knows this job; %d variation(s) had arrived",
        job.label, self:count_results(job)))
      self:on_done(job, self:count_results(job), 0, "failed")
    end
  elseif TERMINAL_STATES[entry.state] then
    -- The `done` was lost: collect any missing results, then add them.
    self:on_done(job, math.tointeger(entry.n_finished) or 0, 0, entry.state)
  else
    -- Queued, running, or interrupted by a restart of the service. `resume` queues an
    -- interrupted job again and, in every case, sends the job's messages to this script again
    -- (a restarted service has forgotten where they went).
    self:resume(job)
  end
end

function Session:resume(job)
  local rid
  rid = self:request("resume", {
    on_reply = function(reply)
      if reply.address == "error" and reply.args[2] == "bad_argument" then
        self:probe(job) -- finished meanwhile: `status` says how many variations there are
      elseif reply.address == "error" then
        self:problem(string.format("%s: the service lost this job (%s); %d variation(s) had arrived",
          job.label, tostring(reply.args[3]), self:count_results(job)))
        self:on_done(job, self:count_results(job), 0, "failed")
      else
        self:on_job_message(job, reply)
      end
    end,
    on_timeout = function() end, -- the job's own silence timer probes again
  }, "s", job.id)
  if rid then self.aliases[rid] = job.id end
end

function Session:count_results(job)
  local n = 0
  for _ in pairs(job.results) do n = n + 1 end
  return n
end

function Session:show_progress(job)
  local text
  if job.fraction then
    text = string.format("%d%%", math.floor(job.fraction * 100 + 0.5))
  elseif (job.queue_position or 0) > 0 or job.waiting then
    text = "queued"
  else
    text = "starting"
  end
  local ready = self:count_results(job)
  if ready > 0 then text = string.format("%s, %d ready", text, ready) end
  job.status = text
end

--- The status window's lines: the connection, then one per job.
function Session:status_lines()
  local lines = {}
  if self.conn == "connecting" then
    if self.process then
      lines[1] = string.format("Starting the VampBridge service (%s): %d s", self.process.command,
        math.floor(self:now() - self.process.started_at))
    else
      lines[1] = string.format("Connecting to the VampBridge service at %s", self:service_address())
    end
  end
  if self.loading_since and self.conn == "ready" then
    lines[#lines + 1] = string.format("The VampBridge service is loading its models: %d s",
      math.floor(self:now() - self.loading_since))
  end
  for _, id in ipairs(self.job_order) do
    local job = self.jobs[id]
    if job.state ~= "finished" then lines[#lines + 1] = string.format("%s: %s", job.label, job.status) end
  end
  return lines
end

--- Shows the status window (once per defer cycle), closing it when nothing is left to show.
function Session:show_status()
  if not self.window then return end
  local lines = self:status_lines()
  if #lines == 0 then self.window:close() else self.window:show(lines) end
end

function Session:on_job_message(job, reply)
  local a = reply.args
  job.last_heard = self:now()
  if reply.address == "accepted" then
    job.accepted, job.state = true, "running"
    job.queue_position = math.tointeger(a[2]) or 0
    self:show_progress(job)
  elseif reply.address == "progress" then
    job.accepted, job.state = true, job.state == "finishing" and "finishing" or "running"
    job.fraction = a[3] ~= "queued" and a[2] or nil -- waiting behind another job: "queued"
    if job.fraction and job.fraction > 0 then self.loading_since = nil end -- the models are loaded: the job runs
    job.waiting = a[3] == "queued"
    self:show_progress(job)
  elseif reply.address == "result" then
    job.accepted = true
    self.loading_since = nil
    local r = self:store_result(job.results, a)
    -- One UI refresh for the new take and its peaks.
    reaper.PreventUIRefresh(1)
    local outcome, present = self:deliver(job.id, job.item_guid, r, job.take)
    if outcome == "added" then
      job.added = job.added + 1
      job.output_dir = r.output_path:match("^(.*)[/\\][^/\\]*$")
    elseif outcome == "lost" then
      job.lost[r.variation] = r
    elseif outcome == "present" and job.kind == "rerender" then
      job.already = present
    end
    self:show_progress(job)
    reaper.PreventUIRefresh(-1)
    reaper.UpdateArrange()
  elseif reply.address == "done" then
    self:on_done(job, a[2], a[3], a[4])
  elseif reply.address == "error" then
    self:problem(string.format("%s: %s (%s)", job.label, tostring(a[3]), tostring(a[2])))
    self:on_done(job, self:count_results(job), 0, "failed")
  end
end

function Session:store_result(results, a)
  local r = {
    variation = a[2], output_path = a[3], recipe_path = a[4], item_guid = a[5],
    take_guid = a[6], take_name = a[7], seed = a[8],
  }
  results[a[2]] = r
  return r
end

function Session:on_done(job, n_finished, n_failed, state)
  if job.state == "finished" then return end
  job.done = { n_finished = n_finished or 0, n_failed = n_failed or 0, state = state }
  if self:count_results(job) < job.done.n_finished then
    -- Some `result` datagrams were lost: `pending` sends every unacknowledged one again.
    job.state = "finishing"
    self:ask_pending()
  else
    self:finish_job(job, true)
  end
end

--- Sends `pending`; when its reply comes, jobs waiting for lost results and orphans are added.
function Session:ask_pending()
  if self.pending_id then return end
  self.pending_id = self:request("pending", {
    on_reply = function()
      self.pending_id = nil
      for _, id in ipairs(self.job_order) do
        local job = self.jobs[id]
        if job.state == "finishing" then
          local missing = job.done.n_finished - self:count_results(job)
          if missing > 0 then
            self:problem(string.format("%s: %d finished variation(s) never arrived", job.label, missing))
          end
          self:finish_job(job, true)
        end
      end
      self:commit_orphans()
    end,
    on_timeout = function()
      self.pending_id = nil
      if self.conn == "ready" then self:connect() end
    end,
  }, "s", self.client_name)
end

-- Adding takes ------------------------------------------------------------------------------

local function sorted_results(results)
  local list = {}
  for _, r in pairs(results) do list[#list + 1] = r end
  table.sort(list, function(x, y) return x.variation < y.variation end)
  return list
end

local function plural(n, word)
  return string.format("%d %s%s", n, word, n == 1 and "" or "s")
end

--- Adds one result to its item as a new take (no undo point: see undo_point) and acknowledges
--- it once the take exists. A result delivered twice adds one take only. Returns "added",
--- "present" (the item already has it; then also the take that has it) or "lost" (the item was
--- deleted: not acknowledged here, the caller tells the user where the files are first, with
--- tell_lost).
function Session:deliver(job_id, item_guid, r, take_values)
  local item = items.find_item(item_guid)
  if not item then return "lost" end
  local outcome, present = "present", items.has_take_for(item, r.output_path, r.recipe_path)
  if not present then
    r.take = take_values
    items.add_take(item, r)
    outcome = "added"
  end
  self.client:send("ack", nil, "si", job_id, r.variation)
  return outcome, present
end

--- Lists where the variations of a deleted item are, then acknowledges them.
function Session:tell_lost(job_id, label, lost)
  local list = sorted_results(lost)
  if #list == 0 then return end
  local lines = { string.format("the item of %s was deleted; its variations stay on disk:", label) }
  for _, r in ipairs(list) do
    lines[#lines + 1] = string.format("  %s  (recipe %s)", r.output_path, r.recipe_path)
    self.client:send("ack", nil, "si", job_id, r.variation)
  end
  console(table.concat(lines, "\n"))
end

--- Makes one undo point for changes already made: the takes a job added, one by one, over many
--- defer cycles. Reaper's undo is state-based: a point stores the project as it is now, and
--- undoing it brings back the state stored by the point before. A deferred script gets no point
--- of its own, so the job's takes belong to the first point made after them: this one, made
--- when the job ends, undoes them all at once (unless the user made a point of their own in
--- between: see docs/reaper.md).
--- Why Undo_OnStateChange: it stores the state now, in one call, and is documented as a "limited
--- state change to items", which is exactly what a job changes (takes, their names and P_EXT,
--- the active take). An Undo_BeginBlock/Undo_EndBlock pair would have to stay open across defer
--- cycles while the job runs, and whatever the user did meanwhile would fall into the block.
function Session:undo_point(description)
  reaper.Undo_OnStateChange(description)
  reaper.UpdateArrange()
end

local function job_undo_description(job)
  if job.kind == "rerender" then
    return string.format("VampBridge: re-render of \"%s\"", job.name or "")
  end
  return string.format("VampBridge: %s of \"%s\"", plural(job.added, "variation"), job.name or "")
end

--- A job ends: the user learns what it added (or about variations of a deleted item), and the
--- takes it added become one undo point. `ended`: the job ended in the service (done,
--- failed, cancelled), so nothing more will come for it; false when this script gave up on it
--- (the service is unreachable), and the Listener may still collect the rest.
function Session:finish_job(job, ended)
  if job.state == "finished" then return end
  job.state = "finished"
  self:tell_lost(job.id, job.label, job.lost)
  if job.added > 0 then
    self:undo_point(job_undo_description(job))
    console(string.format("%s: %s added to the item, files in %s", job.label, plural(job.added, "take"),
      job.output_dir or "?"))
  elseif job.already then
    self:problem(string.format("%s: nothing new. The item already has this render as take %d, \"%s\" " ..
      "(the same recipe, effect chain and seed give the same file); choose another effect chain or seed " ..
      "for a new one.", job.label, job.already.index, job.already.name))
  end
  if ended then
    if job.done and job.done.n_failed and job.done.n_failed > 0 then
      self:problem(string.format("%s: %d variation(s) failed in the service", job.label, job.done.n_failed))
    end
    reaper.DeleteExtState(settings_mod.SECTION, take_key(job.id), true)
  end
  reaper.DeleteExtState(settings_mod.SECTION, live_key(job.id), false)
end

--- Orphaned results: jobs of scripts that ended. Each job is one undo point; jobs that a running
--- script still owns are left to it (and not acknowledged).
function Session:commit_orphans()
  for job_id, orphan in pairs(self.orphans) do
    if not jobs.is_live(job_id) then
      local list = sorted_results(orphan.results)
      local first = list[1]
      local take_values = json.decode(reaper.GetExtState(settings_mod.SECTION, take_key(job_id)))
      local item = items.find_item(first.item_guid)
      local source = item and items.find_take(item, first.take_guid)
      local name = source and items.take_name(source) or first.take_name
      local added, lost = 0, {}
      reaper.PreventUIRefresh(1)
      for _, r in ipairs(list) do
        local outcome = self:deliver(job_id, first.item_guid, r, type(take_values) == "table" and take_values or nil)
        if outcome == "added" then added = added + 1 elseif outcome == "lost" then lost[r.variation] = r end
      end
      reaper.PreventUIRefresh(-1)
      reaper.UpdateArrange()
      self:tell_lost(job_id, string.format("\"%s\"", name), lost)
      if added > 0 then
        self:undo_point(string.format("VampBridge: collected %s of \"%s\"", plural(added, "variation"), name))
        console(string.format("collected %s of \"%s\", files in %s", plural(added, "variation"), name,
          first.output_path:match("^(.*)[/\\][^/\\]*$") or "?"))
      end
      reaper.DeleteExtState(settings_mod.SECTION, take_key(job_id), true)
      self.orphans_added = (self.orphans_added or 0) + added
    end
    self.orphans[job_id] = nil
  end
end

-- The loop ----------------------------------------------------------------------------------

function Session:dispatch(reply)
  local id = reply.args[1]
  local request = self.requests[id]
  if request then
    self.requests[id] = nil
    request.on_reply(reply)
    return
  end
  local job = self:job_for(id)
  if job then
    if job.state ~= "finished" then self:on_job_message(job, reply) end
    return
  end
  if reply.address == "result" and type(id) == "string" then
    -- A result of a job this session did not start: an orphan delivered by `pending`.
    local orphan = self.orphans[id] or { results = {} }
    self.orphans[id] = orphan
    self:store_result(orphan.results, reply.args)
  end
end

--- One defer cycle: read replies, then run the timers.
function Session:step()
  local now = self:now()
  for _, reply in ipairs(self.client:receive()) do
    if type(reply.args[1]) == "string" then self:dispatch(reply) end
  end
  now = self:now()
  for id, request in pairs(self.requests) do
    if now - request.sent_at > self.settings.reply_timeout_s then
      self.requests[id] = nil
      request.on_timeout()
    end
  end
  if self.conn == "connecting" then
    self:connection_step(now)
  elseif self.conn == "idle" and self.retry_at and now >= self.retry_at then
    self.retry_at = nil
    self:connect()
  elseif self.conn == "ready" then
    for _, id in ipairs(self.job_order) do
      local job = self.jobs[id]
      if (job.state == "sending" or job.state == "running")
          and now - job.last_heard > self.settings.reply_timeout_s then
        self:probe(job)
      end
    end
  end
  self:show_status()
  if now - self.last_heartbeat >= HEARTBEAT_S then
    self.last_heartbeat = now
    for _, job in pairs(self.jobs) do
      if job.state ~= "finished" then
        reaper.SetExtState(settings_mod.SECTION, live_key(job.id), string.format("%.3f", now), false)
      end
    end
  end
end

function Session:unfinished_jobs()
  local n = 0
  for _, job in pairs(self.jobs) do
    if job.state ~= "finished" then n = n + 1 end
  end
  return n
end

--- True when a script has nothing left to do: no job running, no request unanswered.
function Session:is_finished()
  if self.conn == "failed" then return true end
  return self.conn == "ready" and self:unfinished_jobs() == 0 and next(self.requests) == nil
end

--- Shows what went wrong, if anything, in one message box.
function Session:report(title)
  if #self.problems > 0 then
    reaper.MB(table.concat(self.problems, "\n\n"), title or self.title, 0)
  end
end

--- What every script does first: settings, LuaSocket, a session. Shows a message box and
--- returns nil when something is missing.
function jobs.start(title, opts)
  opts = opts or {}
  local socket, help = net.load_socket()
  if not socket then
    reaper.MB(help, title, 0)
    return nil
  end
  opts.socket, opts.title = socket, title
  opts.settings = opts.settings or settings_mod.load()
  local session, err = jobs.session(opts)
  if not session then
    reaper.MB("Cannot open a UDP socket: " .. tostring(err), title, 0)
    return nil
  end
  return session, socket
end

--- Releases the socket, closes the status window, makes one undo point for the takes the unfinished
--- jobs added so far, drops the live marks. Jobs still running in the service keep their
--- results there for the Listener or the next run.
function Session:close()
  if self.closed then return end
  self.closed = true
  local left, with_takes, added = 0, {}, 0
  for _, id in ipairs(self.job_order) do
    local job = self.jobs[id]
    if job.state ~= "finished" then
      left = left + 1
      reaper.DeleteExtState(settings_mod.SECTION, live_key(job.id), false)
      if job.added > 0 then
        with_takes[#with_takes + 1] = job
        added = added + job.added
      end
    end
  end
  -- One point: it holds the takes of all of them (the state now), so a point per job would
  -- leave points that undo nothing.
  if #with_takes == 1 then
    self:undo_point(job_undo_description(with_takes[1]))
  elseif #with_takes > 1 then
    self:undo_point(string.format("VampBridge: %s of %d items", plural(added, "variation"), #with_takes))
  end
  if left > 0 and self.conn ~= "failed" then
    console(string.format("stopped with %d job(s) still running in the service; \"VampBridge - " ..
      "Listener\" (or the next vamp) will add their takes when they finish.", left))
  end
  if self.window then self.window:close() end
  self.client:close()
end

--- Runs the session from reaper.defer until it is finished, then calls on_finished(session).
function Session:run(on_finished)
  reaper.atexit(function() self:close() end)
  if self.conn == "idle" then self:connect() end
  local function loop()
    if self.closed then return end
    self:step()
    if self:is_finished() then
      self:close()
      if on_finished then on_finished(self) end
      return
    end
    reaper.defer(loop)
  end
  loop()
end

return jobs
