"""Audio playback with QtMultimedia, degrading to "unavailable" instead of failing.

QtMultimedia needs a system audio library (PulseAudio/PipeWire on Linux) and an output device;
on a headless machine or a box without sound neither may exist. `Player.available` is then False
and `Player.reason` says why, and the window disables its play buttons with that reason as the
tooltip.

A/B: `switch_to(path, offset_s)` swaps the source and keeps the playing position, so comparing a
variation with the original lands on the same beat.
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
        if self.available:
            self._output = multimedia.QAudioOutput(self)
            self._player = multimedia.QMediaPlayer(self)
            self._player.setAudioOutput(self._output)
            self._player.playbackStateChanged.connect(self._on_state)
            self._player.errorOccurred.connect(self._on_error)

    def play(self, path: str, offset_s: float = 0.0, position_s: float = 0.0):
        if not self.available:
            return
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
