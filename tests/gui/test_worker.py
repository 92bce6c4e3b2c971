"""gui/worker.py: slow work off the GUI thread, outcomes back as signals on it."""

from __future__ import annotations

import threading

from PySide6.QtCore import QThread

from gui.worker import WorkerError, run_in_worker


def test_the_result_arrives_on_the_gui_thread(qtbot):
    gui = QThread.currentThread()
    seen = []

    def on_done(value):
        seen.append((value, QThread.currentThread() is gui))

    worker_thread = []
    job = run_in_worker(lambda a, b: (worker_thread.append(threading.get_ident()), a + b)[1],
                        2, 3, on_done=on_done)
    qtbot.waitUntil(lambda: bool(seen), timeout=5000)
    assert seen == [(5, True)] and worker_thread[0] != threading.get_ident()
    assert job.wait(1) and job.result == 5


def test_a_failure_is_reported_with_its_traceback(qtbot):
    errors: list[WorkerError] = []

    def boom():
        raise ValueError("no such host")

    run_in_worker(boom, on_failed=errors.append)
    qtbot.waitUntil(lambda: bool(errors), timeout=5000)
    assert errors[0].kind == "ValueError" and "no such host" in str(errors[0])
    assert "boom" in errors[0].traceback


def test_progress_is_passed_as_a_keyword_and_arrives_in_order(qtbot):
    steps = []

    def work(n, progress):
        for i in range(n):
            progress(i)
        return n

    done = []
    run_in_worker(work, 5, progress=True, on_progress=steps.append, on_done=done.append)
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    assert steps == [0, 1, 2, 3, 4]


def test_job_counter_is_busy_until_every_outcome_was_handled(qtbot):
    from PySide6.QtWidgets import QWidget

    from gui.worker import JobCounter

    owner = QWidget()
    qtbot.addWidget(owner)
    work = JobCounter(owner)
    gate = threading.Event()
    seen: list[object] = []
    work.submit(gate.wait, 5, on_done=seen.append, on_failed=seen.append)
    work.submit(int, "x", on_done=seen.append, on_failed=lambda e: seen.append(e.kind))
    assert work.busy() and work.pending == 2
    qtbot.waitUntil(lambda: seen == ["ValueError"], timeout=5000)
    assert work.busy()  # the first one still waits
    gate.set()
    qtbot.waitUntil(lambda: not work.busy(), timeout=5000)
    assert seen == ["ValueError", True]
