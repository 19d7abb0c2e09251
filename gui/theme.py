"""A dark theme in the spirit of DAWs: quiet greys, one warm accent (the colour of "regenerate")."""

from PyQt6.QtGui import QColor, QPalette
from PyQt6.QtWidgets import QApplication

ACCENT = "#f2a33a"

STYLE = f"""
QWidget {{ font-size: 9.5pt; }}
QMainWindow, QWidget#side {{ background: #1b1f26; }}
QGroupBox {{ border: 1px solid #2c323c; border-radius: 4px; margin-top: 10px; padding-top: 4px; }}
QGroupBox::title {{ subcontrol-origin: margin; left: 8px; padding: 0 3px; color: #aeb8c6; }}
QLabel#panelTitle {{ font-weight: 600; font-size: 10.5pt; color: #e6ebf2; }}
QLabel#dim {{ color: #8a94a3; }}
QLabel#readout {{ color: #d6dde7; padding: 2px 4px; }}
QLabel#jobTitle {{ color: #e6ebf2; }}
QFrame#jobRow {{ background: #222832; border-radius: 4px; }}
QFrame#jobRow[finished="true"] {{ background: #1d2129; }}
QFrame#notice {{ border-radius: 4px; padding: 2px; }}
QFrame#notice[level="error"] {{ background: #5a2228; }}
QFrame#notice[level="info"] {{ background: #1f3b57; }}
QProgressBar {{ background: #2c323c; border: none; border-radius: 3px; }}
QProgressBar::chunk {{ background: {ACCENT}; border-radius: 3px; }}
QPushButton {{ background: #2b313b; border: 1px solid #3a414d; border-radius: 4px; padding: 4px 10px; }}
QPushButton:hover {{ background: #343b47; }}
QPushButton:checked {{ background: #3d4656; border-color: {ACCENT}; }}
QPushButton:disabled {{ color: #5f6876; }}
QPushButton#accent, QPushButton#vamp {{ background: {ACCENT}; color: #1b1f26; border: none; font-weight: 600; }}
QPushButton#accent:disabled, QPushButton#vamp:disabled {{ background: #5b4a33; color: #2b2f36; }}
QPushButton#vamp {{ font-size: 12pt; padding: 8px; }}
QToolBar {{ background: #20252d; border: none; spacing: 4px; padding: 3px; }}
QToolButton:checked {{ background: #3d4656; border: 1px solid {ACCENT}; border-radius: 3px; }}
QListWidget, QPlainTextEdit {{ background: #171b21; border: 1px solid #2c323c; }}
QStatusBar {{ background: #15181d; color: #9aa6b5; }}
QSplitter::handle {{ background: #15181d; }}
"""


def apply_dark_theme(app: QApplication):
    app.setStyle("Fusion")
    palette = QPalette()
    colors = {
        QPalette.ColorRole.Window: "#1b1f26", QPalette.ColorRole.WindowText: "#dde3ea",
        QPalette.ColorRole.Base: "#15191f", QPalette.ColorRole.AlternateBase: "#1d222a",
        QPalette.ColorRole.ToolTipBase: "#2b313b", QPalette.ColorRole.ToolTipText: "#e6ebf2",
        QPalette.ColorRole.Text: "#dde3ea", QPalette.ColorRole.Button: "#2b313b",
        QPalette.ColorRole.ButtonText: "#dde3ea", QPalette.ColorRole.Highlight: "#3d6fb0",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.PlaceholderText: "#6d7786",
        QPalette.ColorRole.Link: ACCENT,
    }
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText, QPalette.ColorRole.WindowText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#5f6876"))
    app.setPalette(palette)
    app.setStyleSheet(STYLE)
