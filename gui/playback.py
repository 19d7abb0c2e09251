"""Audio playback with QtMultimedia, degrading to "unavailable" instead of failing.

QtMultimedia needs a system audio library (PulseAudio/PipeWire on Linux) and an output device;
on a headless machine or a box without sound neither may exist. `Player.available` is then False
and `Player.reason` says why, and the window disables its play buttons with that reason as the
tooltip.

A/B: `switch_to(path, offset_s)` swaps the source and keeps the playing position, so comparing a
variation with the original lands on the same beat. `set_loop` loops the whole file, or the time
selection (the variation and the original's region share the same seconds).
"""

from __future__ import annotations

import logging

from PyQt6.QtCore import QObject, QUrl, pyqtSignal

log = logging.getLogger(__name__)


def _load_multimedia():
    try:
        from PyQt6 import QtMultimedia
    except (ImportError, OSError) as e:
        return None, (f"audio playback is unavailable ({e}); install your system's PulseAudio/PipeWire "
                      "client library (e.g. libpulse0) to listen in the companion")
    if not QtMultimedia.QMediaDevices.audioOutputs():
        return None, "no audio output device found; connect one and restart the companion to listen here"
    return QtMultimedia, ""


class Player(QObject):
    """Plays one file at a time. `playing_changed(path or "")` when playback starts or stops."""

    playing_changed = pyqtSignal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.current_path = ""
        self._offset_s = 0.0  # where the played region starts inside the file (the original clip)
        multimedia, self.reason = _load_multimedia()
        self.available = multimedia is not None
        self._player = None
        self.loop = False
        self.loop_range_s: tuple[float, float] | None = None  # region seconds; None: the whole file
        if self.available:
            self._output = multimedia.QAudioOutput(self)
            self._player = multimedia.QMediaPlayer(self)
            self._player.setAudioOutput(self._output)
            self._player.playbackStateChanged.connect(self._on_state)
            self._player.errorOccurred.connect(self._on_error)
            self._player.positionChanged.connect(self._on_position)

    def set_loop(self, on: bool, start_s: float | None = None, end_s: float | None = None):
        """Loop the whole file, or [start_s, end_s) of the played region (seconds from its start)."""
        self.loop = on
        self.loop_range_s = (start_s, end_s) if on and start_s is not None and end_s is not None else None
        if self.available:
            from PyQt6.QtMultimedia import QMediaPlayer

            whole = on and self.loop_range_s is None
            self._player.setLoops(QMediaPlayer.Loops.Infinite if whole else QMediaPlayer.Loops.Once)

    def _on_position(self, position_ms: int):
        target = loop_jump_ms(position_ms, self._offset_s, self.loop_range_s if self.loop else None)
        if target is not None:
            self._player.setPosition(target)

    def play(self, path: str, offset_s: float = 0.0, position_s: float = 0.0):
        if not self.available:
            return
        if self.loop and self.loop_range_s is not None and not \
                self.loop_range_s[0] <= position_s < self.loop_range_s[1]:
            position_s = self.loop_range_s[0]  # a selection loop starts at the selection
        self.current_path = path
        self._offset_s = offset_s
        self._player.setSource(QUrl.fromLocalFile(path))
        self._player.setPosition(int((offset_s + position_s) * 1000))
        self._player.play()
        self.playing_changed.emit(path)

    def position_s(self) -> float:
        """Seconds since the start of the played region."""
        if not self.available or not self.current_path:
            return 0.0
        return max(0.0, self._player.position() / 1000.0 - self._offset_s)

    def switch_to(self, path: str, offset_s: float = 0.0):
        """A/B: continue at the same position of the region in another file."""
        self.play(path, offset_s, self.position_s())

    def stop(self):
        if self.available:
            self._player.stop()
        self.current_path = ""
        self.playing_changed.emit("")

    def _on_state(self, state):
        from PyQt6.QtMultimedia import QMediaPlayer

        if state == QMediaPlayer.PlaybackState.StoppedState and self.current_path:
            self.current_path = ""
            self.playing_changed.emit("")

    def _on_error(self, error, message):
        log.warning("playback failed: %s", message)
        self.reason = f"playback failed: {message}"


def loop_jump_ms(position_ms: int, offset_s: float, loop_range_s) -> int | None:
    """Where a selection loop jumps back to once playback reaches the selection's end (None: no
    jump). Positions are of the file; the range is of the region, which starts at `offset_s`."""
    if loop_range_s is None:
        return None
    start_s, end_s = loop_range_s
    if position_ms >= (offset_s + end_s) * 1000:
        return int(round((offset_s + start_s) * 1000))
    return None
