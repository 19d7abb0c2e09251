"""Edit > Settings…: the OSC port and token and the Reaper listener port are kept in
companion.ini, shown again next time, and used by the service the companion starts next."""

import socket

import pytest

pytest.importorskip("pytestqt")

from PyQt6.QtWidgets import QDialogButtonBox  # noqa: E402

from gui.main_window import MainWindow  # noqa: E402
from gui.settings import ConnectionSettings, Settings  # noqa: E402
from gui.settings_dialog import SettingsDialog  # noqa: E402


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ok_button(dialog):
    return dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)


def test_connection_settings_persist_and_the_next_start_uses_them(qtbot, tmp_path, tiny_models):
    path = tmp_path / "companion.ini"
    window = MainWindow(None, Settings(path))
    qtbot.addWidget(window)
    window.settings_action.trigger()  # Edit > Settings…
    dialog = window.settings_dialog
    assert dialog.isVisible() and "next time the companion starts" in dialog.note.text()
    assert dialog.values() == ConnectionSettings(9071, "", 9072)
    port = free_udp_port()
    dialog.osc_port.setValue(port)
    dialog.token.setText("  studio-b  ")
    dialog.listener_port.setValue(9100)
    ok_button(dialog).click()
    assert window.listener_port() == 9100  # Send to Reaper reads it every time
    window.close()

    saved = ConnectionSettings(port, "studio-b", 9100)
    assert ConnectionSettings.read(Settings(path)) == saved
    again = SettingsDialog(Settings(path))
    qtbot.addWidget(again)
    assert again.values() == saved

    from gui.app import create_window

    restarted = create_window(None, tiny_models, "cpu", settings=Settings(path))
    qtbot.addWidget(restarted)
    try:
        assert (restarted.bridge.osc_port, restarted.bridge.token) == (port, "studio-b")
        assert restarted.bridge.server.token == "studio-b"
        assert restarted.osc_label.text() == f"OSC :{port} · Reaper listener :9100"
    finally:
        restarted.close()
        restarted.bridge.close()


def test_cancel_keeps_the_stored_settings_and_equal_ports_are_refused(qtbot, tmp_path):
    path = tmp_path / "companion.ini"
    ConnectionSettings(9300, "t", 9301).write(Settings(path))
    dialog = SettingsDialog(Settings(path))
    qtbot.addWidget(dialog)
    dialog.listener_port.setValue(9300)
    assert not ok_button(dialog).isEnabled() and "both 9300" in dialog.problem.text()
    dialog.accept()  # refused while the ports clash
    assert ConnectionSettings.read(Settings(path)) == ConnectionSettings(9300, "t", 9301)
    dialog.token.setText("other")
    dialog.reject()
    assert ConnectionSettings.read(Settings(path)) == ConnectionSettings(9300, "t", 9301)
