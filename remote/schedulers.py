"""Schedulers: start, watch and stop one engine stage of a run on a cluster (ARCHITECTURE.md §6).

A scheduler is built *on* a ``CommandRunner`` (SSH, or "This computer"), never a subclass of
one, so the same code drives a plain host and a Slurm login node over any link::

    sched = scheduler_for("slurm", runner, env={"SLURM_CONF": "/etc/slurm/slurm.conf"})
    job = StageJob(run_dir="~/synthsmith/runs/r1", stage="verify", shards=4,
                   config_path="~/synthsmith/runs/r1/config.yaml",
                   engine_dir="~/synthsmith/engine/abc123", resources=cfg.verify.resources)
    print(sched.preview(job))       # exactly what launch will run
    handle = sched.launch(job)      # JobHandle (keep it: it is all status/cancel need)
    sched.status(handle).state      # pending | running | completed | failed | cancelled | unknown
    sched.cancel(handle)

``DirectScheduler`` (a host without a batch system) starts ``python -m engine run`` in its own
session (``setsid nohup``) so it survives the SSH connection; a small wrapper shell records
its pid (= process group) before the engine starts and the engine's exit code after, in
``<run_dir>/jobs/<stage>.<token>[.<I>of<N>].{pid,exit}``. The wrapper traps SIGTERM with a
command (not ``''``, which children would inherit as "ignored"), so a TERM sent to the group
reaches the engine, which saves and exits 143, and the wrapper still records that code.
Cancel writes a ``.cancel`` marker, sends TERM to the group, waits ``grace_s`` and only then
sends KILL; a job that exits non-zero after a cancel reads as ``cancelled``.

``SlurmScheduler`` writes an sbatch script from the stage's ``Resources`` (uploaded to
``<run_dir>/jobs/<stage>.sbatch``) and submits it with ``sbatch --parsable``. The engine runs
under ``srun`` (one task per node; a sharded stage is a job array, ``--shard
$SLURM_ARRAY_TASK_ID/N``); a training stage (sft, rl) with more than one GPU or node runs
``python -m torch.distributed.run`` (torchrun) once per node with c10d rendezvous on the first
node, and torchrun sets the RANK/WORLD_SIZE the engine's ``Distributed.from_env`` reads.
``--signal=B:TERM@120`` sends SIGTERM to the batch shell two minutes before the limit; the
shell traps it and forwards it to srun, so the stage saves before Slurm kills it. Status reads
``squeue --states=all`` in a fixed-separator form (``%i|%T|%r|%N``: queued, running, and the
finished jobs Slurm still holds for ``MinJobAge``) and the engine's exit code from the
``jobs/<stage>.<job id>[_<task>].exit`` file the batch script writes when the engine ends;
``sacct -P`` only when squeue no longer knows the job and sacct exists (many clusters, and
the test cluster, have no accounting database). ``scontrol show job`` (``Key=value`` text)
is not parsed, and neither is ``squeue --json``: on Slurm 22.05 it ignores ``-j`` and dumps
every job of the cluster (seen on the test cluster), which on a busy one is megabytes per poll. Cancel is a plain
``scancel``: Slurm itself sends SIGTERM to the batch shell and every step, then SIGKILL after
the cluster's ``KillWait`` (30 s by default), which is the grace the engine saves in, and the
job ends ``CANCELLED`` (``scancel --signal=TERM`` would leave it to end ``FAILED`` with 143).

``status`` only reads (the probe, squeue, the exit files, sacct), so its commands are marked
``idempotent`` (``remote.runner``): a link dropped under one is reconnected and the question
asked again. ``launch`` and ``cancel`` are never sent twice.

Every value that reaches a shell goes through ``remote.quoting``; values of ``#SBATCH`` lines
are checked (no newline, which would add directives) or sanitised (the job name); paths go on
the sbatch command line, quoted, since sbatch's own directive parser knows no shell quoting.
Leaves out: job dependencies (a merge job after an array), heterogeneous jobs, and other
batch systems (PBS, LSF).
"""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.contracts.config import Resources
from remote.errors import CommandFailed, RemoteError
from remote.quoting import command_line, quote, quote_path, script_line
from remote.runner import CommandRunner, idempotent_kwargs, run_framed

STATES = ("pending", "running", "completed", "failed", "cancelled", "unknown")
TRAINING_STAGES = frozenset({"sft", "rl"})
EXIT_INTERRUPTED = 143  # engine.runner.EXIT_INTERRUPTED: saved after SIGTERM

PROBE_MAX_BYTES = 1024 * 1024  # a probe's answer is a few lines per task
_PID = re.compile(r"^[1-9][0-9]{0,9}$")
_EXIT = re.compile(r"^-?[0-9]{1,3}$")
_SLURM_ID = re.compile(r"^[0-9]+(?:_[0-9]+|_\[[0-9,\-%]+\])?(?:\+[0-9]+)?$")
_SAFE_VALUE = re.compile(r"^[A-Za-z0-9_.,:@%+=/-]+$")
_JOB_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


# --- What to launch, and what comes back ---------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class SlurmOptions:
    """A cluster profile's Slurm settings. ``extra``: further sbatch options, one per item
    (``--constraint=a100`` or ``#SBATCH --constraint=a100``); ``time_limit`` replaces the
    stage's own (e.g. a partition's maximum); ``gres_style`` writes ``--gres=gpu:N`` for
    clusters without ``--gpus-per-node``; ``requeue`` lets Slurm requeue a preempted job
    (stages resume, so this is safe)."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    time_limit: str | None = None
    extra: tuple[str, ...] = ()
    gres_style: bool = False
    requeue: bool = True
    signal_lead_s: int = 120

    def __post_init__(self) -> None:
        for name in ("partition", "account", "qos", "time_limit"):
            value = getattr(self, name)
            if value is not None:
                _check_directive_value(f"slurm.{name}", value)
        if isinstance(self.extra, str):
            raise ValueError("slurm.extra is one string; give a list of options, one per item")
        for i, line in enumerate(self.extra):
            _check_directive_value(f"slurm.extra[{i}]", line, words=True)
            if not _extra_option(line).startswith("-"):
                raise ValueError(f"slurm.extra[{i}] = {line!r} is not an sbatch option; write "
                                 "it as --name=value (e.g. --constraint=a100)")
        if not 0 <= self.signal_lead_s <= 65535:
            raise ValueError(f"slurm.signal_lead_s = {self.signal_lead_s}: give seconds "
                             "between 0 and 65535")


def _check_directive_value(name: str, value: str, *, words: bool = False) -> None:
    if "\n" in value or "\r" in value or "\x00" in value:
        raise ValueError(f"{name} = {value!r} contains a line break, which would add sbatch "
                         "directives of its own; write it on one line (one option per item)")
    if not value.strip():
        raise ValueError(f"{name} is empty; remove it or give a value")
    if not words and not _SAFE_VALUE.match(value):
        raise ValueError(f"{name} = {value!r} holds spaces or shell characters; Slurm names "
                         "use letters, digits and _.,:@%+=/- only: check the value")


def _extra_option(line: str) -> str:
    text = line.strip()
    return text[len("#SBATCH"):].strip() if text.startswith("#SBATCH") else text


@dataclass(frozen=True, kw_only=True)
class StageJob:
    """One engine stage of one run. Paths are remote and may start with ``~/``; ``prefix``
    is the profile's activation line (trusted shell code, run first)."""

    run_dir: str
    stage: str
    config_path: str
    engine_dir: str
    resources: Resources = field(default_factory=Resources)
    python: str = "python3"
    prefix: str | None = None
    shards: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    slurm: SlurmOptions | None = None

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ValueError(f"shards = {self.shards}: give 1 (unsharded) or more")
        if not self.run_dir.strip() or not self.stage.strip():
            raise ValueError("a StageJob needs a run_dir and a stage")
        for name in self.env:
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
                raise ValueError(f"env name {name!r} is not an identifier; fix the name")

    def engine_argv(self, shard: str | None = None) -> list[str]:
        """``python -m engine run ...`` with ``--shard`` when given."""
        argv = [self.python, "-m", "engine", "run", "--config", self.config_path,
                "--run-dir", self.run_dir, "--stages", self.stage]
        return argv + (["--shard", shard] if shard else [])


@dataclass(frozen=True)
class JobHandle:
    scheduler: str  # "direct" | "slurm"
    job_id: str  # direct: "<stage>.<token>"; slurm: the job id sbatch printed
    stage: str
    run_dir: str
    submitted_at: float
    shards: int = 1


@dataclass(frozen=True)
class JobState:
    state: str  # one of STATES
    exit_code: int | None = None
    reason: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in ("completed", "failed", "cancelled")


def _parse_probe_line(line: str) -> tuple[str, bool, str]:
    """``s|PID|ALIVE|EXIT`` -> (pid, alive, exit text); a line that does not parse ->
    ``("?", False, "?<why>")`` (the caller turns it into an unknown state)."""
    parts = line.split("|")
    if len(parts) != 4:
        return "?", False, (f"?the status probe answered {line[:80]!r} ({len(parts)} fields, "
                            "not 4); check the job's files under jobs/ on the cluster")
    _, pid, alive, code = (p.strip() for p in parts)
    if pid and not _PID.match(pid):
        return "?", False, (f"?the status probe gave a pid that is not a number ({pid[:40]!r});"
                            " the job's .pid file is damaged")
    if alive not in ("0", "1"):
        return "?", False, f"?the status probe gave a bad liveness field ({alive[:40]!r})"
    if code and not _EXIT.match(code):
        return "?", False, (f"?the status probe gave an exit code that is not a number "
                            f"({code[:40]!r}); the job's .exit file is damaged")
    return pid, alive == "1", code


def _join(run_dir: str, *parts: str) -> str:
    return run_dir.rstrip("/") + "/" + "/".join(parts)


# --- Direct: a detached process on a plain host --------------------------------------------


class DirectScheduler:
    """Runs the engine detached on the runner's host (module docstring)."""

    name = "direct"

    def __init__(self, runner: CommandRunner, *, grace_s: float = 30.0,
                 start_timeout_s: float = 10.0) -> None:
        self.runner = runner
        self.grace_s = grace_s  # SIGTERM -> SIGKILL, the time the engine has to save
        self.start_timeout_s = start_timeout_s

    # Files of one job; ``token`` keeps launches of the same stage apart.
    @staticmethod
    def _base(run_dir: str, job_id: str, index: int, shards: int) -> str:
        return _join(run_dir, "jobs", job_id + (f".{index}of{shards}" if shards > 1 else ""))

    def _commands(self, job: StageJob, job_id: str) -> list[str]:
        log = _join(job.run_dir, "logs", f"{job.stage}.launch.log")
        out = []
        for i in range(job.shards):
            base = self._base(job.run_dir, job_id, i, job.shards)
            shard = f"{i}/{job.shards}" if job.shards > 1 else None
            engine = command_line(job.engine_argv(shard), cwd=job.engine_dir, env=job.env,
                                  prefix=job.prefix)
            pid, exit_ = quote_path(base + ".pid"), quote_path(base + ".exit")
            # The wrapper is the session leader: its pid is the process group cancel signals.
            # `trap : TERM` keeps it alive to record the engine's code (143 after a save).
            wrapper = (f"trap : TERM; echo $$ > {pid}.tmp && mv {pid}.tmp {pid}; {engine}; "
                       f"code=$?; echo $code > {exit_}.tmp && mv {exit_}.tmp {exit_}")
            launch = (f"setsid nohup bash -c {quote(wrapper)} synthsmith-{quote(job.stage)} "
                      f">> {quote_path(log)} 2>&1 < /dev/null &")
            out.append(launch)
        return out

    def _script(self, job: StageJob, job_id: str) -> str:
        dirs = [_join(job.run_dir, "jobs"), _join(job.run_dir, "logs")]
        pids = [quote_path(self._base(job.run_dir, job_id, i, job.shards) + ".pid")
                for i in range(job.shards)]
        tries = max(1, int(self.start_timeout_s * 10))
        wait = (f"n=0; for p in {' '.join(pids)}; do while [ ! -s \"$p\" ] && [ $n -lt {tries} ]"
                "; do sleep 0.1; n=$((n+1)); done; echo \"pid $(cat \"$p\" 2>/dev/null)\"; done")
        return "\n".join([f"mkdir -p -- {' '.join(quote_path(d) for d in dirs)}",
                          *self._commands(job, job_id), wait])

    def preview(self, job: StageJob) -> str:
        """The shell commands ``launch`` runs (``<token>`` stands for the launch's id)."""
        return self._script(_expand_home(job, self.runner), f"{job.stage}.<token>")

    def launch(self, job: StageJob) -> JobHandle:
        job = _expand_home(job, self.runner)
        token = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        job_id = f"{job.stage}.{token}"
        submitted = time.time()
        # Framed: a login banner line "pid 1" before our answer is not a pid.
        result = run_framed(self.runner, self._script(job, job_id),
                            timeout=self.start_timeout_s + 30, max_bytes=PROBE_MAX_BYTES,
                            what=f"starting the {job.stage} job").check()
        pids = [line.split()[1] for line in result.stdout.splitlines()
                if line.startswith("pid ") and len(line.split()) == 2
                and _PID.match(line.split()[1])]
        if len(pids) != job.shards:
            log = _join(job.run_dir, "logs", f"{job.stage}.launch.log")
            raise RemoteError(f"{self.runner.name}: the {job.stage} job did not start within "
                              f"{self.start_timeout_s:g} s (no pid file); see {log}")
        return JobHandle(self.name, job_id, job.stage, job.run_dir, submitted, job.shards)

    def _probe(self, handle: JobHandle) -> list[tuple[str, bool, str]]:
        """(pid, alive, exit code text) per shard, in shard order. The answer is framed (a
        banner line ``s|...`` is not a shard) and untrusted: a line whose fields do not parse
        (pid not a number, alive not 0/1, exit code not a number) comes back as
        ``("?", False, "?<why>")``, which ``status`` reports as unknown for that shard."""
        lines = []
        for i in range(handle.shards):
            base = self._base(handle.run_dir, handle.job_id, i, handle.shards)
            lines.append(
                f"p=$(cat {quote_path(base + '.pid')} 2>/dev/null); "
                f"e=$(cat {quote_path(base + '.exit')} 2>/dev/null); a=0; "
                f"[ -n \"$p\" ] && kill -0 -\"$p\" 2>/dev/null && a=1; echo \"s|$p|$a|$e\"")
        # Idempotent: it only reads, so a link dropped under it is reconnected and the probe
        # asked again, instead of failing a follower "because it may have run in part".
        result = run_framed(self.runner, "\n".join(lines), timeout=60,
                            max_bytes=PROBE_MAX_BYTES, idempotent=True,
                            what=f"the status probe of {handle.job_id}").check()
        out = [_parse_probe_line(line) for line in result.stdout.splitlines()
               if line.startswith("s|")]
        return out

    def _cancelled(self, handle: JobHandle) -> bool:
        marker = _join(handle.run_dir, "jobs", handle.job_id + ".cancel")
        return self.runner.size(marker) is not None

    def status(self, handle: JobHandle) -> JobState:
        probes = self._probe(handle)
        cancelled = self._cancelled(handle)
        tasks = []
        for pid, alive, code in probes:
            if code.startswith("?"):
                tasks.append(JobState("unknown", None, code[1:], {"pid": None}))
            elif _EXIT.match(code):
                rc = int(code)
                if rc == 0:
                    tasks.append(JobState("completed", 0))
                elif cancelled:
                    tasks.append(JobState("cancelled", rc, "cancelled"))
                else:
                    tasks.append(JobState("failed", rc, _exit_reason(rc)))
            elif alive and _PID.match(pid):
                tasks.append(JobState("running", None, None, {"pid": int(pid)}))
            elif not pid:
                tasks.append(JobState("pending", None, "starting"))
            elif cancelled:
                tasks.append(JobState("cancelled", None, "killed after the grace period"))
            else:
                tasks.append(JobState("failed", None, "the process ended without recording an "
                                      "exit code (killed, or the host restarted); rerun the stage "
                                      "to resume"))
        if len(probes) != handle.shards:  # lines missing (or extra): say so, never guess
            tasks = tasks[:handle.shards] + [
                JobState("unknown", None, "the status probe gave no answer for this task")
                for _ in range(handle.shards - len(tasks))]
        return _aggregate(tasks, {"pids": [p for p, _, _ in probes][:handle.shards],
                                  "cancel_requested": cancelled})

    def cancel(self, handle: JobHandle) -> None:
        marker = _join(handle.run_dir, "jobs", handle.job_id + ".cancel")
        self.runner.put_bytes(b"", marker)
        self._signal(handle, "TERM")
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            # A recorded exit code counts as gone: an orphan may linger as a zombie where
            # PID 1 does not reap, and kill -0 succeeds on zombies.
            if not any(alive and not code for _, alive, code in self._probe(handle)):
                return
            time.sleep(0.2)
        self._signal(handle, "KILL")

    def _signal(self, handle: JobHandle, sig: str) -> None:
        lines = []
        for pid, alive, code in self._probe(handle):
            if alive and not code and pid.isdigit():
                # `kill -SIG -PGID` parses in dash and bash alike (`-s SIG` does not in dash).
                lines.append(f"kill -{sig} -{int(pid)} 2>/dev/null")
        if lines:
            self.runner.run_shell("; ".join(lines) + "; true", timeout=60)


def _exit_reason(code: int) -> str:
    if code == EXIT_INTERRUPTED:
        return "interrupted by SIGTERM after saving; launch the stage again to resume"
    if code == 2:
        return "the engine refused its input (exit 2); see the launch log"
    if code > 128:
        return f"killed by signal {code - 128}"
    return f"the stage failed (exit {code}); see state.json and the stage's log"


def _aggregate(tasks: Sequence[JobState], detail: dict[str, Any]) -> JobState:
    """One state for several tasks (shards, array tasks): a failure wins once nothing runs,
    anything running makes it running, all completed is completed."""
    if not tasks:
        return JobState("unknown", None, "no task of this job was found", detail)
    if len(tasks) == 1:
        t = tasks[0]
        return JobState(t.state, t.exit_code, t.reason, {**t.detail, **detail})
    states = [t.state for t in tasks]
    detail = {**detail, "tasks": [{"state": t.state, "exit_code": t.exit_code,
                                   "reason": t.reason, **t.detail} for t in tasks]}
    for state in ("running", "pending"):
        if state in states:
            return JobState(state, None, f"{states.count(state)} of {len(tasks)} tasks "
                            f"{state}", detail)
    for state in ("failed", "cancelled", "unknown"):
        if state in states:
            first = tasks[states.index(state)]
            return JobState(state, first.exit_code, f"{states.count(state)} of {len(tasks)} "
                            f"tasks {state}: {first.reason}", detail)
    return JobState("completed", 0, None, detail)


# --- Slurm ---------------------------------------------------------------------------------

# Slurm job states (squeue %T / sacct State) -> ours, with what the user should do.
_SLURM_STATES: dict[str, tuple[str, str | None]] = {
    "PENDING": ("pending", None), "CONFIGURING": ("pending", None),
    "REQUEUED": ("pending", "requeued"), "REQUEUE_HOLD": ("pending", "requeued and held"),
    "REQUEUE_FED": ("pending", "requeued"), "RESV_DEL_HOLD": ("pending", "held"),
    "SUSPENDED": ("pending", "suspended by the cluster"), "STOPPED": ("pending", "stopped"),
    "RUNNING": ("running", None), "COMPLETING": ("running", "completing"),
    "STAGE_OUT": ("running", "staging out"), "SIGNALING": ("running", "signalling"),
    "RESIZING": ("running", "resizing"),
    "COMPLETED": ("completed", None),
    "CANCELLED": ("cancelled", "cancelled"),
    "FAILED": ("failed", None),
    "TIMEOUT": ("failed", "hit its time limit (the stage saved at SIGTERM); launch it again "
                "to resume, or raise resources.time_limit"),
    "PREEMPTED": ("failed", "preempted by the cluster; launch it again to resume"),
    "NODE_FAIL": ("failed", "a node failed; launch it again to resume"),
    "BOOT_FAIL": ("failed", "a node failed to boot; launch it again"),
    "OUT_OF_MEMORY": ("failed", "ran out of memory; raise resources.mem_gb"),
    "DEADLINE": ("failed", "missed its deadline"),
    "SPECIAL_EXIT": ("failed", "held after a special exit; check the log, then release it"),
    "REVOKED": ("cancelled", "revoked by a federated cluster"),
}


def map_slurm_state(raw: str, exit_field: str | None = None,
                    slurm_reason: str | None = None) -> JobState:
    """A Slurm state word (``RUNNING``, ``CANCELLED by 0``, ``CANCELLED+``) plus an optional
    ``ExitCode`` (``a:b``: exit status, signal) -> ``JobState``."""
    word = raw.strip().split()[0].rstrip("+") if raw.strip() else ""
    state, reason = _SLURM_STATES.get(word, ("unknown", f"unrecognised Slurm state {word!r}"))
    code = None
    if exit_field and ":" in exit_field:
        status, _, sig = exit_field.partition(":")
        if status.isdigit() and sig.isdigit():
            code = 128 + int(sig) if int(sig) else int(status)
    if state == "failed" and reason is None:
        reason = _exit_reason(code) if code else "failed"
    if state == "pending" and slurm_reason and slurm_reason not in ("None", "(null)"):
        reason = slurm_reason if reason is None else f"{reason} ({slurm_reason})"
    detail: dict[str, Any] = {"slurm_state": word}
    if exit_field:
        detail["exit_field"] = exit_field
    if slurm_reason and slurm_reason not in ("None", "(null)"):
        detail["slurm_reason"] = slurm_reason
    if state == "completed" and code is None:
        code = 0
    return JobState(state, code, reason, detail)


def parse_squeue(text: str) -> list[dict[str, str]]:
    """Lines of ``squeue -h -r -o '%i|%T|%r|%N'`` -> [{id, state, reason, nodes}]. The answer
    is untrusted: a line with the wrong number of fields, a job id that is not one, or a
    state that is not a Slurm word comes back as ``{"id": "?", ..., "error": why}`` (the
    caller reports it as unknown); the other lines still parse."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        why = None
        if len(parts) != 4:
            why = f"{len(parts)} fields, not 4"
        elif not _SLURM_ID.match(parts[0]):
            why = f"job id {parts[0][:40]!r} is not a Slurm job id"
        elif not re.fullmatch(r"[A-Z_]{1,40}\+?", parts[1]):
            why = f"state {parts[1][:40]!r} is not a Slurm state"
        if why:
            rows.append({"id": "?", "state": "", "reason": "", "nodes": "",
                         "error": f"squeue answered {line[:80]!r}: {why}"})
            continue
        rows.append(dict(zip(("id", "state", "reason", "nodes"), parts, strict=True)))
    return rows


class SlurmScheduler:
    """Submits the stage as a generated sbatch script (module docstring)."""

    name = "slurm"

    def __init__(self, runner: CommandRunner, *, env: Mapping[str, str] | None = None) -> None:
        self.runner = runner
        self.env = dict(env or {})  # e.g. SLURM_CONF: non-login shells do not inherit it

    # --- the script

    def job_name(self, job: StageJob) -> str:
        run = job.run_dir.rstrip("/").rsplit("/", 1)[-1]
        return _JOB_NAME_UNSAFE.sub("_", f"synthsmith-{run}-{job.stage}")[:120]

    def script_path(self, job: StageJob) -> str:
        return _join(job.run_dir, "jobs", f"{job.stage}.sbatch")

    def sbatch_script(self, job: StageJob) -> str:
        """The batch script for ``job`` (pure: paths are used as given, see preview)."""
        res, opts = job.resources, job.slurm or SlurmOptions()
        training = job.stage in TRAINING_STAGES and res.world_size > 1
        if job.shards > 1 and (res.nodes > 1 or training):
            raise ValueError(f"{job.stage}: a sharded stage runs one node per shard; set "
                             "resources.nodes to 1 or shards to 1")
        time_limit = opts.time_limit or res.time_limit
        _check_directive_value("resources.time_limit", time_limit)
        d = ["--job-name=" + self.job_name(job), f"--nodes={res.nodes}", "--ntasks-per-node=1",
             f"--cpus-per-task={res.cpus_per_task}"]
        if res.gpus_per_node:
            d.append(f"--gres=gpu:{res.gpus_per_node}" if opts.gres_style
                     else f"--gpus-per-node={res.gpus_per_node}")
        if res.mem_gb:
            d.append(f"--mem={res.mem_gb}G")
        d.append(f"--time={time_limit}")
        for key in ("partition", "account", "qos"):
            if getattr(opts, key):
                d.append(f"--{key}={getattr(opts, key)}")
        if job.shards > 1:
            d.append(f"--array=0-{job.shards - 1}")
        d += [f"--signal=B:TERM@{opts.signal_lead_s}", "--open-mode=append"]
        d.append("--requeue" if opts.requeue else "--no-requeue")
        d += [_extra_option(x) for x in opts.extra]
        lines = ["#!/bin/bash", *(f"#SBATCH {x}" for x in d), "",
                 f"# SynthSmith: stage {job.stage} of {job.run_dir!r} (generated; do not edit)",
                 f"cd {quote_path(job.engine_dir)} || exit 2"]
        if job.prefix and job.prefix.strip():
            lines.append(job.prefix.strip())
        lines += [f"export {k}={quote(v)}" for k, v in job.env.items()]
        srun = ["srun", "--ntasks-per-node=1", f"--cpus-per-task={res.cpus_per_task}",
                "--kill-on-bad-exit=1"]
        engine_args = job.engine_argv()[1:]  # "-m engine run ..." after the interpreter
        if training:
            lines += ['MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)',
                      "MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))",
                      "export MASTER_ADDR MASTER_PORT"]
            cmd = (script_line([*srun, job.python, "-m", "torch.distributed.run"])
                   + ' --nnodes "$SLURM_NNODES"'
                   + f" --nproc_per_node {max(res.gpus_per_node, 1)}"
                   + ' --rdzv_id "$SLURM_JOB_ID" --rdzv_backend c10d'
                   + ' --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT" '
                   + script_line(engine_args))
        elif job.shards > 1:
            cmd = (script_line([*srun, job.python, *engine_args, "--shard"])
                   + f' "$SLURM_ARRAY_TASK_ID/{job.shards}"')
        else:
            cmd = script_line([*srun, job.python, *engine_args])
        # The engine's exit code, where status() reads it: Slurm's own (scontrol, sacct) is
        # not readable in a fixed-separator form without accounting.
        task = '"${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"' if job.shards > 1 else '"$SLURM_JOB_ID"'
        exit_file = f'{quote_path(_join(job.run_dir, "jobs", job.stage))}.{task}.exit'
        # SIGTERM (--signal=B:, scancel) reaches this shell: forward it to srun, which passes
        # it to the engine, then wait until the engine has saved and exited.
        lines += ["trap 'kill -TERM \"$child\" 2>/dev/null' TERM",
                  f"{cmd} &", "child=$!",
                  'wait "$child"; code=$?',
                  'while kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done',
                  f'echo "$code" > {exit_file}.tmp && mv -f {exit_file}.tmp {exit_file}',
                  'exit "$code"', ""]
        return "\n".join(lines)

    def sbatch_command(self, job: StageJob) -> str:
        pattern = "%A_%a" if job.shards > 1 else "%j"
        # sbatch expands %-patterns in file names: a literal % in the run dir is written %%.
        logs = _join(job.run_dir, "logs", f"{job.stage}.{pattern}").replace(
            job.run_dir, job.run_dir.replace("%", "%%"), 1)
        return command_line(["sbatch", "--parsable", f"--output={logs}.out",
                             f"--error={logs}.err", self.script_path(job)],
                            cwd=job.run_dir, env=self.env)

    def preview(self, job: StageJob) -> str:
        """The script (and where it goes), then the exact sbatch command line."""
        job = _expand_home(job, self.runner)
        return (f"# {self.script_path(job)}\n{self.sbatch_script(job)}\n"
                f"# submitted with:\n{self.sbatch_command(job)}\n")

    def launch(self, job: StageJob) -> JobHandle:
        job = _expand_home(job, self.runner)
        script = self.sbatch_script(job)
        self.runner.makedirs(_join(job.run_dir, "logs"))
        self.runner.put_bytes(script.encode(), self.script_path(job), mode=0o755)
        submitted = time.time()
        # Framed: a login banner or motd is not sbatch's answer.
        result = run_framed(self.runner, self.sbatch_command(job), timeout=120,
                            max_bytes=PROBE_MAX_BYTES, what="sbatch")
        if not result.ok:
            raise CommandFailed(result)
        job_id = result.stdout.strip().splitlines()[-1].split(";")[0].strip() \
            if result.stdout.strip() else ""
        if not re.fullmatch(r"[0-9]{1,20}", job_id):
            raise RemoteError(f"{self.runner.name}: sbatch printed {result.stdout!r}, not a "
                              f"job id; stderr: {result.stderr.strip()}")
        return JobHandle(self.name, job_id, job.stage, job.run_dir, submitted, job.shards)

    # --- watching

    def _run(self, argv: Sequence[str], timeout: float = 60, *, idempotent: bool = False):
        # Framed: only what the Slurm command printed (not a login banner) is parsed.
        # idempotent: a query (squeue, sacct), asked again after a dropped link.
        return run_framed(self.runner, command_line(argv, env=self.env), timeout=timeout,
                          max_bytes=PROBE_MAX_BYTES, what=f"`{argv[0]}`", idempotent=idempotent)

    def status(self, handle: JobHandle) -> JobState:
        """Queries only, each marked idempotent (a dropped link reconnects and asks again):
        ``squeue`` over every state (queued, running, and the finished jobs Slurm still holds
        for ``MinJobAge``) in a fixed-separator form; the engine's exit codes from the files
        the batch script writes; ``sacct`` only when squeue no longer knows the job."""
        q = self._run(["squeue", "--states=all", "-h", "-r", "-j", handle.job_id,
                       "-o", "%i|%T|%r|%N"], idempotent=True)
        parsed = parse_squeue(q.stdout) if q.ok else []
        rows = [r for r in parsed if "error" not in r]
        bad = [JobState("unknown", None, r["error"], {"source": "squeue"})
               for r in parsed if "error" in r]
        codes: dict[str, int] | None = None
        tasks = []
        for r in rows:
            first = map_slurm_state(r["state"], None, r["reason"])
            code = None
            if first.state in ("completed", "failed", "cancelled"):
                codes = self._exit_codes(handle) if codes is None else codes
                code = codes.get(r["id"])
            st = map_slurm_state(r["state"], None if code is None else f"{code}:0", r["reason"])
            tasks.append(JobState(st.state, st.exit_code, st.reason, {
                **st.detail, "job_id": r["id"], "array_task": r["id"].partition("_")[2] or None,
                "nodes": r["nodes"]}))
        if tasks and handle.shards == 1:
            return _aggregate(tasks[:1], {"source": "squeue"})
        if tasks:
            return _aggregate(tasks + bad, {"source": "squeue"})
        codes = self._exit_codes(handle) if codes is None else codes
        if codes and len(codes) >= handle.shards:  # gone from squeue, but the engine said
            return _aggregate([JobState("completed", 0, None, {"exit_file": c}) if c == 0
                               else JobState("failed", c, _exit_reason(c), {"exit_file": c})
                               for c in codes.values()], {"source": "exit file"})
        st = self._sacct(handle)
        if bad and st.detail.get("source") == "none":  # say why rather than "gone"
            return _aggregate(bad, {"source": "squeue"})
        return st

    def _exit_codes(self, handle: JobHandle) -> dict[str, int]:
        """Task id (``12``, ``12_3``) -> the engine's exit code, from the ``.exit`` files the
        batch script writes (``<run>/jobs/<stage>.<id>.exit``); one framed command, capped. A
        file whose name or content is not ours is ignored."""
        base = quote_path(_join(handle.run_dir, "jobs", handle.stage))
        script = (f"for f in {base}.{handle.job_id}.exit {base}.{handle.job_id}_*.exit; do "
                  '[ -f "$f" ] && printf "%s|%s\\n" "${f##*/}" "$(head -c 16 "$f")"; done; true')
        r = run_framed(self.runner, script, timeout=60, max_bytes=PROBE_MAX_BYTES,
                       what="reading the jobs' exit files", idempotent=True)
        name = re.compile(rf"{re.escape(handle.stage)}\.({re.escape(handle.job_id)}(?:_[0-9]+)?)"
                          r"\.exit")
        out: dict[str, int] = {}
        for line in r.stdout.splitlines() if r.ok else []:
            file, sep, code = line.partition("|")
            m = name.fullmatch(file)
            if sep and m and code.strip().isdigit():
                out[m.group(1)] = int(code.strip())
        return out

    def _sacct(self, handle: JobHandle) -> JobState:
        check = self.runner.run_shell("command -v sacct", timeout=30,
                                      **idempotent_kwargs(self.runner))
        if check.ok:
            r = self._run(["sacct", "-n", "-P", "-X", "-j", handle.job_id,
                           "-o", "JobID,State,ExitCode,Reason"], idempotent=True)
            tasks = []
            for line in r.stdout.splitlines() if r.ok else []:
                if not line.strip():
                    continue
                parts = line.split("|")
                if len(parts) in (3, 4) and _SLURM_ID.match(parts[0].strip()):
                    tasks.append(map_slurm_state(parts[1], parts[2],
                                                 parts[3] if len(parts) > 3 else None))
                else:
                    tasks.append(JobState("unknown", None, f"sacct answered {line[:80]!r} "
                                          f"({len(parts)} fields, not JobID|State|ExitCode|"
                                          "Reason)", {"source": "sacct"}))
            if tasks:
                return _aggregate(tasks, {"source": "sacct"})
        return JobState("unknown", None, f"job {handle.job_id} is no longer known to Slurm "
                        "(finished longer ago than MinJobAge, no accounting); see state.json "
                        "of the run", {"source": "none"})

    def cancel(self, handle: JobHandle) -> None:
        """``scancel ID``: SIGTERM to the batch shell and every step (all array tasks), then
        SIGKILL after KillWait; the job ends CANCELLED."""
        self._run(["scancel", handle.job_id], timeout=60).check()


def _expand_home(job: StageJob, runner: CommandRunner) -> StageJob:
    """``~/`` in the job's paths -> the remote home: argv words are quoted (no expansion),
    the engine does not expand ``~`` either, and sbatch's --output does not."""
    keys = [k for k in ("run_dir", "config_path", "engine_dir")
            if getattr(job, k) == "~" or getattr(job, k).startswith("~/")]
    if not keys:
        return job
    home = runner.home().rstrip("/")
    return replace(job, **{k: home + getattr(job, k)[1:] for k in keys})


def scheduler_for(kind: str, runner: CommandRunner, **options: Any
                  ) -> DirectScheduler | SlurmScheduler:
    """``"direct"`` (a plain host) or ``"slurm"``; ``options`` go to the constructor."""
    if kind == "direct":
        return DirectScheduler(runner, **options)
    if kind == "slurm":
        return SlurmScheduler(runner, **options)
    raise ValueError(f"unknown scheduler {kind!r}; choose direct or slurm")


__all__ = ["StageJob", "SlurmOptions", "JobHandle", "JobState", "DirectScheduler",
           "SlurmScheduler", "scheduler_for", "map_slurm_state", "parse_squeue", "STATES"]
