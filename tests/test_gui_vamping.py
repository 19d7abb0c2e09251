"""Vamping from the companion on tiny weights (issue 14, defects 6, 8, 9 and 10): each Vamp moves
the seed on unless locked and an identical request says so; variations arrive one at a time with
progress per variation and an estimate, and a cancel keeps the finished ones; after a restart a
clip's variations come back from its render folder; Use recipe keeps "no effects"; Show tokens has
a legend and goes off when the mask or the clip changes; without audio output the reason is
visible and the system player is offered."""

from pathlib import Path

import pytest

pytest.importorskip("pytestqt")

from gui.main_window import MainWindow  # noqa: E402
from gui.playback import Player  # noqa: E402
from gui.settings import Settings  # noqa: E402

from conftest import tone, write_wav  # noqa: E402

JOB_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_wav(tmp_path_factory.mktemp("clips") / "groove.wav", tone(0.5), 44100)


def make_window(qtbot, engine, folder, renders, player=None):
    w = MainWindow(engine, Settings(folder / "companion.ini"), player=player)
    qtbot.addWidget(w)
    w.sampling_panel.output_dir.setText(str(renders))
    w.sampling_panel.set_sampling({"sampling_steps": 2, "c2f_sampling_steps": 1})
    w.sampling_panel.variations.setValue(2)
    return w


@pytest.fixture
def window(qtbot, tmp_path, engine):
    w = make_window(qtbot, engine, tmp_path, tmp_path / "renders")
    yield w
    w.close()
    w.deleteLater()


def open_clip(qtbot, window, path):
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.open_file(path)


def wait_done(qtbot, window, job_id):
    qtbot.waitUntil(lambda: window.jobs_panel.rows[job_id].state not in ("queued", "running"), timeout=JOB_TIMEOUT_MS)


def test_each_vamp_moves_the_seed_on_and_an_identical_one_says_so(qtbot, window, clip):
    open_clip(qtbot, window, clip)
    window.sampling_panel.seed.setValue(500)
    first = window.vamp()
    assert window.sampling_panel.seed.value() == 502  # past the two seeds just used
    second = window.vamp()
    assert (window.bridge.job(first).request["seed"], window.bridge.job(second).request["seed"]) == (500, 502)
    wait_done(qtbot, window, second)
    names = [v.take_name for v in window.variations_panel.variations()]
    assert sorted(names) == sorted(set(names)) and len(names) == 4  # four different variations

    window.sampling_panel.seed_lock.setChecked(True)
    third = window.vamp()
    assert third is not None and window.sampling_panel.seed.value() == 504  # locked: stays
    with qtbot.waitSignal(window.notice_shown, timeout=5000) as shown:
        assert window.vamp() is None  # identical to the previous one
    assert "identical to the previous one" in shown.args[0] and "seed 504" in shown.args[0]
    wait_done(qtbot, window, third)
    assert len(window.variations_panel.variations()) == 6


def test_variations_arrive_one_at_a_time_with_progress_per_variation(qtbot, window, clip):
    open_clip(qtbot, window, clip)
    window.sampling_panel.set_sampling({"sampling_steps": 24, "c2f_sampling_steps": 2})
    window.sampling_panel.variations.setValue(3)
    details, arrivals = [], []
    job_id = window.vamp()
    row = window.jobs_panel.rows[job_id]

    def on_progress(*_):
        details.append(row.detail.text())

    def on_result(_job_id, record):
        arrivals.append((record.index, len(details)))

    window.bridge.progress.connect(on_progress)  # after the panel's own slot: the row shows it already
    window.bridge.result.connect(on_result)
    try:
        wait_done(qtbot, window, job_id)
    finally:
        window.bridge.progress.disconnect(on_progress)
        window.bridge.result.disconnect(on_result)
    assert row.state == "done" and [k for k, _ in arrivals] == [0, 1, 2]
    # the first variation was listed while the others were still being made
    assert arrivals[0][1] < arrivals[2][1]
    assert any("variation 2 of 3" in d for d in details[arrivals[0][1]:arrivals[1][1]])
    assert any(" left" in d for d in details)  # an estimate of the time left


def test_cancel_keeps_the_finished_variations(qtbot, window, clip):
    open_clip(qtbot, window, clip)
    window.sampling_panel.set_sampling({"sampling_steps": 60, "c2f_sampling_steps": 2})
    window.sampling_panel.variations.setValue(6)
    job_id = window.vamp()
    qtbot.waitUntil(lambda: len(window.variations_panel.variations()) >= 1, timeout=JOB_TIMEOUT_MS)
    assert window.jobs_panel.rows[job_id].bar.value() < 400  # the first came early, not with the last
    window.jobs_panel.rows[job_id].cancel.click()
    wait_done(qtbot, window, job_id)
    kept = window.variations_panel.variations()
    assert window.jobs_panel.rows[job_id].state == "cancelled"
    assert 1 <= len(kept) < 6 and all(Path(v.audio_path).is_file() for v in kept)
    assert window.bridge.job(job_id).n_finished == len(kept)


def test_after_a_restart_the_clips_variations_come_back_from_its_render_folder(qtbot, tmp_path, engine, clip):
    renders = tmp_path / "renders"
    first = make_window(qtbot, engine, tmp_path, renders)
    open_clip(qtbot, first, clip)
    wait_done(qtbot, first, first.vamp())
    made = sorted(v.audio_path for v in first.variations_panel.variations())
    first.close()
    other = write_wav(tmp_path / "other.wav", tone(0.5, freq_hz=300.0), 44100)
    second = make_window(qtbot, engine, tmp_path / "again", renders)  # a fresh window: an empty list
    with qtbot.waitSignal(second.variations_reloaded, timeout=10000) as reloaded:
        open_clip(qtbot, second, other)  # another clip: its own (no) variations
    assert reloaded.args == [0] and second.variations_panel.variations() == []
    with qtbot.waitSignal(second.variations_reloaded, timeout=10000) as reloaded:
        second.open_file(clip)
    assert reloaded.args == [2]
    assert sorted(v.audio_path for v in second.variations_panel.variations()) == made
    assert all(v.take_name.startswith("vamp ") for v in second.variations_panel.variations())
    second.close()


def test_use_recipe_of_a_variation_without_effects_keeps_effects_none(qtbot, window, clip):
    open_clip(qtbot, window, clip)
    window.sampling_panel.fx.setCurrentText("none")
    wait_done(qtbot, window, window.vamp())
    window.sampling_panel.fx.setCurrentText("glue")
    window.variations_panel.select(window.variations_panel.variations()[0])
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.variations_panel.use_recipe.click()
    assert window.sampling_panel.fx.currentText() == "none"


def test_show_tokens_has_a_legend_and_goes_off_when_the_mask_or_clip_changes(qtbot, window, clip, tmp_path):
    open_clip(qtbot, window, clip)
    wait_done(qtbot, window, window.vamp())
    panel = window.variations_panel
    panel.changes.setChecked(True)
    qtbot.waitUntil(lambda: window.grid.overlay is not None, timeout=10000)
    assert not panel.legend.isHidden() and "changed by this variation" in panel.legend.text()
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.sampling_panel.roll_seed()  # a re-roll: the grid shows another mask
    assert window.grid.overlay is None and not panel.changes.isChecked() and panel.legend.isHidden()
    panel.changes.setChecked(True)
    qtbot.waitUntil(lambda: window.grid.overlay is not None, timeout=10000)
    open_clip(qtbot, window, write_wav(tmp_path / "next.wav", tone(0.5, freq_hz=250.0), 44100))
    assert window.grid.overlay is None and not panel.changes.isChecked()


def test_without_audio_output_the_reason_shows_and_the_system_player_is_offered(qtbot, tmp_path, engine, clip):
    player = Player()
    player.available, player.reason = False, "no audio output device found"
    window = make_window(qtbot, engine, tmp_path, tmp_path / "renders", player=player)
    open_clip(qtbot, window, clip)
    wait_done(qtbot, window, window.vamp())
    panel = window.variations_panel
    window.show()
    qtbot.waitExposed(window)
    assert panel.no_audio.isVisible() and "Can't play here: no audio output device found" in panel.no_audio.text()
    assert not panel.play.isEnabled() and panel.open_external.isEnabled() and panel.reveal.isEnabled()
    opened = []
    window._open_url = lambda url: opened.append(url.toLocalFile()) or True
    panel.open_external.click()
    panel.reveal.click()
    current = panel.current()
    assert opened == [current.audio_path, str(Path(current.audio_path).parent)]
    # the listening keys: Space plays (here: says why it can't), A switches A/B, D rolls the seed
    from PyQt6.QtCore import Qt
    from PyQt6.QtWidgets import QApplication

    window.activateWindow()
    window.grid.setFocus()
    QApplication.processEvents()
    with qtbot.waitSignal(window.notice_shown, timeout=3000) as shown:
        qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_Space)
    assert "no audio output device found" in shown.args[0]
    with qtbot.waitSignal(window.notice_shown, timeout=3000):
        qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_A)
    seed = window.sampling_panel.seed.value()
    qtbot.keyClick(QApplication.focusWidget() or window, Qt.Key.Key_D)
    assert window.sampling_panel.seed.value() != seed
    window.close()
