"""The VampBridge companion (`vampbridge gui`): a Qt window with the mask editor, the job list and
the variations, embedding the same OSC service Reaper's scripts use. See docs/gui.md."""
