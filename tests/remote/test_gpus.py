"""remote/gpus.py: GPU samples from nvidia-smi on a host, and on the nodes of a Slurm job.

Run: .venv/bin/python -m pytest tests/remote/test_gpus.py -q

There is no GPU on the test machines, so ``tests/fake_bin/nvidia-smi`` stands in for the CLI at
its real boundary (the exact query argv and its ``csv,noheader,nounits`` output, exit codes of
the real one); it is put first on PATH, and the runner is a real ``LocalRunner``. The Slurm test
runs a real job on the real single-node Slurm of fixtures_slurm.py, whose one step holds every
CPU, and samples it with ``srun --jobid --overlap`` (the fake travels in the job's PATH).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from remote.gpus import NVIDIA_SMI_ARGV, parse_answer, parse_csv_line, sample_gpus
from remote.runner import LocalRunner

FAKE_BIN = Path(__file__).resolve().parents[1] / "fake_bin"
HOST = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()


@pytest.fixture
def fake_smi(monkeypatch):
    monkeypatch.setenv("PATH", f"{FAKE_BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("FAKE_NVIDIA_SMI", raising=False)
    return monkeypatch


def test_the_fake_speaks_only_the_query_the_sampler_sends(fake_smi):
    """The double refuses any other argv, so a drift of NVIDIA_SMI_ARGV fails here."""
    ok = subprocess.run(list(NVIDIA_SMI_ARGV), capture_output=True, text=True)
    assert ok.returncode == 0 and ok.stdout.splitlines()[0] == "0, NVIDIA H200, 35, 20480, 143771"
    other = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv"],
                           capture_output=True, text=True)
    assert other.returncode == 2


def test_samples_of_a_host_come_from_the_csv_with_the_host_name(fake_smi):
    report = sample_gpus(LocalRunner())
    assert report.problems == []
    assert [(s.host, s.index, s.name, s.util_pct, s.mem_used_mib, s.mem_total_mib)
            for s in report.samples] == [(HOST, 0, "NVIDIA H200", 35.0, 20480.0, 143771.0),
                                         (HOST, 1, "NVIDIA H200", 45.0, 21504.0, 143771.0)]
    assert report.samples[0].mem_used_gib == 20.0
    assert report.samples[1].mem_frac == pytest.approx(21504 / 143771)
    assert abs(report.samples[0].t - time.time()) < 30


def test_not_supported_fields_are_none_and_a_name_may_hold_commas(fake_smi):
    fake_smi.setenv("FAKE_NVIDIA_SMI", "not_supported")
    (s,) = sample_gpus(LocalRunner()).samples
    assert (s.name, s.util_pct, s.mem_used_mib, s.mem_total_mib) == (
        "NVIDIA A16, rev 2", None, None, 143771.0)
    assert s.mem_used_gib is None and s.mem_frac is None


def test_a_host_without_nvidia_smi_gives_no_samples_and_one_reason(tmp_path, monkeypatch):
    bare = tmp_path / "bin"  # sh and hostname only: no nvidia-smi for sure
    bare.mkdir()
    for tool in ("sh", "hostname", "uname"):
        found = subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True,
                               text=True).stdout.strip()
        if found:
            (bare / tool).symlink_to(found)
    monkeypatch.setenv("PATH", str(bare))
    report = sample_gpus(LocalRunner())
    assert report.samples == []
    assert report.problems == [f"{HOST}: nvidia-smi is not installed (or not on PATH) - no GPU "
                               "samples from this host"]


@pytest.mark.parametrize("mode,code,words", [
    ("no_driver", 9, "couldn't communicate with the NVIDIA driver"),
    ("no_devices", 6, "No devices were found"),
])
def test_a_failing_nvidia_smi_is_one_reason_with_its_exit_code(fake_smi, mode, code, words):
    fake_smi.setenv("FAKE_NVIDIA_SMI", mode)
    report = sample_gpus(LocalRunner())
    assert report.samples == [] and len(report.problems) == 1
    assert report.problems[0].startswith(f"{HOST}: nvidia-smi exited {code}: ")
    assert words in report.problems[0]


def test_answers_of_several_nodes_interleaved_by_line_are_told_apart():
    out = ("@gpu\tnode-a\t0, NVIDIA H20, 10, 1024, 97871\n"
           "@gpu\tnode-b\t0, NVIDIA H20, 90, 4096, 97871\n"
           "@none\tnode-c\tnvidia-smi is not installed (or not on PATH)\n"
           "@gpu\tnode-a\t1, NVIDIA H20, [N/A], 2048, 97871\n"
           "@done\tnode-b\n@done\tnode-a\n@done\tnode-d\n")
    report = parse_answer(out, 5.0)
    assert [(s.host, s.index, s.util_pct) for s in report.samples] == [
        ("node-a", 0, 10.0), ("node-b", 0, 90.0), ("node-a", 1, None)]
    assert report.hosts == ["node-a", "node-b"]
    assert report.problems == [
        "node-c: nvidia-smi is not installed (or not on PATH) - no GPU samples from this host",
        "node-d: nvidia-smi lists no GPU - no GPU samples from this host"]
    assert parse_csv_line("Failed to initialize NVML: Unknown Error", "h", 0.0) is None


@pytest.mark.slow
def test_a_running_slurm_job_is_sampled_on_its_node_beside_its_busy_step(
        fake_smi, slurm_cluster, tmp_path):
    cpus = os.cpu_count() or 2
    # The job's one step holds every CPU of the job: a sampling step without --overlap waits.
    out = slurm_cluster.run(
        "sbatch", "--parsable", f"--partition={slurm_cluster.partition}", "--time=5",
        f"--cpus-per-task={cpus}", "--gpus-per-node=1", f"--output={tmp_path}/job.out",
        f"--wrap=srun --cpus-per-task={cpus} sleep 300")
    job = out.strip().split(";")[0]
    runner = LocalRunner()
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # until the sleep step runs
            steps = slurm_cluster.run("squeue", "-h", "-s", "-j", job, "-o", "%i", check=False)
            if f"{job}.0" in steps:
                break
            time.sleep(0.3)
        assert f"{job}.0" in steps, slurm_cluster.logs()
        report = sample_gpus(runner, slurm_job=job, env=slurm_cluster.env, timeout=30)
        assert report.problems == [], report.problems
        assert [(s.host, s.index, s.util_pct) for s in report.samples] == [
            (HOST, 0, 35.0), (HOST, 1, 45.0)]
    finally:
        slurm_cluster.run("scancel", job, check=False)
    gone = sample_gpus(runner, slurm_job="999999", env=slurm_cluster.env)
    assert gone.samples == [] and gone.problems == ["job 999999 is no longer in the queue"]
