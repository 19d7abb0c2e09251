-- @noindex
-- VampBridge: what part of a source an item plays and how a new take must play its render to
-- sound the same, as plain arithmetic (no Reaper calls, so it is tested on its own).
--
-- How Reaper plays a take (docs/reaper.md): a timeline instant t inside the item plays source
-- second  D_STARTOFFS + (t - D_POSITION) * D_PLAYRATE,  wrapped into [0, source length) when the
-- item loops its source, silence outside the source otherwise. The service renders a region of
-- the source in SOURCE time (it never applies the playrate), so a take whose source is the render
-- of [start_s, start_s + length_s) plays the same instants with the same playrate and
--   D_STARTOFFS' = D_STARTOFFS - start_s.
-- start_s is put on a source sample (the service reads from round(start_s * rate)), so the
-- mapping is exact, not merely close.

local region = {}

local EPSILON_S = 1e-9

-- Seconds on the nearest source sample, or on the next one at or after them.
local function nearest_sample(s, rate)
  if not rate or rate <= 0 then return s end
  return math.floor(s * rate + 0.5) / rate
end
local function ceil_sample(s, rate)
  if not rate or rate <= 0 then return s end
  return math.ceil(s * rate - 1e-6) / rate
end

--- The region of the source an item plays, and the part of it to regenerate.
---   g.position_s, g.length_s        the item (D_POSITION, D_LENGTH)
---   g.startoffs_s, g.playrate       the take (D_STARTOFFS, D_PLAYRATE)
---   g.loop_source                   the item's B_LOOPSRC
---   g.source_length_s, g.source_rate
---   g.sel_start_s, g.sel_end_s      the time selection (equal when there is none)
---   g.selection_is_loop             the time selection is the repeating loop (loop points, repeat on)
--- Returns { start_s, length_s (source seconds, on source samples), regen_start_s,
--- regen_length_s (nil: the whole region), loop (the render must loop seamlessly), looping
--- (the item repeats its source) }, or nil and a reason.
function region.of_item(g)
  local pos, len, so, rate = g.position_s, g.length_s, g.startoffs_s, g.playrate
  local L = g.source_length_s or 0
  local sr = g.source_rate
  local function source_at(t) return so + (t - pos) * rate end
  local lo_src, hi_src = so, source_at(pos + len)
  local looping = g.loop_source and L > 0 and (lo_src < -EPSILON_S or hi_src > L + EPSILON_S)

  local r = { looping = looping or false, loop = looping or false }
  if looping then
    -- The item repeats the whole source: the render is one cycle of it, played with the same phase.
    r.start_s, r.length_s = 0, L
  else
    local start_s = math.max(lo_src, 0)
    local end_s = hi_src
    if L > 0 then end_s = math.min(end_s, L) end
    if end_s - start_s <= EPSILON_S then return nil, "there is no source audio under the item" end
    r.start_s = nearest_sample(start_s, sr)
    r.length_s = ceil_sample(end_s, sr) - r.start_s
    if L > 0 then r.length_s = math.min(r.length_s, L - r.start_s) end
  end

  -- The time selection: what to regenerate, the rest of the region is kept as context.
  local sel_lo = math.max(g.sel_start_s or 0, pos)
  local sel_hi = math.min(g.sel_end_s or 0, pos + len)
  if sel_hi - sel_lo > EPSILON_S and (sel_lo > pos + EPSILON_S or sel_hi < pos + len - EPSILON_S) then
    local a, b = source_at(sel_lo), source_at(sel_hi)
    if looping then
      if b - a >= L - EPSILON_S then
        a, b = 0, L -- the selection spans a whole cycle: all of it
      else
        local cycle = math.floor(a / L)
        a, b = a - cycle * L, b - cycle * L
        if b > L + EPSILON_S then a, b = 0, L end -- it wraps around the loop point: the whole cycle
      end
    end
    a = math.max(a, r.start_s)
    b = math.min(b, r.start_s + r.length_s)
    if b - a <= EPSILON_S then return nil, "the time selection covers none of the item's source audio" end
    a, b = nearest_sample(a, sr), ceil_sample(b, sr)
    if a > r.start_s + EPSILON_S or b < r.start_s + r.length_s - EPSILON_S then
      r.regen_start_s, r.regen_length_s = a, math.min(b, r.start_s + r.length_s) - a
      if g.selection_is_loop and not looping then r.loop = true end
    end
  end
  return r
end

--- Which channels to vamp and how the new take plays them, from the take's I_CHANMODE
--- (0 normal, 1 reverse stereo, 2 mono downmix, 3 left, 4 right, 5.. one channel, 67.. a pair).
--- Returns channel (the `vamp` option), channels (of the render) and the new take's I_CHANMODE.
function region.channel_plan(chanmode, source_channels)
  chanmode = math.tointeger(chanmode) or 0
  if source_channels and source_channels >= 2 then
    -- What the take plays is vamped, as a one-channel render that plays on both sides.
    if chanmode == 2 then return "mono", 1, 0 end
    if chanmode == 3 then return "left", 1, 0 end
    if chanmode == 4 then return "right", 1, 0 end
  end
  -- Every channel is vamped; the render has the source's layout, so the same mode plays it alike.
  return "all", source_channels or 0, chanmode
end

--- The output sample rate: the project's when it is in force, else the source's. A loop keeps
--- the source's rate unless the cycle is a whole number of samples at the project's too, so the
--- cycle of the render is as long as the source's to the sample.
function region.output_rate(project_rate, project_rate_in_force, source_rate, loop_length_s)
  local source = math.floor((source_rate or 0) + 0.5)
  local project = math.floor((project_rate or 0) + 0.5)
  if not project_rate_in_force or project <= 0 then return source end
  if loop_length_s and source > 0 then
    local frames = loop_length_s * project
    if math.abs(frames - math.floor(frames + 0.5)) > 1e-6 then return source end
  end
  return project
end

--- The new take's start offset: the render of [start_s, ...] played where the original played it.
function region.new_startoffs(startoffs_s, start_s) return startoffs_s - start_s end

--- Beat and downbeat times of a span of the timeline, as source seconds from the region start.
--- `measures` lists the measures that overlap the span as { qn_start, qn_end, num } and
--- `qn_to_time(qn)` converts quarter notes to project seconds (the tempo map's own conversion,
--- so tempo and time-signature changes are honoured). A measure of `num` beats has them evenly
--- in quarter notes (a 7/8 bar: 7 beats, each half a quarter note).
---   span = { t_lo, t_hi }   the timeline window
---   to_region(t)            project seconds -> seconds from the region start (playrate applied)
function region.beats(measures, qn_to_time, span, to_region)
  local beats, downbeats = {}, {}
  local lo, hi = span[1] - EPSILON_S, span[2] - EPSILON_S
  for _, m in ipairs(measures) do
    local step = (m.qn_end - m.qn_start) / m.num
    for k = 0, m.num - 1 do
      local t = qn_to_time(m.qn_start + k * step)
      if t >= lo and t < hi then
        local s = math.floor(to_region(t) * 1e6 + 0.5) / 1e6
        if s < 0 then s = 0 end
        beats[#beats + 1] = s
        if k == 0 then downbeats[#downbeats + 1] = s end
      end
    end
  end
  return beats, downbeats
end

return region
