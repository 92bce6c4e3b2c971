"""Quality of dual verification: our rule (engine/verify/voting.py) against plain majority
voting, on a folder benchmark built from the bundled seeds.

    .venv/bin/python tests/bench/verify_quality.py [--replicates 4] [--jobs N] [--seed 0]
                                                   [--keep DIR] [--time-limit 1.0]

For every seed of ``assets/seeds/seeds.jsonl`` the inputs are its tests (the first is the
statement's sample; inputs over 1 KB are "stress", up to 12 bytes "edge", the rest
"random") and ``expected/`` holds their outputs. Candidate solutions are the seed's correct
solution and variants of it:
- right: the solution itself, the same printing extra spaces and blank lines (which must
  be accepted), and mutants that turn out to behave the same on every test;
- slow: right answers, but an endless loop on inputs of more than 300 tokens (time limit);
- wrong: single-point mutants of the solution's syntax tree (a comparison off by one:
  < <-> <=; a wrong operator: + <-> -, * -> +, max <-> min, == <-> !=, // -> /; an integer
  constant +-1; range(..., stop) -> stop - 1; a dropped special case: `if c:` -> `if
  False:`; an early break: a loop stopped after 3 items), and wrappers around it that print
  0 when the first number is 1 (a missed n = 1 case), crash on tiny inputs, or crash on
  big ones (a recursion limit).
Each mutant runs once on every test (one run matrix per seed, shared by all the tasks built
from it); a mutant is "wrong" when it fails some test. A task draws 4, 8 or 16 candidates:
each is right with a per-task probability drawn from Beta(3, 2) (mean 0.6; 15% of the right
ones are the slow version), the
wrong ones repeat popular bugs (a Chinese-restaurant draw, alpha 1, bugs that pass the
sample three times as likely: models check the sample), so some tasks have a wrong
majority on some inputs. Then ``engine.verify.folder`` verifies the whole folder, and one
JSON line reports, per candidate count, label accuracy (labels equal to the expected
output / inputs) and golden fully correct (golden passes every test / tasks) for plain
majority voting and for our rule, our rule's precision (over labelled inputs, over accepted
tasks), ablations (no exposure weights, no known samples, no hold-out rejection, ambiguous
goldens picked instead of rejected) and the runtime. Reproducible: everything is drawn
from ``--seed``.

Leaves out: LLM-written candidates (the mutants are a proxy: their errors are single-point
and partly independent), and generated inputs beyond the seeds' own tests.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.schema import VerifyConfig  # noqa: E402
from engine.verify import SandboxPool  # noqa: E402
from engine.verify.folder import (  # noqa: E402
    FolderReport,
    TaskFolder,
    accuracy,
    judge,
    limits_from,
    load_folder,
    run_folder,
)
from engine.verify.voting import same_output  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SEEDS = REPO / "assets" / "seeds" / "seeds.jsonl"
SIZES = (4, 8, 16)
PAPER_PLAIN = {"4": {"label_accuracy": 0.918, "golden_correct": 0.842},
               "8": {"label_accuracy": 0.921, "golden_correct": 0.850},
               "16": {"label_accuracy": 0.925, "golden_correct": 0.858}}


# --- Mutants of a correct solution

class _PointMutator(ast.NodeTransformer):
    """Applies the ``target``-th mutation site's ``variant`` (counting sites in walk order)."""

    SWAP_CMP = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                ast.Eq: ast.NotEq, ast.NotEq: ast.Eq}
    SWAP_BIN = {ast.Add: [ast.Sub], ast.Sub: [ast.Add], ast.Mult: [ast.Add],
                ast.FloorDiv: [ast.Div], ast.Mod: [ast.FloorDiv]}

    def __init__(self, target: int | None):
        self.target, self.sites, self.done = target, [], False

    def _site(self, count: int) -> int | None:
        """Registers a site with ``count`` variants; the variant to apply here, if any."""
        start = sum(self.sites)
        self.sites.append(count)
        if self.target is not None and start <= self.target < start + count:
            self.done = True
            return self.target - start
        return None

    def visit_Compare(self, node):
        self.generic_visit(node)
        for i, op in enumerate(node.ops):
            if type(op) in self.SWAP_CMP and self._site(1) is not None:
                node.ops[i] = self.SWAP_CMP[type(op)]()
        return node

    def visit_BinOp(self, node):
        self.generic_visit(node)
        options = self.SWAP_BIN.get(type(node.op), [])
        if options:
            variant = self._site(len(options))
            if variant is not None:
                node.op = options[variant]()
        return node

    def visit_Constant(self, node):
        if isinstance(node.value, int) and not isinstance(node.value, bool) and \
                abs(node.value) < 10**6:
            variant = self._site(2)
            if variant is not None:
                return ast.copy_location(ast.Constant(node.value + (1, -1)[variant]), node)
        return node

    def visit_Call(self, node):
        self.generic_visit(node)
        if isinstance(node.func, ast.Name) and node.func.id == "range" and node.args:
            variant = self._site(1)
            if variant is not None:
                stop = 0 if len(node.args) == 1 else 1
                node.args[stop] = ast.BinOp(node.args[stop], ast.Sub(), ast.Constant(1))
        if isinstance(node.func, ast.Name) and node.func.id in ("max", "min") and \
                self._site(1) is not None:
                node.func = ast.Name("min" if node.func.id == "max" else "max", ast.Load())
        return node

    def visit_If(self, node):
        self.generic_visit(node)
        if self._site(1) is not None:
            node.test = ast.Constant(False)
        return node

    def visit_For(self, node):
        self.generic_visit(node)
        if self._site(1) is not None:
            islice = ast.parse("__import__('itertools').islice", mode="eval").body
            node.iter = ast.Call(islice, [node.iter, ast.Constant(3)], [])
        return node


def point_mutants(source: str) -> list[str]:
    """Every single-point mutant of ``source`` (unparsed), without duplicates."""
    counter = _PointMutator(None)
    counter.visit(ast.parse(source))
    out, seen = [], {ast.unparse(ast.parse(source))}
    for target in range(sum(counter.sites)):
        tree = _PointMutator(target).visit(ast.parse(source))
        text = ast.unparse(ast.fix_missing_locations(tree)) + "\n"
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out


_READ_ALL = ("import io as _io, sys as _sys\n_raw = _sys.stdin.buffer.read()\n"
             "_sys.stdin = _io.TextIOWrapper(_io.BytesIO(_raw))\n_tokens = _raw.split()\n")


def wrappers(source: str) -> dict[str, tuple[str, str]]:
    """name -> (category, source) for the hand-written behaviours around the solution."""
    spaces = ("import io as _io, sys as _sys\n_real, _sys.stdout = _sys.stdout, _io.StringIO()\n"
              + source + "\n_text, _sys.stdout = _sys.stdout.getvalue(), _real\n"
              "print('\\n'.join(line + '   ' for line in _text.splitlines()) + '\\n\\n')\n")
    return {
        "spaces": ("right", spaces),
        "slow": ("slow", _READ_ALL + "while len(_tokens) > 300:\n    pass\n" + source),
        "no_n1": ("wrong", _READ_ALL + "if _tokens[:1] == [b'1']:\n    print(0)\n"
                  "    raise SystemExit\n" + source),
        "crash_tiny": ("wrong", _READ_ALL + "if len(_tokens) <= 3:\n"
                       "    raise IndexError('list index out of range')\n" + source),
        "crash_big": ("wrong", _READ_ALL + "if len(_tokens) > 1000:\n"
                      "    raise RecursionError('maximum recursion depth exceeded')\n" + source),
    }


# --- The candidate library of one seed: every variant run on every test

@dataclasses.dataclass
class Variant:
    name: str
    source: str
    category: str  # right / slow / wrong (after running)
    passes_sample: bool = False


def input_kind(index: int, data: str) -> str:
    if index == 0:
        return "sample"
    return "stress" if len(data) > 1000 else "edge" if len(data) <= 12 else "random"


def mutant_library(seed: dict, rng: random.Random, max_mutants: int) -> list[Variant]:
    solution = seed["solution"]
    mutants = point_mutants(solution)
    rng.shuffle(mutants)
    variants = [Variant("original", solution, "right")]
    variants += [Variant(name, src, cat) for name, (cat, src) in wrappers(solution).items()]
    variants += [Variant(f"m{i:03d}", src, "wrong") for i, src in
                 enumerate(mutants[:max_mutants])]
    return variants


def classify(task: TaskFolder, variants: list[Variant], cells, cfg: VerifyConfig) -> None:
    """Sets each variant's category from how it ran on the seed's tests."""
    sample = task.kinds.index("sample")
    for variant, row in zip(variants, cells, strict=True):
        right = {j: row[j].status == "ok" and same_output(row[j].output, answer, cfg)
                 for j, answer in task.expected.items()}
        timed_out = {j: row[j].status == "time_limit" for j in task.expected}
        variant.passes_sample = right[sample]
        if all(right.values()):
            variant.category = "right"
        elif variant.category == "slow" and all(right[j] or timed_out[j] for j in right):
            variant.category = "slow"
        else:
            variant.category = "wrong"
    if variants[0].category != "right":
        raise SystemExit(f"{task.name}: the seed solution fails its own tests here")


# --- Drawing candidate sets and writing the folder

def draw_candidates(library: list[Variant], size: int, rng: random.Random) -> list[Variant]:
    right = [v for v in library if v.category == "right"]
    slow = [v for v in library if v.category == "slow"]
    wrong = [v for v in library if v.category == "wrong"]
    share = rng.betavariate(3, 2)  # per task: some tasks are much harder than others
    n_right = sum(rng.random() < share for _ in range(size)) if wrong else size
    chosen: list[Variant] = []
    for _ in range(n_right):
        if slow and rng.random() < 0.15:
            chosen.append(rng.choice(slow))
        else:  # the plain solution half the time, else a right variant
            chosen.append(right[0] if rng.random() < 0.5 else rng.choice(right))
    tables: list[Variant] = []
    weights = [3.0 if v.passes_sample else 1.0 for v in wrong]
    for k in range(size - n_right):
        if not tables or rng.random() < 1.0 / (1.0 + k):  # CRP with alpha = 1
            tables.append(rng.choices(wrong, weights)[0])
            chosen.append(tables[-1])
        else:
            chosen.append(rng.choice(chosen[n_right:]))  # a popular bug, by popularity
    rng.shuffle(chosen)
    return chosen


def write_task(root: Path, name: str, seed: dict, candidates: list[Variant]) -> None:
    task = root / name
    for sub in ("inputs", "expected", "solutions"):
        (task / sub).mkdir(parents=True)
    (task / "statement.md").write_text(seed["problem"])
    for j, test in enumerate(seed["tests"]):
        stem = f"{input_kind(j, test['input'])}_{j}"
        (task / "inputs" / f"{stem}.txt").write_text(test["input"])
        (task / "expected" / f"{stem}.txt").write_text(test["output"])
    for c, variant in enumerate(candidates):
        (task / "solutions" / f"c{c:03d}_{variant.name}.py").write_text(variant.source)


# --- Measuring

def _rates(reports, cfg: VerifyConfig) -> dict:
    acc = accuracy(FolderReport(reports, None, ""), cfg)
    keep = ("label_accuracy", "label_precision", "golden_correct", "golden_precision",
            "chosen_correct")
    out = {rule: {k: round(acc[rule][k], 4) for k in keep if acc[rule][k] is not None}
           for rule in ("ours", "plain")}
    out["ours"]["accepted_share"] = round(acc["ours"]["accepted"] / acc["tasks"], 4)
    out["tasks"] = acc["tasks"]
    out["inputs"] = acc["ours"]["labels_total"]
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--replicates", type=int, default=4, help="tasks per seed and size")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-mutants", type=int, default=40, help="point mutants per seed")
    p.add_argument("--time-limit", type=float, default=1.0, help="CPU seconds per run")
    p.add_argument("--keep", help="build the folder here (kept) instead of a temp dir")
    args = p.parse_args(argv)
    cfg = VerifyConfig()
    limits = limits_from(cfg, args.time_limit)
    seeds = [json.loads(line) for line in SEEDS.read_text().splitlines() if line.strip()]
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="verify-quality-") as tmp, \
            SandboxPool(workers=args.jobs, limits=limits) as pool:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        cache: dict = {}
        libraries = {seed["id"]: mutant_library(seed, random.Random(
            f"{args.seed}/{seed['id']}/library"), args.max_mutants) for seed in seeds}
        for seed in seeds:  # one task per seed holding every variant: runs each once
            write_task(root / "library", seed["id"], seed, libraries[seed["id"]])
        library_tasks = load_folder(root / "library")
        library_cells, library_stats = run_folder(library_tasks, pool, limits, cache)
        for task, runs in zip(library_tasks, library_cells, strict=True):
            classify(task, libraries[task.name], runs.cells, cfg)
        size_of: dict[str, int] = {}
        wrong_share = []
        for seed in seeds:
            for size in SIZES:
                for r in range(args.replicates):
                    rng = random.Random(f"{args.seed}/{seed['id']}/{size}/{r}")
                    candidates = draw_candidates(libraries[seed["id"]], size, rng)
                    name = f"{seed['id']}-n{size}-r{r}"
                    write_task(root / "bench", name, seed, candidates)
                    size_of[name] = size
                    wrong_share.append(sum(v.category == "wrong" for v in candidates) / size)
        tasks = load_folder(root / "bench")
        run_started = time.monotonic()
        matrices, stats = run_folder(tasks, pool, limits, cache)
        run_s = time.monotonic() - run_started
        judge_started = time.monotonic()
        reports = judge(tasks, matrices, cfg)
        judge_s = time.monotonic() - judge_started
        no_samples = [dataclasses.replace(t, known={}) for t in tasks]
        def variant(**changes) -> VerifyConfig:
            return VerifyConfig(**{**cfg.model_dump(), **changes})

        ablations = {
            "no_exposure_weights": judge(tasks, matrices, variant(exposure_discount=1.0)),
            "no_known_samples": judge(no_samples, matrices, cfg),
            "no_holdout_rejection": judge(tasks, matrices, variant(holdout_min_pass=0.0)),
            "pick_ambiguous_golden": judge(tasks, matrices,
                                           variant(reject_ambiguous_golden=False)),
        }
        isolation = pool.isolation

    by_size = {}
    for size in SIZES:
        pick = [i for i, t in enumerate(tasks) if size_of[t.name] == size]
        line = _rates([reports[i] for i in pick], cfg)
        line["ablations"] = {name: {k: v for k, v in _rates([rs[i] for i in pick], cfg)
                                    ["ours"].items()
                                    if k in ("label_accuracy", "golden_correct",
                                             "golden_precision", "accepted_share")}
                             for name, rs in ablations.items()}
        line["wrong_majority_inputs"] = _wrong_majority_share([reports[i] for i in pick],
                                                              cfg)
        by_size[str(size)] = line
    print(json.dumps({
        "by_candidates": by_size,
        "paper_plain_reference": PAPER_PLAIN,
        "seeds": len(seeds), "tasks": len(tasks), "replicates": args.replicates,
        "mean_wrong_share": round(sum(wrong_share) / len(wrong_share), 3),
        "library_variants": sum(len(v) for v in libraries.values()),
        "cells": stats.cells, "unique_runs": library_stats.runs,
        "runs_per_s": round(library_stats.runs / library_stats.seconds, 1),
        "seconds": {"runs": round(library_stats.seconds, 1),
                    "verify_cached": round(run_s, 1),
                    "judge_both_rules": round(judge_s, 2),
                    "total": round(time.monotonic() - started, 1)},
        "jobs": args.jobs, "isolation": isolation, "seed": args.seed,
        "config_fingerprint": hashlib.sha256(cfg.model_dump_json().encode()).hexdigest()[:12],
    }))
    return 0


def _wrong_majority_share(reports, cfg: VerifyConfig) -> float:
    """Inputs whose most common clean output is not the expected one (plain's hard cases)."""
    hard = total = 0
    for r in reports:
        for j, answer in r.task.expected.items():
            classes = r.plain.inputs[j].classes
            total += 1
            hard += not classes or not same_output(classes[0].text, answer, cfg)
    return round(hard / total, 4) if total else 0.0


if __name__ == "__main__":
    sys.exit(main())
