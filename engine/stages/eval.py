"""Stage ``eval``: avg@k of a model on LiveCodeBench-format problems (SYNTHSMITH.md §9).

Run it alone (after ``rl``, or with any model)::

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages eval

What: for each problem of ``eval.problems`` (engine/eval/problems.py: a JSONL or Parquet
file, or the files of ``eval.release`` in a folder; those with a contest_date in
``eval.start_date`` .. ``eval.end_date``; the first ``eval.max_problems``), ``eval.k`` samples from the eval model with the prompt
assets/prompts/eval_solve.md (the statement, the starter code if any, and the I/O convention:
stdin/stdout, or "complete the starter code" for function-style problems); the program of each
answer is ``extract_solution(text, "python")`` (for a function-style problem a block holding
only definitions is its program). Each sample is judged in the sandbox on all public and
private tests (engine/eval/judge.py); a problem's score is its pass@1 mean over the k samples,
and avg@k is the mean over problems.

The model (``eval.model``), first match wins:

- ``rl`` / ``sft``: this run's ``checkpoints/<stage>/final`` (a StageError if it is missing);
- the name of an endpoint in ``llms`` (e.g. ``generator``): that endpoint as it is, any
  backend, e.g. a vLLM server that serves the checkpoint over the OpenAI API;
- anything else: a local path, a Hugging Face id or ``tiny-random``.

Local models run on ``eval.engine``: vLLM offline with the stage's GPUs as tensor parallel
size, or transformers (``max_new_tokens`` = ``eval.max_tokens``). Samples are seeded
``run.seed + sample_index`` and come from the run's response cache on a rerun; for a local
checkpoint the cache file is keyed by a fingerprint of its files, so a retrained checkpoint at
the same path is never answered from the old one's replies.

Outputs, under ``<run>/exports/eval/``:

- ``results.jsonl``: one row per problem (question_id, title, difficulty, platform, k, model,
  passes per sample, statuses per sample, code per sample (the program judged, null for a
  sample without one), pass_at_1), appended as each problem is judged and rewritten in file
  order at the end. A rerun reads it back and skips the problems it holds (rows for another
  k or model are dropped; rows written before code was kept are read, without code): this
  is what makes the stage resumable.
- ``lcb_custom.json``: ``[{"question_id": ..., "code_list": [code, ...]}, ...]``, the input of
  LiveCodeBench's ``lcb_runner.runner.custom_evaluator --custom_output_file`` to re-grade
  the same code with its grader (a sample without code is ``""``, which fails there too).
  It must cover exactly LiveCodeBench's problem set for the same ``--release_version`` /
  ``--start_date`` / ``--end_date`` (it asserts equal counts), so evaluate all problems.
- ``summary.csv``: ``scope,name,problems,samples,avg_at_k`` rows for all problems, each
  difficulty and each platform.

Events: artifacts ``eval/results``, ``eval/summary``, ``eval/lcb_custom``; progress (problems),
metrics ``eval/avg_at_k``, ``eval/pass_at_1/<difficulty>``, ``eval/problems_done``,
``eval/no_code_rate`` (samples without a program), ``eval/timeouts`` (samples whose first
failure was the time limit), ``llm/...``; a few ``sample`` events (kind
``eval_sample``: problem id, passed, status, code). Problems go through the LLM in chunks of
``CHUNK_PROBLEMS``; a problem's samples are judged as soon as they are all back, while the
rest of the chunk generates; SIGTERM stops between chunks.

Left out: pass@k for k > 1 (avg@k is what §9 reports), C++ samples, and sharding (one
process; vLLM batches the whole chunk).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.eval.judge import SampleVerdict, avg_at_k, judge_sample, pass_at_1
from engine.eval.problems import EvalProblem, ProblemFormatError, load_problems
from engine.paths import resolve_data_path
from engine.prompts import render_prompt
from engine.rundir import atomic_write_text
from engine.stages.synth_common import deferred_error, is_transient
from engine.synth.code_extract import (
    LANGUAGE_TAGS,
    NON_CODE_TAGS,
    extract_solution,
    fenced_blocks,
    split_think,
)

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.schema import EvalConfig

STAGE = "eval"
CHUNK_PROBLEMS = 64  # problems per LLM batch: the stop-check and durability granularity
MAX_SAMPLE_EVENTS = 6
RESULTS_FILE = "results.jsonl"
SUMMARY_FILE = "summary.csv"
LCB_CUSTOM_FILE = "lcb_custom.json"
_DEFINITIONS_ONLY = "incomplete_program: only definitions, nothing runs"

STDIN_CONVENTION = (
    "The program reads the input from standard input and writes the answer to standard "
    "output in exactly the format the problem asks for, printing nothing else."
)
FUNCTIONAL_CONVENTION = (
    "Complete the starter code below, keeping its class, method name and signature: the "
    "method is called directly with the arguments, so the program reads no input and prints "
    "nothing."
)


# --- prompts and code


def eval_messages(problem: EvalProblem) -> list[dict[str, str]]:
    """The chat messages that ask for one sample of ``problem``."""
    starter = problem.starter_code.strip("\n")
    text = render_prompt(
        "eval_solve", title=problem.title.strip() or problem.question_id,
        statement=problem.content.strip(),
        convention=FUNCTIONAL_CONVENTION if problem.functional else STDIN_CONVENTION,
        starter=f"\nStarter code:\n\n```python\n{starter}\n```\n" if starter else "",
    )
    return [{"role": "user", "content": text}]


def sample_code(text: str, *, functional: bool, truncated: bool = False,
                reasoning: str | None = None) -> str | None:
    """The program of one answer, or None.

    ``extract_solution`` refuses a block holding only definitions (nothing would run); for a
    function-style problem that is exactly the answer, so its one block is taken then.
    """
    ex = extract_solution(text, "python", reasoning=reasoning, truncated=truncated)
    if ex.ok:
        return ex.code
    if not (functional and ex.reject_reason == _DEFINITIONS_ONLY):
        return None
    blocks = [b for b in fenced_blocks(split_think(text)[1]) if b.tag not in NON_CODE_TAGS]
    tagged = [b for b in blocks if b.tag in LANGUAGE_TAGS["python"]]
    chosen = tagged or [b for b in blocks if b.tag == ""]
    return chosen[0].body if len(chosen) == 1 else None


# --- the model


def _fingerprint(folder: Path) -> str:
    """A short hash of a checkpoint folder's file names, sizes and mtimes (cheap, no reads)."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(folder)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:12]


def resolve_model(ctx: StageContext, cfg: EvalConfig) -> tuple[str, Any, str]:
    """(endpoint name, endpoint object, cache file name) for ``eval.model`` (module doc)."""
    from engine.schema import TransformersEndpoint, VLLMOfflineEndpoint

    model = cfg.model
    cache_name = "llm_responses.sqlite"
    if model in ("rl", "sft"):
        path = ctx.run.checkpoint_dir(model) / "final"
        if not (path / "config.json").is_file():
            raise StageError(f"eval.model is '{model}' but there is no {model} checkpoint at "
                             f"{path}: run the {model} stage first (--stages {model}), or set "
                             "eval.model to a model folder, a Hugging Face id, an endpoint "
                             "name in llms, or tiny-random")
        cache_name = f"llm_responses.eval.{_fingerprint(path)}.sqlite"
        model = str(path)
    elif model in ctx.config.llms:
        return model, ctx.config.llms[model], cache_name
    if cfg.engine == "vllm":
        gpus = cfg.resources.gpus_per_node or 1
        return "eval", VLLMOfflineEndpoint(model=model, tensor_parallel_size=gpus), cache_name
    return "eval", TransformersEndpoint(model=model, max_new_tokens=cfg.max_tokens,
                                        batch_size=8), cache_name


# --- results


def read_results(path: Path, k: int, model: str) -> dict[str, dict]:
    """Rows of an earlier run of this stage with the same k and model, by question_id.

    A torn last line (a kill mid-write) and rows for another k or model are dropped.
    """
    rows: dict[str, dict] = {}
    if not path.is_file():
        return rows
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if (isinstance(row, dict) and row.get("k") == k and row.get("model") == model
                and isinstance(row.get("passes"), list) and len(row["passes"]) == k):
            rows[str(row.get("question_id"))] = row
    return rows


def result_row(problem: EvalProblem, verdicts: Sequence[SampleVerdict], k: int,
               model: str, codes: Sequence[str | None] | None = None) -> dict:
    """One problem's results; ``codes`` are the judged programs, aligned with the verdicts."""
    passes = [v.passed for v in verdicts]
    codes = list(codes) if codes is not None else [None] * len(verdicts)
    if len(codes) != len(verdicts):
        raise ValueError(f"{len(codes)} codes for {len(verdicts)} verdicts")
    return {
        "question_id": problem.question_id, "title": problem.title,
        "difficulty": problem.difficulty, "platform": problem.platform, "k": k,
        "model": model, "tests": len(problem.tests), "passes": passes,
        "statuses": [v.status for v in verdicts], "code": codes,
        "pass_at_1": pass_at_1(passes),
    }


def lcb_custom_outputs(rows: Sequence[dict]) -> list[dict]:
    """LiveCodeBench's custom_evaluator input: question_id and code_list per problem; a
    sample without code (or a row from before code was kept) is ``""``."""
    out = []
    for r in rows:
        codes = r.get("code")
        if not isinstance(codes, list) or len(codes) != len(r["passes"]):
            codes = [None] * len(r["passes"])
        out.append({"question_id": r["question_id"],
                    "code_list": [c if isinstance(c, str) else "" for c in codes]})
    return out


def summary_rows(rows: Sequence[dict]) -> list[dict]:
    """The summary table: all problems, then by difficulty, then by platform."""
    out = []
    for scope, key in (("all", None), ("difficulty", "difficulty"), ("platform", "platform")):
        groups: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            groups["all" if key is None else str(r[key])].append(r)
        for name in sorted(groups):
            g = groups[name]
            out.append({"scope": scope, "name": name, "problems": len(g),
                        "samples": sum(len(r["passes"]) for r in g),
                        "avg_at_k": round(avg_at_k([r["pass_at_1"] for r in g]), 6)})
    return out


def write_summary(path: Path, rows: Sequence[dict]) -> list[dict]:
    table = summary_rows(rows)
    tmp = path.with_suffix(".csv.tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["scope", "name", "problems", "samples", "avg_at_k"])
        w.writeheader()
        w.writerows(table)
    os.replace(tmp, path)
    return table


class _Tally:
    """Running counts for the metrics; fed from the main thread only."""

    def __init__(self) -> None:
        self.samples = 0
        self.no_code = 0
        self.timeouts = 0

    def add(self, row: dict) -> None:
        self.samples += len(row["statuses"])
        self.no_code += row["statuses"].count("no_code")
        self.timeouts += row["statuses"].count("time_limit")

    def metrics(self, rows: Sequence[dict]) -> dict[str, float]:
        out = {"eval/avg_at_k": avg_at_k([r["pass_at_1"] for r in rows]),
               "eval/problems_done": float(len(rows)),
               "eval/no_code_rate": self.no_code / self.samples if self.samples else 0.0,
               "eval/timeouts": float(self.timeouts)}
        by: dict[str, list[float]] = defaultdict(list)
        for r in rows:
            by[str(r["difficulty"])].append(r["pass_at_1"])
        out.update({f"eval/pass_at_1/{d}": avg_at_k(v) for d, v in sorted(by.items())})
        return out


# --- the stage


def _open_pool(cfg: EvalConfig) -> Any:
    from engine.verify.sandbox import Limits, SandboxPool, SandboxUnavailable

    workers = max(1, cfg.resources.cpus_per_task or len(os.sched_getaffinity(0)))
    limits = Limits(cpu_s=cfg.time_limit_s, memory_mb=cfg.memory_mb)
    try:
        return SandboxPool(workers=workers, limits=limits), limits, workers
    except SandboxUnavailable as e:
        raise StageError(f"the eval stage runs generated code only in the sandbox, which "
                         f"cannot start here: {e}") from None


def run(ctx: StageContext) -> dict:
    cfg = ctx.config.eval
    ev, log = ctx.events, ctx.log
    if cfg.problems is None:
        raise StageError("eval.problems is empty: set it to a LiveCodeBench-format JSONL file")
    try:
        problems = load_problems(resolve_data_path(cfg.problems), cfg.max_problems,
                                 release=cfg.release, start_date=cfg.start_date,
                                 end_date=cfg.end_date)
    except (ProblemFormatError, ValueError) as e:
        raise StageError(f"eval.problems: {e}") from None
    out_dir = ctx.run.exports_dir / "eval"
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path, summary_path = out_dir / RESULTS_FILE, out_dir / SUMMARY_FILE
    custom_path = out_dir / LCB_CUSTOM_FILE
    label = cfg.model
    earlier = read_results(results_path, cfg.k, label)
    order = {p.question_id: i for i, p in enumerate(problems)}
    done_rows = [earlier[p.question_id] for p in problems if p.question_id in earlier]
    # Start the file over from what is kept, so stale rows never mix with new ones.
    atomic_write_text(results_path, "".join(json.dumps(r) + "\n" for r in done_rows))
    todo = [p for p in problems if p.question_id not in earlier]
    log.info("eval: %d problems (%d done earlier), model %s, k=%d", len(problems),
             len(done_rows), label, cfg.k)
    tally = _Tally()
    for r in done_rows:
        tally.add(r)
    ev.progress(len(done_rows), len(problems), unit="problems")
    interrupted, left = False, ""
    t0 = time.perf_counter()
    if todo:
        interrupted, left = _generate_and_judge(ctx, cfg, todo, results_path, done_rows, tally,
                                                len(problems))
    done_rows.sort(key=lambda r: order[r["question_id"]])
    atomic_write_text(results_path, "".join(json.dumps(r) + "\n" for r in done_rows))
    table = write_summary(summary_path, done_rows)
    atomic_write_text(custom_path, json.dumps(lcb_custom_outputs(done_rows), indent=1) + "\n")
    no_code_kept = sum(not isinstance(r.get("code"), list) for r in done_rows)
    if no_code_kept:
        log.warning("eval: %d problems were judged before code was kept; %s has empty code "
                    "for them (delete %s and rerun to regrade them with LiveCodeBench)",
                    no_code_kept, custom_path.name, results_path.name)
    ev.metric(len(done_rows), tally.metrics(done_rows))
    ev.artifact("eval/results", results_path, kind="table")
    ev.artifact("eval/summary", summary_path, kind="table")
    ev.artifact("eval/lcb_custom", custom_path, kind="file")
    overall = avg_at_k([r["pass_at_1"] for r in done_rows])
    log.info("eval: avg@%d = %.4f over %d problems (%.1f s)%s", cfg.k, overall, len(done_rows),
             time.perf_counter() - t0, ", interrupted" if interrupted else "")
    summary = {
        "avg_at_k": overall, "k": cfg.k, "model": label, "problems": len(done_rows),
        "of": len(problems), "no_code_rate": tally.metrics(done_rows)["eval/no_code_rate"],
        "timeouts": tally.timeouts, "interrupted": interrupted,
        "by_difficulty": {r["name"]: r["avg_at_k"] for r in table if r["scope"] == "difficulty"},
        "by_platform": {r["name"]: r["avg_at_k"] for r in table if r["scope"] == "platform"},
        "results": str(results_path), "summary": str(summary_path),
        "lcb_custom": str(custom_path),
    }
    if left and not interrupted:
        raise StageError(left)
    return summary


def _generate_and_judge(ctx: StageContext, cfg: EvalConfig, todo: list[EvalProblem], results_path: Path,
                        done_rows: list[dict], tally: _Tally, total: int) -> tuple[bool, str]:
    """Generate, judge and record ``todo``.

    -> (stopped early by SIGTERM, the StageError text for problems left for a rerun or "").
    A problem with a call that failed in transport after the client's retries is not
    recorded (its other answers are cached), so the rerun asks again for that call only; a
    call refused for the request itself (HTTP 400: a prompt over the context) is a sample
    without a program.
    """
    from engine.llm import ChatRequest, LLMError, make_client, run_batch

    ev, log = ctx.events, ctx.log
    name, endpoint, cache_name = resolve_model(ctx, cfg)
    pool, limits, workers = _open_pool(cfg)
    executor = ThreadPoolExecutor(workers, "eval-judge")
    deferred, sampled = 0, 0
    try:
        client = make_client(endpoint, name=name, cache_dir=ctx.run.cache_dir,
                             cache_name=cache_name, events=ev,
                             tensor_parallel=cfg.resources.gpus_per_node or None)
    except LLMError as e:
        executor.shutdown(cancel_futures=True)
        pool.close()
        raise StageError(f"eval.model {cfg.model!r}: {e}") from None
    try:
        for start in range(0, len(todo), CHUNK_PROBLEMS):
            if ctx.stop_requested():
                return True, ""
            chunk = todo[start:start + CHUNK_PROBLEMS]
            requests = [r for p in chunk for r in ChatRequest.for_stage(
                cfg, eval_messages(p), seed=ctx.config.run.seed,
                tag=p.question_id).with_samples(cfg.k)]
            answers: list[list[Any]] = [[None] * cfg.k for _ in chunk]
            pending = [cfg.k] * len(chunk)
            futures: dict[int, list[Future]] = {}
            codes: dict[int, list[str | None]] = {}

            def on_result(index: int, result: Any, chunk: list[EvalProblem] = chunk,
                          answers: list[list[Any]] = answers, pending: list[int] = pending,
                          futures: dict[int, list[Future]] = futures,
                          codes: dict[int, list[str | None]] = codes) -> None:
                # Runs on the LLM's event loop: hand the judging to the executor and return,
                # so the sandbox works on finished problems while the rest generate.
                i, s = divmod(index, cfg.k)
                answers[i][s] = result
                pending[i] -= 1
                if pending[i] == 0 and not any(not r.ok and is_transient(r.error)
                                               for r in answers[i]):
                    p = chunk[i]
                    codes[i] = [_code_of(r, p) for r in answers[i]]
                    futures[i] = [executor.submit(judge_sample, pool, p, c, limits)
                                  for c in codes[i]]

            run_batch(client, requests, on_result=on_result)
            for i, problem in enumerate(chunk):
                if i not in futures:
                    deferred += 1
                    continue
                verdicts = [f.result() for f in futures[i]]
                row = result_row(problem, verdicts, cfg.k, cfg.model, codes[i])
                with results_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps(row) + "\n")  # durable per problem: the resume point
                done_rows.append(row)
                tally.add(row)
                if sampled < MAX_SAMPLE_EVENTS:
                    sampled += 1
                    ev.sample("eval_sample", {
                        "question_id": problem.question_id, "title": problem.title,
                        "passed": verdicts[0].passed, "status": verdicts[0].status,
                        "detail": verdicts[0].detail,
                        "code": (codes[i][0] or "")[:1500]}, step=len(done_rows))
            ev.metric(len(done_rows), tally.metrics(done_rows))
            ev.progress(len(done_rows), total, unit="problems")
            log.info("eval: %d/%d problems judged", len(done_rows), total)
    finally:
        errors = client.stats.errors.copy()
        client.close()
        executor.shutdown(wait=True, cancel_futures=True)
        pool.close()
    if deferred:
        return False, deferred_error(STAGE, deferred, len(todo), "problems", errors)
    return False, ""


def _code_of(result: Any, problem: EvalProblem) -> str | None:
    if not result.ok:
        return None
    return sample_code(result.text, functional=problem.functional, truncated=result.truncated,
                       reasoning=result.reasoning)


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages eval``)."""
    return run_stage_alone(STAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
