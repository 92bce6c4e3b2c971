"""Run a pipeline's stages in order inside one run directory, resumably.

``python -m engine run --config CONFIG --run-dir DIR [--stages a,b] [KEY=VALUE ...]`` calls
``run_pipeline``. For each selected stage, in ``STAGE_ORDER``:

- ``completed`` in state.json: skipped, with a ``stage/skipped`` event saying why;
- otherwise marked ``running`` (pid, host, attempt), its ``run(ctx)`` called, and the outcome
  recorded: ``completed`` with the stage's summary, ``failed`` with the reason, or
  ``interrupted`` when SIGTERM/SIGINT asked it to stop (it saves what it has and returns;
  the pipeline then exits with 143 so a requeued job resumes).

A stage left ``running`` by a killed process is simply run again: stages are idempotent
(they skip work already in the store and caches), which is what makes this safe.

Only rank 0 writes state.json; every rank gets its own event and log file. Leaves out:
launching multi-rank work (the scheduler in ``remote/`` starts one engine per rank).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

from engine.context import StageContext
from engine.events import EventWriter
from engine.rundir import RunDir, RunDirError
from engine.schema import STAGE_ORDER, PipelineConfig
from engine.stages import IMPLEMENTED, load_stage
from engine.stages.errors import StageError

EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 143  # 128 + SIGTERM, what schedulers expect from a terminated job


class PipelineRefused(Exception):
    """The request cannot run as asked; the message says what to change. Nothing was done."""


@dataclass(frozen=True)
class Distributed:
    rank: int
    world_size: int

    @classmethod
    def from_env(cls) -> Distributed:
        # torchrun sets RANK/WORLD_SIZE; a bare `srun python -m engine` sets only SLURM_*.
        env = os.environ
        rank = int(env.get("RANK") or env.get("SLURM_PROCID") or 0)
        world = int(env.get("WORLD_SIZE") or env.get("SLURM_NTASKS") or 1)
        return cls(rank, world)


def select_stages(config: PipelineConfig, requested: Sequence[str] | None) -> list[str]:
    """The stages to run, in pipeline order; refuses unknown, disabled or missing ones."""
    if requested:
        unknown = [s for s in requested if s not in STAGE_ORDER]
        if unknown:
            raise PipelineRefused(
                f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGE_ORDER)}")
        disabled = [s for s in requested if not config.stage(s).enabled]
        if disabled:
            fixes = " ".join(f"{s}.enabled=true" for s in disabled)
            raise PipelineRefused(
                f"stage(s) {', '.join(disabled)} are disabled in the config; enable them "
                f"(e.g. add {fixes}) or leave them out of --stages")
        chosen = [s for s in STAGE_ORDER if s in requested]
    else:
        chosen = config.enabled_stages()
    if not chosen:
        raise PipelineRefused("no stage is enabled; enable one (e.g. seeds.enabled=true)")
    missing = [s for s in chosen if s not in IMPLEMENTED]
    if missing:
        done = ", ".join(IMPLEMENTED)
        raise PipelineRefused(
            f"stage(s) {', '.join(missing)} are not implemented in this engine version "
            f"(implemented: {done}); disable them (e.g. {missing[0]}.enabled=false) or pick "
            f"implemented ones with --stages {done}")
    return chosen


class _StopOnSignal:
    """SIGTERM/SIGINT set the stop flag once; stages finish their unit of work and return."""

    def __init__(self, stop: threading.Event, log: logging.Logger):
        self.stop, self.log, self.previous = stop, log, {}

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, _frame: object) -> None:
        if self.stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C means now
        self.log.warning("received %s: finishing the current unit of work, then saving",
                         signal.Signals(signum).name)
        self.stop.set()

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def _stage_logger(run: RunDir, stage: str, rank: int) -> tuple[logging.Logger, logging.Handler]:
    log = logging.getLogger(f"engine.{stage}.{rank}")
    log.setLevel(logging.INFO)
    handler = logging.FileHandler(run.log_file(stage, rank), encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    return log, handler


def run_pipeline(config: PipelineConfig, config_text: str, run: RunDir,
                 stages: Sequence[str] | None = None, *, allow_config_change: bool = False,
                 dist: Distributed | None = None) -> int:
    """Run the selected stages; returns an exit code (see EXIT_*).

    Raises ``PipelineRefused`` or ``RunDirError`` before anything is written when the request
    cannot run.
    """
    chosen = select_stages(config, stages)
    dist = dist or Distributed.from_env()
    run.create()
    with run.lock() if dist.rank == 0 else contextlib.nullcontext():
        if dist.rank == 0:
            run.write_config(config_text, allow_change=allow_config_change)
        state = run.read_state()
        for name in chosen:
            if state.stage(name).status == "completed":
                with EventWriter.for_run(run.events_dir, name, dist.rank) as ev:
                    ev.stage("skipped", reason="completed in an earlier run")
                continue
            code = _run_one(config, run, name, dist)
            if code != EXIT_OK:
                return code
    return EXIT_OK


def _run_one(config: PipelineConfig, run: RunDir, name: str, dist: Distributed) -> int:
    module = load_stage(name)
    log, handler = _stage_logger(run, name, dist.rank)
    stop = threading.Event()
    lead = dist.rank == 0
    with EventWriter.for_run(run.events_dir, name, dist.rank) as ev, _StopOnSignal(stop, log):
        if lead:
            prev = run.read_state().stage(name)
            if prev.status in ("running", "interrupted"):
                log.info("resuming %s (attempt %d by pid %s did not finish)",
                         name, prev.attempts, prev.pid)
            run.update_stage(name, status="running", attempts=prev.attempts + 1,
                             started_at=time.time(), finished_at=None, pid=os.getpid(),
                             host=socket.gethostname(), reason=None, summary=None)
        ev.stage("started")
        ctx = StageContext(config=config, run=run, stage=name, events=ev, log=log,
                           rank=dist.rank, world_size=dist.world_size, stop_event=stop)
        try:
            summary = module.run(ctx) or {}
        except StageError as e:
            return _finish(run, ev, log, name, lead, "failed", str(e), None, EXIT_STAGE_FAILED)
        except Exception as e:  # a bug or an environment problem: keep the evidence
            log.error("stage %s crashed:\n%s", name, traceback.format_exc())
            reason = f"{type(e).__name__}: {e} (traceback in {run.log_file(name, dist.rank)})"
            return _finish(run, ev, log, name, lead, "failed", reason, None, EXIT_STAGE_FAILED)
        finally:
            ctx.close()
            log.removeHandler(handler)
            handler.close()
        if summary.get("interrupted") or stop.is_set():
            return _finish(run, ev, log, name, lead, "interrupted",
                           "stopped by a signal; rerun the same command to resume", summary,
                           EXIT_INTERRUPTED)
        return _finish(run, ev, log, name, lead, "completed", None, summary, EXIT_OK)


def _finish(run: RunDir, ev: EventWriter, log: logging.Logger, name: str, lead: bool,
            status: str, reason: str | None, summary: dict | None, code: int) -> int:
    if lead:
        run.update_stage(name, status=status, finished_at=time.time(), reason=reason,
                         summary=summary, pid=None)
    ev.stage(status, reason=reason, summary=summary)
    if status == "failed":
        log.error("stage %s failed: %s", name, reason)
    return code


__all__ = ["run_pipeline", "select_stages", "PipelineRefused", "RunDirError", "Distributed"]
