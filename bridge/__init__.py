"""VampBridge: VampNet variations for musicians, from the command line, over OSC and inside Reaper."""

__version__ = "0.1.0"
