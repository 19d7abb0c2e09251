"""Run a plain function on Qt's thread pool and get its result back on the UI thread as a signal.

    run_in_background(load_clip, path, on_result=show_clip, on_error=show_error)

`on_result(value)` and `on_error(exception)` are called on the UI thread.

Used for everything slow that is not engine work (reading and analysing clips, building
audio-driven masks, loading token files, talking to the Reaper listener). Engine work goes
through the job service's own worker thread (`engine_bridge.py`).
"""

from __future__ import annotations

from PyQt6 import sip
from PyQt6.QtCore import QCoreApplication, QObject, QRunnable, QThreadPool, pyqtSignal


class Task(QObject):
    """Carries one background call's outcome to the UI thread."""

    finished = pyqtSignal(object)
    failed = pyqtSignal(object)


class _Runnable(QRunnable):
    def __init__(self, task: Task, fn, args, kwargs):
        super().__init__()
        self.task, self.fn, self.args, self.kwargs = task, fn, args, kwargs
        self.setAutoDelete(True)

    def run(self):
        try:
            result = self.fn(*self.args, **self.kwargs)
        except Exception as e:  # delivered to the UI, which shows it as a message
            self.task.failed.emit(e)
        else:
            self.task.finished.emit(result)
        finally:
            self.task = None


def run_in_background(fn, *args, on_result=None, on_error=None, owner: QObject | None = None, **kwargs) -> Task:
    """Start `fn(*args, **kwargs)` on the global thread pool. The callbacks are connected before
    the work starts, so a result is never emitted to nobody; with `owner`, they are skipped once
    that object is deleted (a result that comes back after its window closed)."""
    if owner is not None:
        on_result, on_error = _while_alive(owner, on_result), _while_alive(owner, on_error)
    # Owned by the application, not by Python: otherwise the worker thread could drop the last
    # Python reference and delete the QObject there while the UI thread still delivers its signal
    # (a crash). deleteLater runs on the UI thread after the callbacks.
    task = Task(QCoreApplication.instance())
    if on_result is not None:
        task.finished.connect(on_result)
    if on_error is not None:
        task.failed.connect(on_error)
    task.finished.connect(task.deleteLater)
    task.failed.connect(task.deleteLater)
    QThreadPool.globalInstance().start(_Runnable(task, fn, args, kwargs))
    return task


def _while_alive(owner: QObject, callback):
    if callback is None:
        return None

    def call(value):
        if not sip.isdeleted(owner):
            callback(value)
    return call
