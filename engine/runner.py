"""Run a pipeline's stages in order inside one run directory, resumably.

``python -m engine run --config CONFIG --run-dir DIR [--stages a,b] [KEY=VALUE ...]`` calls
``run_pipeline``. For each selected stage, in ``STAGE_ORDER``:

- ``completed`` in state.json: skipped, with a ``stage/skipped`` event saying why;
- otherwise marked ``running`` (pid, host, attempt), its ``run(ctx)`` called, and the outcome
  recorded: ``completed`` with the stage's summary, ``failed`` with the reason, or
  ``interrupted`` when SIGTERM/SIGINT asked it to stop (it saves what it has and returns;
  the pipeline then exits with 143 so a requeued job resumes). A ``StageError`` or an
  ``LLMError`` (a refused key, a wrong URL or model: a configuration error) fails the stage
  with its message and no traceback; any other exception is a crash, its traceback logged.

A stage left ``running`` by a killed process is simply run again: stages are idempotent
(they skip work already in the store and caches), which is what makes this safe.

Only rank 0 writes state.json; every rank gets its own event and log file. Each stage's
writer also hands its metrics to the TensorBoard / W&B sinks ``run.metrics`` asks for
(engine/metrics_export.py). Leaves out:
launching multi-rank work (the scheduler in ``remote/`` starts one engine per rank).

Rejections asked again: ``--retry-rejected CODE`` (repeatable; ``run_pipeline(...,
retry_rejected=[CODE])``) first drops the rejections of the chosen stages whose reason code is
CODE or ends in ``_CODE`` (``llm_http_400`` matches ``extract_llm_http_400`` of features,
``select_llm_http_400`` of tasks and ``llm_http_400`` of solutions; ``Store.forget_rejected``),
then runs the stages; the first stage with such items and the chosen stages after it run even
when completed, so that what the new items lead to is made too. Meant for after a config
change (``--update-config``), e.g. a 400 for a prompt over the context once
``llms.NAME.context_length`` or ``max_tokens`` is fixed. Not with ``--shard``.

Shards: ``--shard I/N`` (``run_pipeline(..., shard_index=I, shard_count=N)``) runs shard I of N
of the stages in ``engine.schema.SHARDABLE_STAGES`` (others are refused). Shard processes of one
run may run at once on one node: each takes a *shared* lock on the run dir (an unsharded
launch, which takes it exclusively, cannot overlap them), writes ``events/<stage>.<I>.jsonl``
and ``logs/<stage>.<I>.log`` (rank = I), and records its own outcome in state.json under
``<stage>@<I>of<N>`` (read-modify-write under a short exclusive lock on ``.state.lock``). The
stage's own entry is marked ``completed`` only by the shard that finds all N shard entries
completed (its summary lists theirs), so a later unsharded rerun skips the stage then and only
then. A shard whose entry is completed is skipped on a rerun. With N = 1 nothing changes.

Shard stores: a shard never writes the run's store. It reads it read-only and writes its own
file ``data/shards/<stage>.<I>of<N>.sqlite`` (``engine.store.ShardOutbox``), so shards on
several nodes of a network file system never share a writable SQLite file. The shard that
finds all N entries completed (under the ``.state.lock``) merges the N files into the store
(``roll_up``: ``Store.merge_from`` per file, one transaction each, recorded in
``merged_shards``) and only then marks the stage completed: one writer, and no shard still
writing. If the merge fails (a crash, a lost node), the stage is marked ``failed`` with the
fix; rerunning any shard (it is skipped, then retries the merge) or ``python -m engine merge
--run-dir DIR --stage S`` (``merge_stage``; e.g. a Slurm dependency job) finishes it, redoing
only files not yet merged. ``.lock`` / ``.state.lock`` are flocks, which hold across nodes
only where the network file system supports them (NFSv4, Lustre with ``flock``, GPFS).
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from engine.context import StageContext, StageError
from engine.events import EventWriter
from engine.llm import LLMError
from engine.metrics_export import attach_metric_sinks
from engine.rundir import RunDir, RunDirError
from engine.schema import SHARDABLE_STAGES, STAGE_ORDER, PipelineConfig

EXIT_OK = 0
EXIT_STAGE_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 143  # 128 + SIGTERM, what schedulers expect from a terminated job


# Stages whose rejections are records a rerun skips: --retry-rejected can forget them.
RETRYABLE_STAGES = ("features", "tasks", "solutions")


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


# Stage name -> the module that implements it, imported when the stage runs (so the stages
# never import the runner back). A config that enables a stage missing here is refused.
IMPLEMENTED: dict[str, str] = {
    "seeds": "engine.stages.seeds",
    "features": "engine.stages.features",
    "evolve": "engine.stages.evolve",
    "tasks": "engine.stages.tasks",
    "solutions": "engine.stages.solutions",
    "tests": "engine.stages.tests",
    "verify": "engine.stages.verify",
    "curate": "engine.stages.curate",
    "sft": "engine.stages.sft",
    "rl": "engine.stages.rl",
    "eval": "engine.stages.eval",
}


def load_stage(name: str) -> ModuleType:
    """Import the module of an implemented stage (KeyError for one that is not)."""
    return importlib.import_module(IMPLEMENTED[name])


def shard_key(stage: str, shard_index: int, shard_count: int) -> str:
    """The state.json entry of one shard's outcome (the stage's own name when unsharded)."""
    return stage if shard_count == 1 else f"{stage}@{shard_index}of{shard_count}"


def parse_shard(text: str) -> tuple[int, int]:
    """``"1/4"`` -> (1, 4); ValueError with what to write otherwise."""
    parts = text.split("/")
    try:
        index, count = (int(p) for p in parts)
    except ValueError:
        raise ValueError(f"--shard {text!r}: write I/N, e.g. 0/4 for the first of 4 shards") \
            from None
    if count < 1 or not 0 <= index < count:
        raise ValueError(f"--shard {text!r}: need N >= 1 and 0 <= I < N (I counts from 0)")
    return index, count


def _refuse_unshardable(chosen: Sequence[str], shard_count: int) -> None:
    if shard_count == 1:
        return
    flat = [s for s in chosen if s not in SHARDABLE_STAGES]
    if flat:
        shardable = [s for s in STAGE_ORDER if s in SHARDABLE_STAGES]
        raise PipelineRefused(
            f"stage(s) {', '.join(flat)} cannot run as shards; run them without --shard, or "
            f"pick shardable stages with --stages {','.join(shardable) or '(none)'}")


@contextlib.contextmanager
def _flock(path: os.PathLike[str] | str, mode: int, busy: str | None = None):
    """Hold an flock on ``path``; with ``busy``, fail at once (RunDirError) when taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, mode | (fcntl.LOCK_NB if busy else 0))
        except BlockingIOError:
            raise RunDirError(busy) from None
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _shard_locks(run: RunDir, shard_count: int):
    """(whole-run lock, state.json update lock) for a launch; see the module docstring."""
    if shard_count == 1:
        return run.lock(), contextlib.nullcontext
    busy = (f"an unsharded engine process is running {run.root}; wait for it or cancel it "
            "before starting shards of this run")
    return (_flock(run.root / ".lock", fcntl.LOCK_SH, busy),
            lambda: _flock(run.root / ".state.lock", fcntl.LOCK_EX))


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


def forget_rejected(run: RunDir, chosen: Sequence[str], reasons: Sequence[str]) -> dict[str, int]:
    """For ``--retry-rejected``: drop the chosen stages' rejections with these reason codes
    (``Store.forget_rejected``). -> items forgotten per stage that had any."""
    if not reasons or not run.store_path.exists():
        return {}
    from engine.store import Store

    out: dict[str, int] = {}
    with Store(run.store_path) as store:
        for stage in chosen:
            if stage in RETRYABLE_STAGES:
                n = sum(store.forget_rejected(stage, r) for r in reasons)
                if n:
                    out[stage] = n
    return out


def run_pipeline(config: PipelineConfig, config_text: str, run: RunDir,
                 stages: Sequence[str] | None = None, *, allow_config_change: bool = False,
                 dist: Distributed | None = None, shard_index: int = 0,
                 shard_count: int = 1, retry_rejected: Sequence[str] = ()) -> int:
    """Run the selected stages; returns an exit code (see EXIT_*).

    ``shard_index`` / ``shard_count``: run shard I of N of shardable stages (module
    docstring). ``retry_rejected``: reason codes whose rejected items are asked again (module
    docstring). Raises ``PipelineRefused`` or ``RunDirError`` before anything is written when
    the request cannot run.
    """
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise PipelineRefused(f"shard {shard_index}/{shard_count}: need 0 <= I < N")
    chosen = select_stages(config, stages)
    _refuse_unshardable(chosen, shard_count)
    sharded = shard_count > 1
    if retry_rejected and sharded:
        raise PipelineRefused(
            "--retry-rejected changes the run's store, which shards only read: run it once "
            "without --shard (e.g. --stages tasks --retry-rejected llm_http_400), then the "
            "shards as before")
    bad = [r for r in retry_rejected if not r or not r.replace("_", "").isalnum()]
    if bad:
        raise PipelineRefused(
            f"--retry-rejected {bad[0]!r}: give a reason code (letters, digits, _), the part "
            "of a rejection's reason before its ':', e.g. llm_http_400 or truncated")
    if sharded:  # shard I of N is rank I of N: its own event and log files
        dist = Distributed(shard_index, shard_count)
    dist = dist or Distributed.from_env()
    run.create()
    run_lock, state_lock = _shard_locks(run, shard_count)
    writes_state = sharded or dist.rank == 0
    with run_lock if writes_state else contextlib.nullcontext():
        if writes_state:
            with state_lock():
                run.write_config(config_text, allow_change=allow_config_change)
        rerun: set[str] = set()
        if retry_rejected and writes_state:
            forgotten = forget_rejected(run, chosen, retry_rejected)
            log = logging.getLogger("engine.runner")
            log.info("--retry-rejected %s: %s", ",".join(retry_rejected), ", ".join(
                f"{n} {s} item(s) to ask again" for s, n in forgotten.items()) or "none found")
            if forgotten:  # that stage, and the chosen ones after it, run again if completed
                first = min(chosen.index(s) for s in forgotten)
                rerun = set(chosen[first:])
        for name in chosen:
            with state_lock():
                state = run.read_state()
            key = shard_key(name, shard_index, shard_count)
            done = [k for k in dict.fromkeys((name, key)) if state.stage(k).status == "completed"]
            if done and name not in rerun:
                if sharded and name not in done:  # a merge that did not happen or finish
                    try:
                        with state_lock():
                            roll_up(run, name, shard_count, logging.getLogger("engine.runner"))
                    except Exception as e:
                        print(f"error: merging the shards of {name} failed: "
                              f"{type(e).__name__}: {e}", file=sys.stderr)
                        return EXIT_STAGE_FAILED
                with EventWriter.for_run(run.events_dir, name, dist.rank) as ev:
                    ev.stage("skipped", reason=f"{done[0]} completed in an earlier run")
                continue
            code = _run_one(config, run, name, dist, shard_index, shard_count, state_lock)
            if code != EXIT_OK:
                return code
    return EXIT_OK


def _run_one(config: PipelineConfig, run: RunDir, name: str, dist: Distributed,
             shard_index: int = 0, shard_count: int = 1,
             state_lock=contextlib.nullcontext) -> int:
    module = load_stage(name)
    log, handler = _stage_logger(run, name, dist.rank)
    stop = threading.Event()
    lead = shard_count > 1 or dist.rank == 0  # who writes this outcome to state.json
    key = shard_key(name, shard_index, shard_count)
    with EventWriter.for_run(run.events_dir, name, dist.rank) as ev, _StopOnSignal(stop, log):
        attach_metric_sinks(ev, config, run, name, dist.rank)  # TensorBoard, W&B: run.metrics
        if lead:
            with state_lock():
                prev = run.read_state().stage(key)
                if prev.status == "interrupted":  # it stopped cleanly and saved its work
                    log.info("resuming %s after attempt %d was interrupted", key, prev.attempts)
                elif prev.status == "running":  # killed, or still running elsewhere
                    log.info("resuming %s (attempt %d by pid %s on %s did not finish)",
                             key, prev.attempts, prev.pid, prev.host or "an unknown host")
                run.update_stage(key, status="running", attempts=prev.attempts + 1,
                                 started_at=time.time(), finished_at=None, pid=os.getpid(),
                                 host=socket.gethostname(), reason=None, summary=None)
        ev.stage("started")
        ctx = StageContext(config=config, run=run, stage=name, events=ev, log=log,
                           rank=dist.rank, world_size=dist.world_size,
                           shard_index=shard_index, shard_count=shard_count, stop_event=stop)
        finish = _Finisher(run, ev, log, name, key, shard_count, lead, state_lock)
        try:
            summary = module.run(ctx) or {}
        except StageError as e:
            return finish("failed", str(e), None, EXIT_STAGE_FAILED)
        except LLMError as e:  # a 401/404, a wrong model, a missing backend: fix the config
            return finish("failed", f"LLM configuration error: {e}", None, EXIT_STAGE_FAILED)
        except Exception as e:  # a bug or an environment problem: keep the evidence
            log.error("stage %s crashed:\n%s", name, traceback.format_exc())
            reason = f"{type(e).__name__}: {e} (traceback in {run.log_file(name, dist.rank)})"
            return finish("failed", reason, None, EXIT_STAGE_FAILED)
        finally:
            ctx.close()
            log.removeHandler(handler)
            handler.close()
        if summary.get("interrupted") or stop.is_set():
            return finish("interrupted", "stopped by a signal; rerun the same command to resume",
                          summary, EXIT_INTERRUPTED)
        return finish("completed", None, summary, EXIT_OK)


@dataclass
class _Finisher:
    run: RunDir
    ev: EventWriter
    log: logging.Logger
    name: str
    key: str  # the state.json entry: the stage, or one shard of it
    shard_count: int
    lead: bool
    state_lock: object

    def __call__(self, status: str, reason: str | None, summary: dict | None,
                 code: int) -> int:
        if not self.lead:
            return _finish(self.run, self.ev, self.log, self.name, False, status, reason,
                           summary, code)
        with self.state_lock():
            _finish(self.run, self.ev, self.log, self.key, True, status, reason, summary, code)
            if status == "completed" and self.shard_count > 1:
                return self._roll_up()
        return code

    def _roll_up(self) -> int:
        """Merge the shard files and mark the stage completed once every shard is."""
        try:
            roll_up(self.run, self.name, self.shard_count, self.log)
        except Exception as e:  # the shard's own entry stays completed; a rerun retries
            self.log.error("merging the shards of %s failed:\n%s", self.name,
                           traceback.format_exc())
            reason = (f"merging the shard files failed: {type(e).__name__}: {e}; rerun any "
                      f"shard or `python -m engine merge --run-dir {self.run.root} --stage "
                      f"{self.name}`")
            self.run.update_stage(self.name, status="failed", finished_at=time.time(),
                                  reason=reason, pid=None)
            self.ev.stage("failed", reason=reason)
            return EXIT_STAGE_FAILED
        return EXIT_OK


def shard_files(run: RunDir, stage: str, shard_count: int) -> list:
    """The N shard files of a stage (``data/shards/<stage>.<I>of<N>.sqlite``), in order."""
    from engine.store import shard_file

    return [shard_file(run.data_dir, stage, i, shard_count) for i in range(shard_count)]


def roll_up(run: RunDir, stage: str, shard_count: int, log: logging.Logger | None = None
            ) -> dict | None:
    """If all N shard entries of ``stage`` are completed: merge their shard files into the
    run's store (one transaction per file, recorded in ``merged_shards``, so a crash midway
    redoes only the unmerged files) and then mark the stage completed. -> the stage's
    summary, or None while a shard is not completed. Call it under the state lock: the
    caller is then the store's only writer. A missing shard file (a stage that writes
    nothing when sharded) is skipped."""
    from engine.store import Store

    state = run.read_state()
    keys = [shard_key(stage, i, shard_count) for i in range(shard_count)]
    if not all(state.stage(k).status == "completed" for k in keys):
        return None
    merged: dict[str, dict] = {}
    files = [f for f in shard_files(run, stage, shard_count) if f.is_file()]
    if files:
        with Store(run.store_path) as store:
            for path in files:
                merged[path.name] = store.merge_from(path)
    summary = {"shards": {k: state.stage(k).summary for k in keys}, "merged": merged}
    run.update_stage(stage, status="completed", finished_at=time.time(), reason=None,
                     pid=None, summary=summary)
    if log is not None:
        log.info("all %d shards of %s completed; merged %d shard files into the store",
                 shard_count, stage, len(files))
    return summary


def _finish(run: RunDir, ev: EventWriter, log: logging.Logger, name: str, lead: bool,
            status: str, reason: str | None, summary: dict | None, code: int) -> int:
    if lead:
        run.update_stage(name, status=status, finished_at=time.time(), reason=reason,
                         summary=summary, pid=None)
    ev.stage(status, reason=reason, summary=summary)
    if status == "failed":
        log.error("stage %s failed: %s", name, reason)
    return code


def merge_stage(run: RunDir, stage: str, shard_count: int | None = None) -> dict:
    """``python -m engine merge``: fold the shard files of a sharded stage into the store.

    ``shard_count`` defaults to the N of the ``<stage>@<I>of<N>`` entries in state.json.
    Refused (``PipelineRefused``) unless all N shards are completed, so no shard is writing;
    holds the same locks as a shard. -> the stage's summary (with ``merged`` counts)."""
    if stage not in IMPLEMENTED or stage not in SHARDABLE_STAGES:
        shardable = [s for s in STAGE_ORDER if s in SHARDABLE_STAGES]
        raise PipelineRefused(f"{stage!r} is not a shardable stage; pick one of "
                              f"{', '.join(shardable)}")
    if not run.state_path.exists():
        raise PipelineRefused(f"no state.json in {run.root}: no shard of {stage} has run there")
    if shard_count is None:
        counts = sorted({int(k.rsplit("of", 1)[1]) for k in run.read_state().stages
                         if k.startswith(f"{stage}@")})
        if len(counts) != 1:
            raise PipelineRefused(
                f"state.json has {'no' if not counts else 'several'} shard counts for {stage} "
                f"({', '.join(map(str, counts)) or 'none'}); pass --shards N")
        shard_count = counts[0]
    if shard_count < 2:
        raise PipelineRefused(f"--shards {shard_count}: shard files exist only for N >= 2")
    run_lock, state_lock = _shard_locks(run, shard_count)
    with run_lock, state_lock():
        state = run.read_state()
        keys = [shard_key(stage, i, shard_count) for i in range(shard_count)]
        waiting = [f"{k} ({state.stage(k).status})" for k in keys
                   if state.stage(k).status != "completed"]
        if waiting:
            raise PipelineRefused(f"not every shard of {stage} is completed: "
                                  f"{', '.join(waiting)}; rerun those shards first")
        summary = roll_up(run, stage, shard_count, logging.getLogger("engine.runner"))
    assert summary is not None
    return summary


__all__ = ["run_pipeline", "select_stages", "PipelineRefused", "RunDirError", "Distributed",
           "parse_shard", "shard_key", "shard_files", "roll_up", "merge_stage"]
