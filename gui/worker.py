"""The one way a widget gets slow work done: ``run_in_worker``.

Widgets never do I/O (ARCHITECTURE.md §7). A panel hands a Qt-free function (from remote/ or
engine/) to ``run_in_worker``; it runs on Qt's global thread pool and its outcome comes back
as signals on the GUI thread::

    job = run_in_worker(store.query_tasks, query, on_done=self._show_page,
                        on_failed=self.notify_error)
    # a function that reports progress takes a ``progress`` keyword and calls it:
    run_in_worker(sync, runner, progress=True, on_progress=bar.setValue)

``on_failed`` gets a ``WorkerError`` (the exception's type, message and formatted traceback),
so a failure is shown in the notification area, never lost and never a frozen window. Pass
every handler to ``run_in_worker``: they are connected before the work starts, whereas a slot
connected to the returned ``Job`` afterwards misses an outcome that was already emitted. The
``Job`` is kept alive until its outcome is delivered; ``Job.wait()`` is for tests and shutdown.
Left out: cancelling a running function (pass it a stop flag of your own).
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
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
                  owner: QObject | None = None, **kwargs: Any) -> Job:
    """Run ``fn(*args, **kwargs)`` on the thread pool; see the module docstring.

    ``owner``: the widget the handlers update. An outcome that arrives after it was deleted
    (its window closed while the work ran) is dropped instead of touching a dead widget."""
    job = Job()
    for signal, handler in ((job.done, on_done), (job.failed, on_failed),
                            (job.progress, on_progress)):
        if handler is not None:
            signal.connect(handler if owner is None else _while_alive(owner, handler))
    if progress:
        kwargs["progress"] = job.progress.emit
    # Held until its outcome is delivered: a caller that drops the Job still gets the signal.
    _LIVE.add(job)
    job.done.connect(lambda _: _LIVE.discard(job))
    job.failed.connect(lambda _: _LIVE.discard(job))
    QThreadPool.globalInstance().start(_Runnable(job, fn, args, kwargs))
    return job


_LIVE: set[Job] = set()


class JobCounter:
    """A widget's jobs whose outcome has not been delivered yet (its ``busy()`` for tests and
    shutdown). ``submit`` is ``run_in_worker`` with the count kept through the handlers, which
    are connected before the work starts, so no outcome slips past the count."""

    def __init__(self, owner: QObject) -> None:
        self.owner = owner
        self.pending = 0

    def busy(self) -> bool:
        return self.pending > 0

    def submit(self, fn: Callable[..., Any], *args: Any, on_done: Callable[[Any], None],
               on_failed: Callable[[WorkerError], None]) -> Job:
        self.pending += 1

        def finish(handler: Callable[[Any], None], outcome: Any) -> None:
            try:
                handler(outcome)
            finally:
                self.pending -= 1

        return run_in_worker(fn, *args, on_done=lambda r: finish(on_done, r),
                             on_failed=lambda e: finish(on_failed, e), owner=self.owner)


def _while_alive(owner: QObject, handler: Callable[[Any], None]) -> Callable[[Any], None]:
    def call(value: Any) -> None:
        if shiboken6.isValid(owner):
            handler(value)

    return call
