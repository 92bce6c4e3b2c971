"""No run can sink a batch, statuses come from the kernel, and a long batch stays small.

    .venv/bin/python -m pytest tests/engine/verify/test_sandbox_batches.py -q

The sandbox's own failures around a run (a worker that breaks while setting up or cleaning
up) are that run's ``internal_error`` verdict: the worker is replaced and the batch goes on.
A program's words on stderr never decide its status. ``run_many(..., keep=...)`` keeps only
what the caller asks of each result, so 1,000 runs printing 30 MB each stay within a few
outputs of memory. Needs bubblewrap (or runs rlimits-only where allowed).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from engine.verify.sandbox import Limits, Program, Sandbox

REPO = Path(__file__).resolve().parents[3]
QUICK = Limits(cpu_s=2.0, wall_s=10.0, memory_mb=256)


def _broken_jobs(monkeypatch, sandbox: Sandbox, marker: str) -> None:
    """Jobs whose source holds ``marker`` reach the worker malformed (no limits): the worker
    fails around the run, as a setup or cleanup bug would."""
    real = Sandbox._job

    def job(self, program, *args, **kwargs):
        made = real(self, program, *args, **kwargs)
        if marker in program.source and isinstance(made, tuple):
            header, blobs, hit = made
            return {k: v for k, v in header.items() if k != "limits"}, blobs, hit
        return made

    monkeypatch.setattr(Sandbox, "_job", job)


def test_a_run_the_worker_fails_around_is_internal_error_and_the_batch_goes_on(
        pool, sandbox, monkeypatch):
    _broken_jobs(monkeypatch, sandbox, "# break the worker")
    good = Program.python("print(int(input()) * 2)\n")
    bad = Program.python("print(1)  # break the worker\n")
    before = pool.restarts
    results = pool.run_many([(good, "1"), (bad, ""), (good, "2"), (bad, "x"), (good, "3")],
                            QUICK)
    assert [r.status for r in results] == ["ok", "internal_error", "ok", "internal_error",
                                           "ok"]
    assert [r.text.strip() for r in results[::2]] == ["2", "4", "6"]
    assert "failed around this run" in results[1].detail
    # The failed workers were replaced, and the pool still runs.
    assert pool.run(good, "21", QUICK).text.strip() == "42"
    assert pool.restarts >= before


def test_one_shot_failures_are_internal_error_not_exceptions(sandbox, monkeypatch):
    _broken_jobs(monkeypatch, sandbox, "# break the worker")
    result = sandbox.run(Program.python("print(1)  # break the worker\n"), "", QUICK)
    assert result.status == "internal_error" and result.mode == "one-shot"
    assert "one-shot sandbox failed" in result.detail


@pytest.mark.parametrize("mode", ["one-shot", "pool"])
def test_memory_error_on_stderr_is_a_runtime_error_unless_memory_ran_out(sandbox, pool, mode):
    run = pool.run if mode == "pool" else sandbox.run
    liar = Program.python("import sys\nprint('MemoryError', file=sys.stderr)\nsys.exit(1)\n")
    assert run(liar, "", QUICK).status == "runtime_error"
    raised = Program.python("raise MemoryError('not really')\n")
    assert run(raised, "", QUICK).status == "runtime_error"
    cpp_liar = Program.cpp('#include <cstdio>\nint main() { fprintf(stderr, '
                           '"terminate called after throwing an instance of '
                           '\'std::bad_alloc\'\\n"); return 1; }\n')
    assert run(cpp_liar, "", QUICK).status == "runtime_error"
    bomb = Program.python("chunks = []\nwhile True:\n    chunks.append(bytearray(8 << 20))\n")
    result = run(bomb, "", Limits(cpu_s=5.0, memory_mb=128))
    assert result.status == "memory_limit" and "resident" in result.detail, result


MEMORY_PROBE = textwrap.dedent("""
    import hashlib, json, resource, sys
    from engine.verify.sandbox import Limits, Program, SandboxPool
    runs, size = int(sys.argv[1]), int(sys.argv[2])
    program = Program.python(
        "import sys\\nn = int(sys.stdin.read())\\n"
        "sys.stdout.buffer.write(bytes([48 + n % 10]) * " + str(size) + ")\\n")
    limits = Limits(cpu_s=10.0, memory_mb=256, output_bytes=size + 1)
    with SandboxPool(2, limits=limits) as pool:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kept = pool.run_many([(program, str(i)) for i in range(runs)], limits,
                             keep=lambda r: (r.status, hashlib.sha256(r.stdout).hexdigest()))
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"statuses": sorted({s for s, _ in kept}),
                      "distinct": len({d for _, d in kept}),
                      "growth_mb": (after - before) / 1024}))
""")


@pytest.mark.slow
def test_a_thousand_runs_of_30_mb_outputs_keep_host_memory_bounded(sandbox, tmp_path):
    script = tmp_path / "probe.py"
    script.write_text(MEMORY_PROBE)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, str(script), "1000", str(30 << 20)], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["statuses"] == ["ok"] and report["distinct"] == 10
    # Two workers: a few 30 MB outputs in flight (the frame, its bytes, the digest's view),
    # against 30 GB if every result were kept whole.
    assert report["growth_mb"] < 400, report
