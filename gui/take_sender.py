"""Send to Reaper: the open clip's ticked variations become takes of that clip's Reaper item.

Only variations made from the open clip are sent (a variation belongs to the clip, and item, it
was made from: `variations_panel.clip_key`). The send runs on the thread pool
(`reaper_link.send_takes`: one ping first, so a missing Listener is reported once and at once),
announces itself in the window's banner with a Cancel button, and ends with one banner that
groups the outcomes (one line per distinct problem, not one per take).
"""

from __future__ import annotations

import threading

from PyQt6.QtCore import QObject, pyqtSignal

from .reaper_link import ListenerUnavailable, send_takes
from .workers import run_in_background


class TakeSender(QObject):
    """`notice(text, level, key, action)` for the banner; `finished(outcomes)` ([] if none sent)."""

    notice = pyqtSignal(str, str, str, object)
    finished = pyqtSignal(list)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._cancel: threading.Event | None = None

    @property
    def busy(self) -> bool:
        return self._cancel is not None

    def send(self, clip, variations, *, port: int, token: str):
        if clip is None or not clip.from_reaper:
            self.notice.emit("This clip was not opened from Reaper: open it there (VampBridge: Open in editor) "
                             "to send takes back to its item.", "info", "send", None)
            return
        from .variations_panel import clip_key

        key = clip_key(clip.path, clip.start_s, clip.length_s, clip.item_guid)
        mine = [v for v in variations if v.clip_key == key]
        if not mine:
            self.notice.emit(f"None of the ticked variations were made from {clip.name} (the open clip): tick "
                             "variations in its group (marked “open clip”) to send them.", "info", "send", None)
            return
        if self.busy:
            self.notice.emit("Takes are being sent already; wait for them or press Cancel.", "info", "", None)
            return
        takes = [(clip.item_guid, v.audio_path, v.recipe_path, v.take_name) for v in mine]
        cancel = self._cancel = threading.Event()
        self.notice.emit(f"Sending {len(takes)} take(s) of {clip.name} to Reaper…", "busy", "send",
                         ("Cancel", cancel.set))
        run_in_background(send_takes, takes, port=port, token=token, should_cancel=cancel.is_set, owner=self,
                          on_result=lambda outcomes: self._on_sent(outcomes, len(takes)),
                          on_error=self._on_failed)

    def _on_failed(self, error):
        self._cancel = None
        if isinstance(error, ListenerUnavailable):
            self.notice.emit(f"{error}. Nothing was sent.", "error", "send", None)
        else:
            self.notice.emit(f"Could not reach Reaper: {error}. Nothing more was sent.", "error", "send", None)
        self.finished.emit([])

    def _on_sent(self, outcomes, n_asked: int):
        cancelled = self._cancel is not None and self._cancel.is_set()
        self._cancel = None
        added = sum(o.ok for o in outcomes)
        problems: dict[str, list[str]] = {}
        for o in outcomes:
            if not o.ok:
                problems.setdefault(o.message, []).append(o.take_name)
        if problems:
            lines = [f"{len(names)} take(s) not added: {message}" for message, names in problems.items()]
            self.notice.emit(f"Added {added} of {n_asked} take(s) in Reaper. " + " · ".join(lines), "error", "send",
                             None)
        elif cancelled:
            self.notice.emit(f"Cancelled: added {added} of {n_asked} take(s) in Reaper.", "info", "send", None)
        else:
            self.notice.emit(f"Added {added} take(s) in Reaper", "info", "send", None)
        self.finished.emit(outcomes)
