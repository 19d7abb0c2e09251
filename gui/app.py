"""`vampbridge gui [FILE]`: start the companion window with its embedded OSC service.

    main(file=None, model_dir=None, device=None) -> exit status

Builds the QApplication (dark theme), the `EngineBridge` (job service + OSC server on the port
from the settings, 9071 by default) and the `MainWindow`, opens FILE if given, and runs until the
window closes; then the running job is left `interrupted` (resumable) and the port is released.
Unexpected exceptions in Qt callbacks are shown in the window instead of ending it.
"""

from __future__ import annotations

import logging
import sys
import traceback

from PyQt6.QtWidgets import QApplication

log = logging.getLogger(__name__)


#: How long a thread may hold the GIL before another may take it. Python's default is 5 ms; the
#: engine's worker thread runs Python between its tensor operations, and 1 ms keeps the UI
#: thread's wait for the interpreter short without slowing the engine measurably.
GIL_SWITCH_INTERVAL_S = 0.001


def create_application(argv=None) -> QApplication:
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    app = QApplication.instance()
    if app is None:
        app = QApplication(list(argv or sys.argv[:1]))
    app.setApplicationName("VampBridge")
    app.setOrganizationName("VampBridge")
    from .theme import apply_dark_theme

    apply_dark_theme(app)
    return app


def create_window(file=None, model_dir=None, device=None, *, finetune=None, settings=None, osc_port=None):
    """The window with a started engine bridge (also what the screenshots and benchmarks use)."""
    from .engine_bridge import EngineBridge
    from .main_window import MainWindow
    from .settings import ConnectionSettings, Settings

    _preimport()

    settings = settings or Settings()
    connection = ConnectionSettings.read(settings)  # Edit > Settings… writes these; read once, here
    port = connection.osc_port if osc_port is None else osc_port
    bridge = EngineBridge(model_dir, device, finetune=finetune, osc_port=port, token=connection.token)
    window = MainWindow(bridge, settings)
    bridge.start()
    window._update_osc_label()
    if file:
        window.open_file(file)
    return window


def _preimport():
    """Import what the worker thread and the slots would otherwise import lazily mid-job: an
    import holds the import lock, and a UI slot importing the same module would wait for it."""
    import bridge.fx  # noqa: F401
    import bridge.pipeline  # noqa: F401
    import bridge.render  # noqa: F401
    import torch._dynamo  # noqa: F401  (pulled in by the first model load: ~800 modules, sympy included)
    import torch.nn.functional  # noqa: F401


def _install_excepthook(window):
    """A bug in a slot should cost the musician a message, not their session."""
    def hook(kind, value, tb):
        log.error("unexpected error:\n%s", "".join(traceback.format_exception(kind, value, tb)))
        try:
            window.show_notice(f"Something went wrong inside the companion ({kind.__name__}: {value}). "
                               "The window keeps working; if it happens again, please report it with the log.")
        except Exception:
            pass
    sys.excepthook = hook


def main(file=None, model_dir=None, device=None, finetune=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        from bridge.models import resolve_model_dir

        model_dir = resolve_model_dir(model_dir)
    except Exception as e:  # no models installed: say how to get them, no traceback
        print(f"vampbridge gui: {e}", file=sys.stderr)
        return 2
    app = create_application()
    window = create_window(file, model_dir, device, finetune=finetune)
    _install_excepthook(window)
    window.show()
    try:
        return app.exec()
    finally:
        window.bridge.close()
