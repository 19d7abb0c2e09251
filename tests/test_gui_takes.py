"""Takes back to Reaper (issue 14, defects 1 and 2): variations belong to the clip (the Reaper
item) they were made from, the list groups them per clip, newest first, and only the open clip's
go to its item; a missing Listener is found with one short ping, reported once, and a long send
can be cancelled."""

import socket
import threading
import time

import pytest

pytest.importorskip("pytestqt")

from bridge.osc.client import build_message  # noqa: E402
from gui.main_window import MainWindow  # noqa: E402
from gui.settings import Settings  # noqa: E402
from gui.variations_panel import Variation  # noqa: E402

from conftest import tone, write_wav  # noqa: E402


class FakeListener:
    """Reaper's Listener script as the companion sees it: pong to ping, take_added to take (after
    `delay_s`). Records what it received."""

    def __init__(self, delay_s: float = 0.0):
        from pythonosc.osc_message import OscMessage

        self._parse = OscMessage
        self.delay_s = delay_s
        self.received = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self):
        while not self._stop.is_set():
            try:
                data, sender = self.sock.recvfrom(65536)
            except (socket.timeout, OSError):
                continue
            msg = self._parse(data)
            self.received.append((msg.address, tuple(msg.params)))
            request_id, reply_port = msg.params[0], msg.params[1]
            if msg.address.endswith("/ping"):
                reply = build_message("/vampbridge/pong", (request_id, ""))
            else:
                time.sleep(self.delay_s)
                reply = build_message("/vampbridge/take_added", (request_id, True, "added"))
            self.sock.sendto(reply, (sender[0], reply_port))

    def takes(self):
        return [params for address, params in self.received if address.endswith("/take")]


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def window(qtbot, tmp_path):
    w = MainWindow(None, Settings(tmp_path / "companion.ini"))
    qtbot.addWidget(w)
    w.sampling_panel.output_dir.setText(str(tmp_path / "renders"))
    yield w
    w.close()
    w.deleteLater()


@pytest.fixture
def songs(tmp_path):
    return (write_wav(tmp_path / "demo.wav", tone(1.0), 44100),
            write_wav(tmp_path / "other.wav", tone(1.0, freq_hz=330.0), 44100))


def variation_of(path, item_guid, k, made_s):
    """A finished variation made from `path` as Reaper's item `item_guid` (no files needed to send)."""
    return Variation(f"job-{item_guid}", k, 100 + k, f"/tmp/{item_guid}-{k}.wav", f"/tmp/{item_guid}-{k}.json",
                     f"vamp {k + 1} custom s{100 + k}", item_guid, str(path), 0.0, 1.0, made_s)


def open_from_reaper(qtbot, window, path, item_guid):
    with qtbot.waitSignal(window.mask_generated, timeout=20000):
        window.open_file(path, 0.0, 1.0, item_guid=item_guid, take_guid="{T}")


def test_only_the_open_clips_variations_go_to_its_item(qtbot, window, songs):
    demo, other = songs
    open_from_reaper(qtbot, window, demo, "{DEMO}")
    for k in range(3):
        window.variations_panel.add(variation_of(demo, "{DEMO}", k, 1000 + k))
    open_from_reaper(qtbot, window, other, "{OTHER}")  # Reaper opened another item
    for k in range(2):
        window.variations_panel.add(variation_of(other, "{OTHER}", k, 2000 + k))
    # every variation is ticked, but only the open clip's two may go to its item
    assert len(window.variations_panel.chosen()) == 5
    assert window.variations_panel.send.text() == "Send 2 to Reaper"
    with FakeListener() as listener:
        window.settings.set("reaper/listener_port", listener.port)
        with qtbot.waitSignal(window.takes_sent, timeout=10000) as sent:
            window.variations_panel.send.click()
    assert [o.ok for o in sent.args[0]] == [True, True]
    assert {t[3] for t in listener.takes()} == {"{OTHER}"}
    assert sorted(t[4] for t in listener.takes()) == ["/tmp/{OTHER}-0.wav", "/tmp/{OTHER}-1.wav"]


def test_variations_of_another_clip_are_refused_with_a_reason(qtbot, window, songs):
    demo, other = songs
    open_from_reaper(qtbot, window, other, "{OTHER}")
    stale = [variation_of(demo, "{DEMO}", 0, 1.0)]
    with qtbot.waitSignal(window.notice_shown, timeout=5000) as shown:
        window.send_to_reaper(stale)
    assert "None of the ticked variations were made from other.wav" in shown.args[0]


def test_the_list_groups_variations_per_clip_newest_first(qtbot, window, songs):
    demo, other = songs
    panel = window.variations_panel
    panel.add(variation_of(demo, "{DEMO}", 0, 10.0))
    panel.add(variation_of(other, "{OTHER}", 0, 20.0))
    panel.add(variation_of(demo, "{DEMO}", 1, 30.0))
    # the clip with the newest variation on top, and in each group the newest first
    assert panel.group_keys() == [("item", "{DEMO}"), ("item", "{OTHER}")]
    assert [(v.item_guid, v.index) for v in panel.variations()] == [("{DEMO}", 1), ("{DEMO}", 0), ("{OTHER}", 0)]
    top = panel.tree.topLevelItem(0)
    assert top.text(0).startswith("demo.wav") and top.childCount() == 2
    open_from_reaper(qtbot, window, other, "{OTHER}")
    assert "open clip" in panel.tree.topLevelItem(1).text(0)
    assert panel.tree.topLevelItem(1).isExpanded()
    # names are shown whole (the list scrolls sideways instead of cutting them)
    window.resize(1280, 720)
    window.show()
    qtbot.waitExposed(window)
    metrics = panel.tree.fontMetrics()
    for k in range(top.childCount()):
        item = top.child(k)
        assert panel.tree.visualItemRect(item).width() >= metrics.horizontalAdvance(item.text(0))


def test_send_without_a_listener_fails_fast_with_one_message(qtbot, window, songs):
    demo, _ = songs
    open_from_reaper(qtbot, window, demo, "{DEMO}")
    takes = [variation_of(demo, "{DEMO}", k, k) for k in range(22)]
    window.settings.set("reaper/listener_port", free_udp_port())  # nobody listens there
    started = time.monotonic()
    with qtbot.waitSignal(window.takes_sent, timeout=10000):
        window.send_to_reaper(takes)
    assert time.monotonic() - started < 3.0  # one short check, not 3 s per take
    text = window.notice.label.text()
    assert text.count("Reaper did not answer on port") == 1 and "Nothing was sent" in text
    assert window.notice.level == "error" and not window.notice.isHidden()


def test_a_long_send_can_be_cancelled_and_says_how_many_went(qtbot, window, songs):
    demo, _ = songs
    open_from_reaper(qtbot, window, demo, "{DEMO}")
    takes = [variation_of(demo, "{DEMO}", k, k) for k in range(20)]
    with FakeListener(delay_s=0.1) as listener:
        window.settings.set("reaper/listener_port", listener.port)
        window.send_to_reaper(takes)
        assert window.notice.action_button.text() == "Cancel" and not window.notice.action_button.isHidden()
        qtbot.waitUntil(lambda: len(listener.takes()) >= 2, timeout=5000)
        with qtbot.waitSignal(window.takes_sent, timeout=10000) as sent:
            window.notice.action_button.click()
    assert 2 <= len(sent.args[0]) < 20
    assert window.notice.label.text().startswith(f"Cancelled: added {len(sent.args[0])} of 20 take(s)")
