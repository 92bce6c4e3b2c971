"""SlurmScheduler: the generated sbatch script, and real jobs on a real single-node Slurm
(``slurm_cluster``, tests/remote/fixtures_slurm.py) running the real engine.

Covers: directives from Resources, quoting, job arrays for shards, the torchrun line for
multi-GPU/multi-node training stages, validation of sbatch option values; a seeds job that
completes, a failing job with its exit code, a cancelled job whose engine saved (SIGTERM
delivered), a 2-task array, odd run names; parsing of squeue/scontrol output for every state.
"""

from __future__ import annotations

import re
import shlex
import time
from pathlib import Path

import pytest
from fixtures_slurm import PYTHON, REPO, engine_run, stage_status, write_config

from engine.schema import Resources
from remote.runner import LocalRunner
from remote.schedulers import (
    JobState,
    SlurmOptions,
    SlurmScheduler,
    StageJob,
    map_slurm_state,
    parse_squeue,
    scheduler_for,
)


def _job(run_dir: Path | str, stage: str = "seeds", config: Path | str = "/c.yaml",
         **kw) -> StageJob:
    return StageJob(run_dir=str(run_dir), stage=stage, config_path=str(config),
                    engine_dir=str(REPO), python=PYTHON, **kw)


def _directives(script: str) -> list[str]:
    return [line[len("#SBATCH "):] for line in script.splitlines() if line.startswith("#SBATCH")]


# --- the script ----------------------------------------------------------------------------


def test_script_directives_from_resources() -> None:
    res = Resources(nodes=1, gpus_per_node=0, cpus_per_task=3, mem_gb=8, time_limit="01:30:00")
    opts = SlurmOptions(partition="cpu", account="proj-1", qos="normal",
                        extra=("--constraint=avx2", "#SBATCH --exclusive"))
    script = SlurmScheduler(LocalRunner()).sbatch_script(
        _job("/runs/my run", "verify", resources=res, slurm=opts))
    d = _directives(script)
    assert d[:4] == ["--job-name=synthsmith-my_run-verify", "--nodes=1", "--ntasks-per-node=1",
                     "--cpus-per-task=3"]
    for want in ("--mem=8G", "--time=01:30:00", "--partition=cpu", "--account=proj-1",
                 "--qos=normal", "--signal=B:TERM@120", "--open-mode=append", "--requeue",
                 "--constraint=avx2", "--exclusive"):
        assert want in d
    assert not any(x.startswith(("--gpus", "--gres", "--array")) for x in d)
    assert script.startswith("#!/bin/bash\n")
    assert "trap 'kill -TERM \"$child\" 2>/dev/null' TERM" in script
    run_line = next(line for line in script.splitlines() if line.startswith("srun "))
    words = shlex.split(run_line)
    assert words[words.index("--run-dir") + 1] == "/runs/my run"
    assert words[-1] == "&" and "torch.distributed.run" not in run_line


def test_script_array_for_shards_and_gres_style() -> None:
    script = SlurmScheduler(LocalRunner()).sbatch_script(
        _job("/r", "verify", shards=4, resources=Resources(gpus_per_node=1),
             slurm=SlurmOptions(gres_style=True, requeue=False)))
    d = _directives(script)
    assert "--array=0-3" in d and "--gres=gpu:1" in d and "--no-requeue" in d
    assert '--shard "$SLURM_ARRAY_TASK_ID/4"' in script
    assert "--mem" not in script  # mem_gb 0: the cluster's default


@pytest.mark.parametrize("nodes,gpus", [(1, 4), (2, 1), (2, 8)])
def test_script_torchrun_for_distributed_training(nodes: int, gpus: int) -> None:
    script = SlurmScheduler(LocalRunner()).sbatch_script(
        _job("/r", "sft", resources=Resources(nodes=nodes, gpus_per_node=gpus)))
    assert f"--nodes={nodes}" in _directives(script)
    assert f"--gpus-per-node={gpus}" in _directives(script)
    assert 'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n1)' in script
    assert "MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))" in script
    line = next(x for x in script.splitlines() if "torch.distributed.run" in x)
    assert line.startswith("srun --ntasks-per-node=1 ")
    assert '--nnodes "$SLURM_NNODES"' in line and f"--nproc_per_node {gpus}" in line
    assert '--rdzv_backend c10d --rdzv_endpoint "$MASTER_ADDR:$MASTER_PORT"' in line
    assert "-m engine run" in line


def test_single_gpu_training_and_gpu_eval_run_plain() -> None:
    sched = SlurmScheduler(LocalRunner())
    for stage, res in (("sft", Resources(gpus_per_node=1)), ("eval", Resources(gpus_per_node=4))):
        assert "torch.distributed.run" not in sched.sbatch_script(_job("/r", stage,
                                                                       resources=res))


@pytest.mark.parametrize("field,kw", [
    ("slurm.partition", {"partition": "gpu\n#SBATCH --uid=0"}),
    ("slurm.account", {"account": "a\rb"}),
    ("slurm.extra[0]", {"extra": ("--constraint=a\n#SBATCH --x",)}),
])
def test_newlines_in_sbatch_values_are_refused(field: str, kw: dict) -> None:
    with pytest.raises(ValueError, match=rf"{field.replace('[', '.').replace(']', '.')}.*"
                       "line break.*one line"):
        SlurmOptions(**kw)


def test_other_bad_sbatch_values_are_refused() -> None:
    with pytest.raises(ValueError, match="slurm.qos.*spaces"):
        SlurmOptions(qos="a b")
    with pytest.raises(ValueError, match="slurm.extra.0. .*not an sbatch option"):
        SlurmOptions(extra=("exclusive",))
    with pytest.raises(ValueError, match="one string"):
        SlurmOptions(extra="--exclusive")  # type: ignore[arg-type]


def test_preview_shows_script_and_exact_sbatch_command(tmp_path: Path) -> None:
    sched = SlurmScheduler(LocalRunner(), env={"SLURM_CONF": "/etc/x/slurm.conf"})
    text = sched.preview(_job(tmp_path / "run 1", "seeds"))
    assert f"# {tmp_path}/run 1/jobs/seeds.sbatch" in text
    cmd = text.rstrip().splitlines()[-1]
    assert cmd == (f"cd -- '{tmp_path}/run 1' && SLURM_CONF=/etc/x/slurm.conf sbatch --parsable "
                   f"'--output={tmp_path}/run 1/logs/seeds.%j.out' "
                   f"'--error={tmp_path}/run 1/logs/seeds.%j.err' "
                   f"'{tmp_path}/run 1/jobs/seeds.sbatch'")


def test_percent_in_run_dir_is_escaped_for_sbatch() -> None:
    cmd = SlurmScheduler(LocalRunner()).sbatch_command(_job("/runs/100%", "seeds"))
    assert "--output=/runs/100%%/logs/seeds.%j.out" in cmd


# --- parsing (formats from the Slurm docs where the test cluster cannot produce them) -----


@pytest.mark.parametrize("raw,exit_field,want,code", [
    ("PENDING", None, "pending", None),
    ("RUNNING", None, "running", None),
    ("COMPLETING", None, "running", None),
    ("COMPLETED", "0:0", "completed", 0),
    ("FAILED", "1:0", "failed", 1),
    ("CANCELLED", "0:15", "cancelled", 143),
    ("CANCELLED by 0", "0:15", "cancelled", 143),  # sacct's form
    ("TIMEOUT", "0:0", "failed", 0),
    ("PREEMPTED", "0:15", "failed", 143),
    ("NODE_FAIL", "0:0", "failed", 0),
    ("OUT_OF_MEMORY", "0:125", "failed", 253),
    ("REQUEUED", None, "pending", None),
    ("SOMETHING_NEW", None, "unknown", None),
])
def test_state_mapping(raw: str, exit_field: str | None, want: str, code: int | None) -> None:
    st = map_slurm_state(raw, exit_field)
    assert (st.state, st.exit_code) == (want, code)


def test_state_reasons_say_what_to_do() -> None:
    assert "time_limit" in map_slurm_state("TIMEOUT", "0:0").reason
    assert "mem_gb" in map_slurm_state("OUT_OF_MEMORY", "0:125").reason
    assert "preempted" in map_slurm_state("PREEMPTED").reason
    assert map_slurm_state("PENDING", None, "Resources").reason == "Resources"
    assert "exit 1" in map_slurm_state("FAILED", "1:0").reason


def test_parse_squeue_fixed_separator_lines_as_22_05_prints_them() -> None:
    # squeue --states=all -h -r -o '%i|%T|%r|%N' on Slurm 22.05.8 (the test cluster): array
    # tasks one per line, a pending array as one line, finished jobs while Slurm holds them.
    rows = parse_squeue("12_0|RUNNING|None|vm\n12_1|PENDING|Priority|\n3_[0-1]|PENDING|"
                        "Resources|\n2|FAILED|NonZeroExitCode|vm\n\n")
    assert rows == [{"id": "12_0", "state": "RUNNING", "reason": "None", "nodes": "vm"},
                    {"id": "12_1", "state": "PENDING", "reason": "Priority", "nodes": ""},
                    {"id": "3_[0-1]", "state": "PENDING", "reason": "Resources", "nodes": ""},
                    {"id": "2", "state": "FAILED", "reason": "NonZeroExitCode", "nodes": "vm"}]


def test_the_batch_script_records_the_engines_exit_code_per_task() -> None:
    from remote.runner import LocalRunner

    sched = SlurmScheduler(LocalRunner())
    one = sched.sbatch_script(StageJob(run_dir="/r/a b", stage="seeds", config_path="/c.yaml",
                                       engine_dir="/e"))
    assert """'/r/a b/jobs/seeds'."$SLURM_JOB_ID".exit""" in one
    array = sched.sbatch_script(StageJob(run_dir="/r", stage="verify", config_path="/c.yaml",
                                         engine_dir="/e", shards=3))
    assert """/r/jobs/verify."${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}".exit""" in array
    assert array.rstrip().endswith('exit "$code"')


# --- real jobs -----------------------------------------------------------------------------


def _wait(sched: SlurmScheduler, handle, until: set[str], timeout: float = 45) -> JobState:
    deadline = time.monotonic() + timeout
    st = sched.status(handle)
    while st.state not in until and time.monotonic() < deadline:
        time.sleep(0.3)
        st = sched.status(handle)
    return st


FINAL = {"completed", "failed", "cancelled", "unknown"}


@pytest.fixture
def slurm(slurm_cluster) -> SlurmScheduler:
    return scheduler_for("slurm", LocalRunner(), env=slurm_cluster.env)


def _opts(cluster) -> SlurmOptions:
    return SlurmOptions(partition=cluster.partition, time_limit="10")


@pytest.mark.slow
def test_seeds_job_completes(slurm, slurm_cluster, tmp_path: Path) -> None:
    config = write_config(tmp_path / "cfg")
    run = tmp_path / "runs" / "r1"
    handle = slurm.launch(_job(run, "seeds", config, slurm=_opts(slurm_cluster),
                               resources=Resources(cpus_per_task=1, gpus_per_node=1)))
    assert handle.job_id.isdigit() and handle.scheduler == "slurm"
    assert (run / "jobs" / "seeds.sbatch").read_text().startswith("#!/bin/bash")
    st = _wait(slurm, handle, FINAL)
    assert (st.state, st.exit_code) == ("completed", 0), (st, slurm_cluster.logs())
    assert st.detail["source"] == "squeue"
    assert stage_status(run)["seeds"] == "completed"
    assert (run / "logs" / f"seeds.{handle.job_id}.err").exists()


@pytest.mark.slow
def test_failing_job_reads_failed_with_exit_code(slurm, slurm_cluster, tmp_path: Path) -> None:
    handle = slurm.launch(_job(tmp_path / "run", "seeds", tmp_path / "missing.yaml",
                               slurm=_opts(slurm_cluster),
                               resources=Resources(cpus_per_task=1)))
    st = _wait(slurm, handle, FINAL)
    assert (st.state, st.exit_code) == ("failed", 2), st
    assert st.detail["slurm_state"] == "FAILED" and st.detail["exit_field"] == "2:0"


@pytest.mark.slow
def test_cancel_delivers_sigterm_and_engine_saves(slurm, slurm_cluster, tmp_path: Path,
                                                  hanging_llm: str) -> None:
    config = write_config(tmp_path / "cfg", llm_url=hanging_llm)
    run = tmp_path / "run"
    assert engine_run(config, run, "seeds") == 0
    handle = slurm.launch(_job(run, "features", config, slurm=_opts(slurm_cluster),
                               resources=Resources(cpus_per_task=1)))
    st = _wait(slurm, handle, {"running", *FINAL})
    assert st.state == "running", st
    assert st.detail["nodes"] == slurm_cluster.node
    deadline = time.monotonic() + 30
    while stage_status(run).get("features") != "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stage_status(run)["features"] == "running"
    time.sleep(0.5)
    slurm.cancel(handle)
    st = _wait(slurm, handle, FINAL)
    assert st.state == "cancelled", st
    deadline = time.monotonic() + 15  # the engine saves within KillWait
    while stage_status(run)["features"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stage_status(run)["features"] == "interrupted"


@pytest.mark.slow
def test_array_of_two_shards_completes(slurm, slurm_cluster, tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("")
    config = write_config(tmp_path / "cfg", seeds=tmp_path / "empty.jsonl")
    run = tmp_path / "run"
    engine_run(config, run, "seeds")  # fails (no seeds) but leaves an empty store
    handle = slurm.launch(_job(run, "features", config, shards=2, slurm=_opts(slurm_cluster),
                               resources=Resources(cpus_per_task=1)))
    assert handle.shards == 2
    st = _wait(slurm, handle, FINAL)
    assert st.state == "completed", st
    assert len(st.detail["tasks"]) == 2
    assert sorted(t["array_task"] for t in st.detail["tasks"]) == ["0", "1"]
    states = stage_status(run)
    assert states["features@0of2"] == states["features@1of2"] == states["features"] == "completed"


@pytest.mark.slow
def test_odd_run_name_and_env_arrive_intact(slurm, slurm_cluster, tmp_path: Path) -> None:
    name = "it's \"odd\" $(touch PWNED) `x`;\nline two"
    config = write_config(tmp_path / "cfg")
    run = tmp_path / "runs" / name
    handle = slurm.launch(_job(run, "seeds", config, slurm=_opts(slurm_cluster),
                               env={"ODD_VALUE": name}, resources=Resources(cpus_per_task=1)))
    script = (run / "jobs" / "seeds.sbatch").read_text()
    assert f"export ODD_VALUE={shlex.quote(name)}" in script
    assert "line two" not in script.replace("\\nline two", "").split("\ncd ")[0]  # header
    assert re.fullmatch(r"--job-name=[A-Za-z0-9_.-]+", _directives(script)[0])
    st = _wait(slurm, handle, FINAL)
    assert st.state == "completed", (st, slurm_cluster.logs())
    assert stage_status(run)["seeds"] == "completed"
    assert not list(tmp_path.rglob("PWNED")) and not (REPO / "PWNED").exists()


def test_status_of_unknown_job_is_unknown(slurm) -> None:
    from remote.schedulers import JobHandle

    st = slurm.status(JobHandle("slurm", "999999", "seeds", "/r", 0.0))
    assert st.state == "unknown" and "no longer known" in st.reason


def test_a_job_squeue_no_longer_knows_reads_from_its_exit_files(tmp_path: Path, monkeypatch) -> None:
    # After MinJobAge squeue forgets a job; without accounting the engine's own exit files
    # still say how it ended. A file that is not ours (name or content) is ignored.
    from remote.runner import LocalRunner
    from remote.schedulers import JobHandle

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "squeue").write_text("#!/bin/sh\nexit 0\n")  # knows nothing any more
    (bin_dir / "squeue").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    jobs = tmp_path / "run" / "jobs"
    jobs.mkdir(parents=True)
    (jobs / "verify.41_0.exit").write_text("0\n")
    (jobs / "verify.41_1.exit").write_text("3\n")
    (jobs / "verify.41_2.exit.tmp").write_text("0\n")  # half-written: not read
    (jobs / "verify.411_0.exit").write_text("0\n")  # another job
    (jobs / "seeds.41.exit").write_text("rm -rf /\n")  # not a number
    sched = SlurmScheduler(LocalRunner())
    handle = JobHandle("slurm", "41", "verify", str(tmp_path / "run"), 0.0, 2)
    assert sched._exit_codes(handle) == {"41_0": 0, "41_1": 3}
    st = sched.status(handle)
    assert st.state == "failed" and st.exit_code == 3 and st.detail["source"] == "exit file", st
    assert sched._exit_codes(JobHandle("slurm", "41", "seeds", str(tmp_path / "run"), 0.0, 1)) == {}
