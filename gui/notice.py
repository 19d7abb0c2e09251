"""The banner at the top of the companion's window: what went wrong and what to do, or a short
piece of information. It floats over the content instead of taking a place in the layout, so
showing it never moves a button under the pointer.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QToolButton

NOTICE_INFO_MS = 8000  # information closes by itself after this long (not while it is hovered)


class NoticeBar(QFrame):
    """A banner floating over the top of the window's content, so showing or hiding it never moves
    a button under the pointer. Errors stay until closed or until the problem they name is fixed
    (`clear(key)`); information closes by itself after a few seconds, but never while the pointer
    is on it. One action button (e.g. Cancel for a long send) can ride along."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("notice")
        self.key = ""
        self.level = ""
        self._hovered = False
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.action_button = QPushButton()
        self.action_button.hide()
        self._action = None
        self.action_button.clicked.connect(self._run_action)
        close = QToolButton()
        close.setText("✕")
        close.setToolTip("Close this message")
        close.clicked.connect(self.dismiss)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.action_button)
        layout.addWidget(close)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(NOTICE_INFO_MS)
        self._timer.timeout.connect(self._expire)
        self.hide()

    def show_message(self, text: str, level: str = "error", key: str = "", action=None):
        """`action`: (button text, callback) or None. `level` "busy": stays until replaced."""
        self.key, self.level = key, level
        self.label.setText(text)
        self.setProperty("level", "info" if level == "busy" else level)
        self.style().unpolish(self)
        self.style().polish(self)
        self._action = action[1] if action else None
        self.action_button.setText(action[0] if action else "")
        self.action_button.setVisible(action is not None)
        self.show()
        self.raise_()
        self.place()
        self._timer.stop()
        if level == "info" and not self._hovered:
            self._timer.start()

    def clear(self, key: str):
        """The problem `key` was fixed: take its banner away (other banners stay)."""
        if key and self.key == key and not self.isHidden():
            self.dismiss()

    def dismiss(self):
        self._timer.stop()
        self.key = self.level = ""
        self._action = None
        self.hide()

    def place(self):
        """Across the top of the parent, as tall as the text needs."""
        parent = self.parentWidget()
        if parent is None:
            return
        width = max(200, parent.width() - 16)
        self.setFixedWidth(width)
        height = self.layout().heightForWidth(width) if self.layout().hasHeightForWidth() else self.sizeHint().height()
        self.setGeometry(8, 4, width, max(height, self.sizeHint().height()))

    def _run_action(self):
        action, self._action = self._action, None
        self.action_button.setEnabled(True)
        if action is not None:
            action()

    def _expire(self):
        if self._hovered:  # being read: wait until the pointer leaves
            return
        self.dismiss()

    def enterEvent(self, event):  # noqa: N802
        self._hovered = True
        self._timer.stop()
        super().enterEvent(event)

    def leaveEvent(self, event):  # noqa: N802
        self._hovered = False
        if self.level == "info" and not self.isHidden():
            self._timer.start()
        super().leaveEvent(event)
