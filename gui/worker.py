"""The one way a widget gets slow work done: ``run_in_worker``.

Widgets never do I/O (ARCHITECTURE.md §7). A panel hands a Qt-free function (from remote/ or
engine/) to ``run_in_worker``; it runs on Qt's global thread pool and its outcome comes back
as signals on the GUI thread::

    job = run_in_worker(store.query_tasks, query, on_done=self._show_page,
                        on_failed=self.notify_error)
    # a function that reports progress takes a ``progress`` keyword and calls it:
    run_in_worker(sync, runner, progress=True, on_progress=bar.setValue)

``on_failed`` gets a ``WorkerError`` (the exception's type, message and formatted traceback),
so a failure is shown in the notification area, never lost and never a frozen window. Keep the
returned ``Job`` if you want to connect more later (it is kept alive until its outcome is
delivered either way); ``Job.wait()`` is for tests and shutdown.
Left out: cancelling a running function (pass it a stop flag of your own).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal


@dataclass(frozen=True)
class WorkerError:
    kind: str  # the exception's class name
    message: str
    traceback: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.message}"


class Job(QObject):
    """Signals of one piece of work; emitted on the thread that owns this object (the GUI's)."""

    done = Signal(object)
    failed = Signal(object)  # WorkerError
    progress = Signal(object)

    def __init__(self) -> None:
        super().__init__()
        self._finished = threading.Event()
        self.result: Any = None
        self.error: WorkerError | None = None

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the function returned or raised (signals may still be queued)."""
        return self._finished.wait(timeout)


class _Runnable(QRunnable):
    def __init__(self, job: Job, fn: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        super().__init__()
        self.job, self.fn, self.args, self.kwargs = job, fn, args, kwargs
        self.setAutoDelete(True)

    def run(self) -> None:
        job = self.job
        try:
            job.result = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # reported to the GUI, which shows it
            job.error = WorkerError(type(exc).__name__, str(exc), traceback.format_exc())
            job._finished.set()
            job.failed.emit(job.error)
            return
        job._finished.set()
        job.done.emit(job.result)


def run_in_worker(fn: Callable[..., Any], *args: Any, progress: bool = False,
                  on_done: Callable[[Any], None] | None = None,
                  on_failed: Callable[[WorkerError], None] | None = None,
                  on_progress: Callable[[Any], None] | None = None,
                  **kwargs: Any) -> Job:
    """Run ``fn(*args, **kwargs)`` on the thread pool; see the module docstring."""
    job = Job()
    if on_done is not None:
        job.done.connect(on_done)
    if on_failed is not None:
        job.failed.connect(on_failed)
    if on_progress is not None:
        job.progress.connect(on_progress)
    if progress:
        kwargs["progress"] = job.progress.emit
    # Held until its outcome is delivered: a caller that drops the Job still gets the signal.
    _LIVE.add(job)
    job.done.connect(lambda _: _LIVE.discard(job))
    job.failed.connect(lambda _: _LIVE.discard(job))
    QThreadPool.globalInstance().start(_Runnable(job, fn, args, kwargs))
    return job


_LIVE: set[Job] = set()
