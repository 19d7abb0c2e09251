-- @noindex
-- VampBridge: a small status window (Reaper's gfx window) showing what a script is doing:
-- connecting, starting the service, each job's progress. It exists so that progress never edits
-- the project (a take renamed to show progress would be a change outside any undo point, and
-- would leave the project dirty after a run that added nothing).
--
-- Closing the window only hides it; the jobs go on, and the console still gets a line per job.

local status = {}

local WIDTH, LINE_HEIGHT, MARGIN = 460, 18, 10

local Window = {}
Window.__index = Window

function status.window(title)
  return setmetatable({ title = title, lines = {}, open = false, hidden = false }, Window)
end

--- Shows `lines` (a list of strings). Call once per defer cycle: gfx windows are drawn each frame.
function Window:show(lines)
  self.lines = lines
  if self.hidden or gfx == nil or #lines == 0 then return end
  if not self.open then
    gfx.init(self.title, WIDTH, 2 * MARGIN + LINE_HEIGHT * math.max(#lines, 3))
    gfx.setfont(1, "Arial", 15)
    self.open = true
  elseif gfx.getchar() < 0 then
    self.open, self.hidden = false, true -- closed by the user
    return
  end
  gfx.set(0.9, 0.9, 0.9, 1)
  for i, line in ipairs(lines) do
    gfx.x, gfx.y = MARGIN, MARGIN + (i - 1) * LINE_HEIGHT
    gfx.drawstr(line)
  end
  gfx.update()
end

function Window:close()
  if self.open then gfx.quit() end
  self.open = false
end

return status
