"""DirectScheduler against real processes: the real engine, launched detached by LocalRunner.

Covers: the job runs in its own session (it survives the launching shell), status goes
running -> completed with the engine's exit code, cancel sends SIGTERM to the process group
(the engine records ``interrupted``), shards start one process each with --shard I/N, and
paths with shell characters arrive intact. Leaves out SSH (the same command strings; covered
by the SSH runner's own tests).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from pathlib import Path

import pytest
from fixtures_slurm import PYTHON, REPO, engine_run, stage_status, write_config

from remote.runner import LocalRunner
from remote.schedulers import DirectScheduler, JobState, StageJob, scheduler_for


def _wait(sched: DirectScheduler, handle, until: set[str], timeout: float = 30) -> JobState:
    deadline = time.monotonic() + timeout
    st = sched.status(handle)
    while st.state not in until and time.monotonic() < deadline:
        time.sleep(0.1)
        st = sched.status(handle)
    return st


def _job(run_dir: Path, config: Path, stage: str, **kw) -> StageJob:
    return StageJob(run_dir=str(run_dir), stage=stage, config_path=str(config),
                    engine_dir=str(REPO), python=PYTHON, **kw)


def test_seeds_job_runs_detached_and_completes(tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg")
    run = tmp_path / "runs" / "r1"
    sched = scheduler_for("direct", LocalRunner())
    handle = sched.launch(_job(run, config, "seeds"))
    pid_file = run / "jobs" / f"{handle.job_id}.pid"
    pid = int(pid_file.read_text())
    # Its own session (setsid): not the session of this test or of the launching shell.
    with contextlib.suppress(ProcessLookupError):  # finished already: the exit file shows it ran
        assert os.getsid(pid) == pid != os.getsid(0)
    st = _wait(sched, handle, {"completed", "failed", "cancelled"})
    assert (st.state, st.exit_code) == ("completed", 0), st
    assert stage_status(run)["seeds"] == "completed"
    assert (run / "jobs" / f"{handle.job_id}.exit").read_text().strip() == "0"
    assert (run / "logs" / "seeds.launch.log").exists()


def test_failing_job_reads_failed_with_exit_code(tmp_path: Path) -> None:
    sched = DirectScheduler(LocalRunner())
    run = tmp_path / "run"
    handle = sched.launch(_job(run, tmp_path / "no-such-config.yaml", "seeds"))
    st = _wait(sched, handle, {"completed", "failed", "cancelled"})
    assert (st.state, st.exit_code) == ("failed", 2), st
    assert "refused" in (st.reason or "")


def test_cancel_terms_the_group_and_engine_saves(tmp_path: Path, hanging_llm: str) -> None:
    config = write_config(tmp_path / "cfg", llm_url=hanging_llm)
    run = tmp_path / "run"
    assert engine_run(config, run, "seeds") == 0
    sched = DirectScheduler(LocalRunner(), grace_s=20)
    handle = sched.launch(_job(run, config, "features"))
    st = _wait(sched, handle, {"running"})
    assert st.state == "running", st
    deadline = time.monotonic() + 20  # the engine marks the stage running once started
    while stage_status(run).get("features") != "running" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)  # let it reach the blocked LLM call
    assert sched.status(handle).state == "running"  # it really hangs
    started = time.monotonic()
    sched.cancel(handle)
    assert time.monotonic() - started < 15, "the engine should stop on SIGTERM, not SIGKILL"
    st = sched.status(handle)
    assert (st.state, st.exit_code) == ("cancelled", 143), st
    assert stage_status(run)["features"] == "interrupted"


def test_two_shards_start_two_processes(tmp_path: Path) -> None:
    # An empty seed file: seeds fails (no usable seeds) but leaves an empty store, over which
    # both features shards finish at once without an LLM.
    (tmp_path / "empty.jsonl").write_text("")
    config = write_config(tmp_path / "cfg", seeds=tmp_path / "empty.jsonl")
    run = tmp_path / "run"
    engine_run(config, run, "seeds")
    sched = DirectScheduler(LocalRunner())
    handle = sched.launch(_job(run, config, "features", shards=2))
    assert handle.shards == 2
    pids = {int((run / "jobs" / f"{handle.job_id}.{i}of2.pid").read_text()) for i in (0, 1)}
    assert len(pids) == 2
    st = _wait(sched, handle, {"completed", "failed", "cancelled"})
    assert st.state == "completed", st
    assert len(st.detail["tasks"]) == 2
    states = stage_status(run)
    assert states["features@0of2"] == states["features@1of2"] == "completed"
    assert states["features"] == "completed"


def test_preview_is_the_launch_command(tmp_path: Path) -> None:
    job = _job(tmp_path / "run", tmp_path / "c.yaml", "verify", shards=3,
               prefix="export FOO=1", env={"X": "a b"})
    text = DirectScheduler(LocalRunner()).preview(job)
    assert text.count("setsid nohup bash -c") == 3
    for i in range(3):
        assert f"--shard {i}/3" in text
    assert "verify.<token>.2of3.pid" in text
    # The wrapper is one quoted word of `bash -c`: split the line as a shell would.
    wrapper = shlex.split(text.splitlines()[1])[4]
    assert "X='a b'" in wrapper and wrapper.index("{ export FOO=1 ; }") < wrapper.index("-m engine")


@pytest.mark.parametrize("name", ["it's a \"run\" $(touch PWNED) `x` ; & |", "new\nline"])
def test_odd_run_names_arrive_intact(tmp_path: Path, name: str) -> None:
    config = write_config(tmp_path / "cfg")
    run = tmp_path / "runs" / name
    sched = DirectScheduler(LocalRunner())
    handle = sched.launch(_job(run, config, "seeds", env={"ODD": name}))
    st = _wait(sched, handle, {"completed", "failed", "cancelled"})
    assert st.state == "completed", (st, (run / "logs" / "seeds.launch.log").read_text())
    assert stage_status(run)["seeds"] == "completed"
    assert not list(tmp_path.rglob("PWNED")) and not (REPO / "PWNED").exists()


def test_home_relative_run_dir_is_expanded(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    config = write_config(tmp_path / "cfg")
    sched = DirectScheduler(LocalRunner())
    handle = sched.launch(StageJob(run_dir="~/runs/h", stage="seeds", config_path=str(config),
                                   engine_dir=str(REPO), python=PYTHON))
    assert handle.run_dir == str(tmp_path / "runs" / "h")
    st = _wait(sched, handle, {"completed", "failed", "cancelled"})
    assert st.state == "completed", st
    assert stage_status(tmp_path / "runs" / "h")["seeds"] == "completed"
