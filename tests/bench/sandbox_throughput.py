"""Sandbox throughput: the fork-server pool against a fresh interpreter per run.

    .venv/bin/python tests/bench/sandbox_throughput.py [--runs 600] [--workers N]

Runs the same small, realistic Python solutions (a+b, sorting, a loop) on the same inputs
twice, side by side in one process:
- pool: ``SandboxPool.run_matrix`` (bwrap sandbox, uid 65534, every limit and sweep on);
- naive: a fresh ``python3 sol.py`` subprocess per run (the same interpreter) with the same
  rlimits set in ``preexec_fn`` (no bwrap, no uid drop: cheaper than the real thing), on
  as many threads as the pool has workers;
- naive_isolated: the same with ``python3 -I -S sol.py`` (no site import: the fastest a
  fresh interpreter gets; the pool's workers also run with -I -S), as a harder baseline.
Every run of both sides must print the expected answer. Prints one JSON line:
``{"runs_per_s", "naive_runs_per_s", "ratio", "naive_isolated_runs_per_s",
"ratio_vs_isolated", "workers", "isolation", "runs", ...}``.
Leaves out: C++ (compile-dominated, cached) and long-running solutions (where start-up cost
does not matter).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.verify import Limits, Program, SandboxPool, outputs_match  # noqa: E402
from engine.verify.isolation import default_python  # noqa: E402

SOLUTIONS = {
    "a_plus_b": "a, b = map(int, input().split())\nprint(a + b)\n",
    "sort": ("import sys\ndata = sys.stdin.read().split()\nn = int(data[0])\n"
             "print(' '.join(map(str, sorted(map(int, data[1:n + 1])))))\n"),
    "loop": ("n = int(input())\ntotal = 0\nfor i in range(n):\n    total = (total + i * i) % 1000003\n"
             "print(total)\n"),
}


def make_inputs(rng: random.Random, count: int) -> dict[str, list[tuple[str, str]]]:
    """(stdin, expected stdout) per solution."""
    cases: dict[str, list[tuple[str, str]]] = {name: [] for name in SOLUTIONS}
    for _ in range(count):
        a, b = rng.randint(-10**9, 10**9), rng.randint(-10**9, 10**9)
        cases["a_plus_b"].append((f"{a} {b}\n", f"{a + b}\n"))
        xs = [rng.randint(-10**6, 10**6) for _ in range(rng.randint(1, 2000))]
        cases["sort"].append((f"{len(xs)}\n{' '.join(map(str, xs))}\n",
                              " ".join(map(str, sorted(xs))) + "\n"))
        n = rng.randint(1000, 20000)
        cases["loop"].append((f"{n}\n", f"{sum(i * i for i in range(n)) % 1000003}\n"))
    return cases


def naive_run(argv: list[str], path: Path, stdin: str, limits: Limits) -> bytes:
    def preexec() -> None:
        os.setsid()
        cpu = int(-(-limits.cpu_s // 1))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes,) * 2)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes + 1,) * 2)
        resource.setrlimit(resource.RLIMIT_NPROC, (4096,) * 2)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    out = subprocess.run([*argv, str(path)], input=stdin.encode(),
                         capture_output=True, preexec_fn=preexec, timeout=limits.wall_limit_s,
                         env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}, cwd=path.parent)
    return out.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=600, help="runs per side")
    parser.add_argument("--workers", type=int, default=None, help="default: os.cpu_count()")
    args = parser.parse_args(argv)
    limits = Limits(cpu_s=2.0, memory_mb=256)
    per_solution = max(1, args.runs // len(SOLUTIONS))
    cases = make_inputs(random.Random(0), per_solution)
    programs = [Program.python(src) for src in SOLUTIONS.values()]
    inputs = [[stdin for stdin, _ in cases[name]] for name in SOLUTIONS]
    expected = [[out for _, out in cases[name]] for name in SOLUTIONS]
    runs = per_solution * len(SOLUTIONS)

    start = time.monotonic()
    with SandboxPool(args.workers, limits=limits) as pool:
        startup_s = time.monotonic() - start
        workers, isolation = pool.size, pool.isolation
        pool.run_many([(p, inputs[k][0]) for k, p in enumerate(programs)] * workers)  # warm
        start = time.monotonic()
        results = pool.run_many([(p, stdin) for k, p in enumerate(programs)
                                 for stdin in inputs[k]])
        pool_s = time.monotonic() - start
    flat_expected = [out for row in expected for out in row]
    pool_ok = sum(r.status == "ok" and outputs_match(r.stdout, e)
                  for r, e in zip(results, flat_expected, strict=True))

    python = default_python()
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, src in SOLUTIONS.items():
            paths.append(Path(tmp) / f"{name}.py")
            paths[-1].write_text(src)
        jobs = [(paths[k], stdin, out) for k in range(len(paths))
                for stdin, out in zip(inputs[k], expected[k], strict=True)]
        naive = {}
        for label, argv in (("naive", [python]), ("naive_isolated", [python, "-I", "-S"])):
            start = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(workers) as ex:
                outs = list(ex.map(lambda job, a=argv: naive_run(a, job[0], job[1], limits),
                                   jobs))
            naive[label] = (time.monotonic() - start,
                            sum(outputs_match(o, job[2]) for o, job in zip(outs, jobs,
                                                                            strict=True)))

    line = {
        "runs_per_s": round(runs / pool_s, 1),
        "naive_runs_per_s": round(runs / naive["naive"][0], 1),
        "ratio": round(naive["naive"][0] / pool_s, 1),
        "naive_isolated_runs_per_s": round(runs / naive["naive_isolated"][0], 1),
        "ratio_vs_isolated": round(naive["naive_isolated"][0] / pool_s, 1),
        "runs": runs, "workers": workers, "isolation": isolation,
        "pool_startup_s": round(startup_s, 2),
        "correct": {"pool": pool_ok, "naive": naive["naive"][1],
                    "naive_isolated": naive["naive_isolated"][1]},
    }
    print(json.dumps(line))
    return 0 if all(n == runs for n in line["correct"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
