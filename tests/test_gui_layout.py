"""The window on a laptop screen and its banners (issue 14, defects 3, 7 and 12): usable at
1280x720 with a long clip, a wrapped summary and the Vamp button in view; banners that never move
the layout, go when their problem is fixed and stay while read; a Settings dialog that grows."""

import pytest

pytest.importorskip("pytestqt")
from PyQt6.QtCore import QEvent, QPoint, QPointF  # noqa: E402
from PyQt6.QtGui import QEnterEvent  # noqa: E402
from PyQt6.QtWidgets import QApplication, QWidget  # noqa: E402

from gui.main_window import MainWindow  # noqa: E402
from gui.settings import Settings  # noqa: E402
from gui.variations_panel import Variation  # noqa: E402

from conftest import tone, write_wav  # noqa: E402


@pytest.fixture(scope="module")
def three_minutes(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("long") / "a rather long song title, final mix.wav",
                     tone(180.0, sample_rate=22050), 22050)


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(None, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(w)
    yield w
    w.close()
    w.deleteLater()


def fully_visible(widget: QWidget, window: QWidget) -> bool:
    """The widget is shown, inside the window, and nothing (a scroll area's edge) cuts it."""
    top_left = widget.mapTo(window, QPoint(0, 0))
    inside = (top_left.x() >= 0 and top_left.y() >= 0 and top_left.x() + widget.width() <= window.width()
              and top_left.y() + widget.height() <= window.height())
    return widget.isVisible() and inside and widget.visibleRegion().boundingRect() == widget.rect()


@pytest.mark.parametrize("size", [(1280, 720), (1280, 680)])  # 680: a title bar and a panel less
def test_the_window_is_usable_at_1280x720_with_a_long_clip(qtbot, window, three_minutes, tmp_path, size):
    with qtbot.waitSignal(window.mask_generated, timeout=60000):
        window.open_file(three_minutes)
    for k in range(4):
        window.variations_panel.add(Variation("job", k, 7 + k, str(tmp_path / f"v{k}.wav"), str(tmp_path / f"v{k}.json"),
                                              f"vamp {k + 1} creative s{7 + k}", "", str(three_minutes)))
    window.show_notice("A long error message that names the problem and what to do about it, " * 3)
    window.resize(*size)
    window.show()
    qtbot.waitExposed(window)
    QApplication.processEvents()
    assert window.minimumSizeHint().width() <= size[0] and window.minimumSizeHint().height() <= size[1]
    assert (window.width(), window.height()) == size
    for widget in (window.vamp_button, window.variations_panel.send, window.grid, window.readout,
                   window.variations_panel.play):
        assert fully_visible(widget, window), widget
    assert window.readout.wordWrap() and "Regenerate" in window.readout.text()


def test_a_banner_does_not_move_the_buttons(qtbot, window):
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    targets = (window.vamp_button, window.variations_panel.send, window.grid)
    before = [w.mapTo(window, QPoint(0, 0)) for w in targets]
    window.show_notice("Something went wrong: a message of two lines. " * 6)
    QApplication.processEvents()
    assert not window.notice.isHidden()
    assert [w.mapTo(window, QPoint(0, 0)) for w in targets] == before
    window.notice.dismiss()
    QApplication.processEvents()
    assert [w.mapTo(window, QPoint(0, 0)) for w in targets] == before


def test_a_fields_error_banner_goes_when_the_field_is_fixed(qtbot, window, tmp_path):
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.open_file(write_wav(tmp_path / "clip.wav", tone(1.0), 44100))
    window.recipe_panel.live.setChecked(True)
    qtbot.keyClicks(window.recipe_panel.blocks, "1.5-x")
    qtbot.waitUntil(lambda: not window.notice.isHidden(), timeout=5000)
    assert "Blocks" in window.notice.label.text() or "block" in window.notice.label.text()
    window.recipe_panel.blocks.clear()
    qtbot.keyClicks(window.recipe_panel.blocks, "0.2-0.5")
    qtbot.waitUntil(lambda: window.notice.isHidden(), timeout=5000)


def test_an_info_banner_stays_while_the_pointer_is_on_it(qtbot, window):
    window.show()
    qtbot.waitExposed(window)
    window.notice._timer.setInterval(100)
    window.show_notice("Saved recipe to /somewhere/recipe.json", "info")
    QApplication.sendEvent(window.notice, QEnterEvent(QPointF(5, 5), QPointF(5, 5), QPointF(5, 5)))
    qtbot.wait(400)
    assert not window.notice.isHidden()  # being read
    QApplication.sendEvent(window.notice, QEvent(QEvent.Type.Leave))
    qtbot.waitUntil(lambda: window.notice.isHidden(), timeout=2000)


def test_the_settings_dialog_grows_when_its_problem_line_appears(qtbot, window):
    dialog = window.choose_settings()
    qtbot.waitExposed(dialog)
    dialog.resize(dialog.sizeHint())
    height = dialog.height()
    dialog.listener_port.setValue(dialog.osc_port.value())  # the same port twice: a problem line
    QApplication.processEvents()
    assert dialog.problem.isVisible() and dialog.height() > height
    for field in (dialog.osc_port, dialog.token, dialog.listener_port, dialog.problem, dialog.buttons):
        assert fully_visible(field, dialog), field
    dialog.reject()
