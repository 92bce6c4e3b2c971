"""The checks behind tests/gpu/acceptance.sh (issue #20), one subcommand each.

Each check runs in its own process under a time cap set by the driver and writes ONE JSON
object to ``--result`` (default: ``$ACCEPTANCE_RESULT``)::

    {"name": "sft_flex", "ok": true, "figures": {...}}                    # passed
    {"name": "rl", "ok": true, "skipped": "no bwrap: ...", "figures": {}}  # could not run here
    {"name": "zero3", "ok": false, "error": "...", "figures": {...}}       # failed

The driver then calls ``record``, which adds the seconds, the exit code and, where a check
left no result (killed by its cap, crashed), ``ok: false`` with the tail of its log, and
appends the line to ``acceptance.jsonl``; ``summary`` folds that file into
``acceptance_summary.json``. ``record``, ``summary`` and ``install-wheels`` import neither torch
nor the engine, so they work before the carried wheels are on the path.

``--device cpu`` is the dry mode the CPU test suite runs (tests/gpu_plumbing/): tiny shapes,
2 steps, float32, the same code path otherwise. ``--device cuda`` (default) is the real check.

Subcommands: install-wheels, prepare, loss_equal, sft, zero, rl, eval, bench, record, summary.
Run ``python tests/gpu/acceptance_checks.py -h`` for their arguments; tests/gpu/README.md
says how a GPU session runs the whole thing.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
SUMMARY_VERSION = 1
LOG_TAIL_CHARS = 2000
LOG_KEEP_BYTES = 256 * 1024

# Model shapes: Qwen2.5 0.5B geometry for the GPU, a ~100k-parameter one for the CPU dry mode.
SHAPES = {
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2, vocab_size=151_936),
    # The ZeRO checks' model: 0.5B width, 4 layers, 32k vocab (~90M parameters), so that two
    # processes, a DeepSpeed checkpoint and a resume fit their cap; ZeRO's partitioning,
    # checkpoint and resume do not depend on the depth.
    "0.5b-4l": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=4,
                    num_attention_heads=14, num_key_value_heads=2, vocab_size=32_768),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, vocab_size=None),
}
# Per device: the knobs that make the GPU check meaningful and the CPU one fast.
PROFILES: dict[str, dict[str, Any]] = {
    "cuda": {"shape": "0.5b", "zero_shape": "0.5b-4l", "sft_steps": 30, "padded_steps": 10,
             "max_seq_len": 4096, "packed_batch": 2, "packed_micro": 2,  # ~8k tokens a step
             "padded_batch": 8, "padded_micro": 4,
             "doc_tokens": 900, "bf16": True, "grad_ckpt": True,
             "zero_steps": 8, "zero_save_every": 3, "zero_seq_len": 2048,
             "rl_steps": 3, "rl_group": 4, "rl_prompts": 4, "rl_response": 64, "rl_cpus": 8,
             "eval_problems": 4, "eval_k": 2, "eval_tokens": 128,
             "bench": ["--shapes", "1.5b", "--steps", "3"]},
    "cpu": {"shape": "tiny", "zero_shape": "tiny", "sft_steps": 2, "padded_steps": 2, "max_seq_len": 256,
            "packed_batch": 2, "packed_micro": 1, "padded_batch": 4, "padded_micro": 2,
            "doc_tokens": 60, "bf16": False, "grad_ckpt": False,
            "zero_steps": 5, "zero_save_every": 2, "zero_seq_len": 256,
            "rl_steps": 2, "rl_group": 2, "rl_prompts": 2, "rl_response": 32, "rl_cpus": 2,
            "eval_problems": 2, "eval_k": 1, "eval_tokens": 32,
            "bench": ["--device", "cpu", "--shapes", "tiny", "--steps", "1", "--tokens", "512",
                      "--micro-tokens", "512", "--max-len", "256",
                      "--methods", "padded,packed_sdpa"]},
}
BENCH_TARGETS = {"ratio_vs_padded": 3.0, "mfu": 0.30}  # the targets (aim: MFU 40 %)
# The distributions tests/gpu/carry_wheels.sh puts in .whl (gpu-recipes.md's list).
CARRIED_WHEELS = ("trl", "datasets", "dill", "multiprocess", "hjson", "pydantic",
                  "pydantic_core", "annotated_types", "typing_inspection", "deepspeed")
CARRIED_MODULES = ("pydantic", "pydantic_core", "trl", "deepspeed", "datasets", "yaml")
RL_STATEMENT = "Read integers from standard input and print their sum."
RL_TESTS = {"inputs": ["1 2\n", "3 4 5\n", "10\n", "-1 1\n"], "outputs": ["3", "12", "10", "0"]}
RL_KEYS = ("rl/reward/mean", "rl/reward/std", "rl/pass_rate", "rl/response_length/mean",
           "rl/truncation_rate", "rl/entropy", "rl/grad_norm", "rl/lr", "rl/time/generate_s",
           "rl/time/reward_s", "rl/time/train_s", "rl/rollout_tokens_per_s")


# torch has FlexAttention's forward on CPU but no backward (NotImplementedError), so training
# with a BlockMask is CUDA-only; the CPU dry mode skips those parts and says so.
NO_FLEX_CPU = "flex BlockMask training is CUDA-only (no FlexAttention backward on CPU)"


class Skip(Exception):
    """The check cannot run here for a reason outside the code (no bwrap, no flex kernel)."""


class CheckFailed(Exception):
    """The check ran and a property did not hold; the message says which."""


# --- results: record and summary (no torch, no engine) ---------------------------------------


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=None, default=str) + "\n", encoding="utf-8")
    tmp.replace(path)


def log_tail(log: Path | None, chars: int = LOG_TAIL_CHARS) -> str:
    if log is None or not log.is_file():
        return ""
    with open(log, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - chars))
        return f.read().decode("utf-8", "replace")


def trim_log(log: Path | None, keep: int = LOG_KEEP_BYTES) -> None:
    """Keep only the last ``keep`` bytes of a log (what comes back from the machine is capped)."""
    if log is None or not log.is_file() or log.stat().st_size <= keep:
        return
    with open(log, "rb") as f:
        f.seek(-keep, os.SEEK_END)
        tail = f.read()
    log.write_bytes(b"[... trimmed ...]\n" + tail)


def make_record(name: str, rc: int, seconds: float, cap: float | None,
                result: Path | None, log: Path | None) -> dict[str, Any]:
    """One line of acceptance.jsonl from what a capped check left behind."""
    rec: dict[str, Any] = {"name": name, "ok": False, "seconds": round(seconds, 2), "rc": rc,
                           "cap_s": cap, "figures": {}}
    data = None
    if result is not None and result.is_file():
        try:
            data = json.loads(result.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            rec["error"] = f"unreadable result file {result}: {e}"
    if isinstance(data, dict):
        rec["figures"] = data.get("figures") or {}
        for key in ("skipped", "error"):
            if data.get(key):
                rec[key] = data[key]
        rec["ok"] = bool(data.get("ok")) and rc == 0
        if rc != 0 and not rec.get("error"):
            rec["error"] = f"exit code {rc} after writing its result"
    elif "error" not in rec:
        if rc in (124, 137):
            rec["error"] = f"timed out after {cap} s (cap)"
        else:
            rec["error"] = f"exit code {rc} without a result"
    if not rec["ok"] and not rec.get("skipped"):
        tail = log_tail(log)
        if tail:
            rec["log_tail"] = tail
    if log is not None:
        rec["log"] = log.name
    return rec


def read_records(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    out.append({"name": "?", "ok": False, "error": f"bad line: {line[:200]}"})
    return out


def make_summary(records: list[dict[str, Any]], device: str, seconds: float,
                 budget_s: float | None, expected: list[str] | None = None) -> dict[str, Any]:
    """acceptance_summary.json: every check's outcome, the headline figures, targets."""
    seen = {r.get("name") for r in records}
    missing = [n for n in (expected or []) if n not in seen]
    checks = {}
    for r in records:
        status = "skipped" if r.get("skipped") and r.get("ok") else ("ok" if r.get("ok")
                                                                      else "failed")
        checks[r.get("name", "?")] = {"status": status, "seconds": r.get("seconds"),
                                      **({"skipped": r["skipped"]} if r.get("skipped") else {}),
                                      **({"error": r["error"]} if r.get("error") else {})}
    for n in missing:
        checks[n] = {"status": "failed", "error": "never ran (the driver stopped before it)"}
    failed = [n for n, c in checks.items() if c["status"] == "failed"]
    figures = {r["name"]: r.get("figures", {}) for r in records if r.get("figures")}
    bench = figures.get("bench", {})
    return {
        "version": SUMMARY_VERSION,
        "ok": not failed,
        "device": device,
        "seconds": round(seconds, 2),
        "budget_s": budget_s,
        "passed": [n for n, c in checks.items() if c["status"] == "ok"],
        "skipped": [n for n, c in checks.items() if c["status"] == "skipped"],
        "failed": failed,
        "checks": checks,
        "targets": bench.get("targets", {}),
        "figures": figures,
    }


# --- the wheel step (no torch, no engine) ----------------------------------------------------


def wheel_set_problems(names: list[str], python: str = "cp312") -> list[str]:
    """What is wrong with a set of wheel file names for the GPU machine's Python: required
    distributions missing, or a binary wheel built for another Python."""
    problems, seen = [], set()
    for name in names:
        parts = name[:-4].split("-") if name.endswith(".whl") else []
        if len(parts) < 5:
            problems.append(f"not a wheel file name: {name}")
            continue
        seen.add(parts[0].lower().replace("-", "_"))
        tag = parts[-3]
        if not (tag.startswith("py3") or python in tag.split(".")):
            problems.append(f"{name} is for {tag}, not {python}")
    problems += [f"missing {d}" for d in CARRIED_WHEELS if d not in seen]
    return problems


def install_wheels(wheels: Path, site: Path, modules: list[str], python: str) -> dict[str, Any]:
    """pip install --no-index --no-deps --target SITE WHEELS/*.whl, then import MODULES there."""
    files = sorted(wheels.glob("*.whl"))
    if not files:
        raise CheckFailed(f"no *.whl in {wheels}")
    site.mkdir(parents=True, exist_ok=True)
    cmd = [python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-compile",
           "--disable-pip-version-check", "--target", str(site), *map(str, files)]
    t0 = time.time()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise CheckFailed(f"pip install failed (rc {proc.returncode}): "
                          f"{(proc.stdout + proc.stderr)[-LOG_TAIL_CHARS:]}")
    probe = ("import importlib, json, sys\nout = {}\nfor m in sys.argv[1:]:\n"
             "    try:\n        mod = importlib.import_module(m)\n"
             "        out[m] = getattr(mod, '__version__', 'ok')\n"
             "    except Exception as e:\n        out[m] = 'ERROR ' + type(e).__name__ + ': ' + str(e)[:300]\n"
             "print(json.dumps(out))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    imp = subprocess.run([python, "-c", probe, *modules], capture_output=True, text=True,
                         env=env)
    versions = json.loads(imp.stdout.strip().splitlines()[-1]) if imp.returncode == 0 else {}
    figures = {"wheels": [f.name for f in files], "site": str(site), "imports": versions,
               "install_s": round(time.time() - t0, 2),
               "set_problems": wheel_set_problems([f.name for f in files])}
    bad = {m: v for m, v in versions.items() if str(v).startswith("ERROR")}
    if imp.returncode != 0 or bad:
        raise CheckFailed(f"carried modules do not import: {bad or imp.stderr[-500:]}")
    return figures


# --- shared helpers for the torch checks ----------------------------------------------------


def _profile(args: argparse.Namespace) -> dict[str, Any]:
    return PROFILES[args.device]


def _need_device(args: argparse.Namespace) -> Any:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise CheckFailed("--device cuda but torch sees no CUDA device "
                          f"(torch {torch.__version__}); use --cpu for the dry mode")
    return torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")


def model_dir(work: Path, small: bool = False) -> Path:
    return work / ("model_small" if small else "model")


def _require_prepared(work: Path, small: bool = False) -> Path:
    folder = model_dir(work, small)
    if not (folder / "config.json").is_file():
        raise CheckFailed(f"no model at {folder}: the prepare check did not run or failed")
    return folder


def sandbox_state() -> str | None:
    """None if the engine's sandbox starts here, else why not (the rl and eval stages refuse)."""
    from engine.verify.sandbox import Sandbox, SandboxUnavailable

    try:
        Sandbox()
    except SandboxUnavailable as exc:
        return f"no bwrap: {exc}"
    return None


def _words(rng: random.Random, n_chars: int) -> str:
    vocab = ["read", "the", "array", "sum", "of", "n", "integers", "print", "modulo", "graph",
             "edge", "query", "tree", "dp", "min", "max", "for", "while", "return", "if"]
    out, size = [], 0
    while size < n_chars:
        w = rng.choice(vocab) if rng.random() < 0.8 else str(rng.randrange(10**6))
        out.append(w)
        size += len(w) + 1
    return " ".join(out)


def sft_examples(tok: Any, n: int, doc_tokens: int, max_len: int, seed: int) -> list[dict]:
    """``n`` {query, response} pairs with long-tailed lengths (log-normal, capped)."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = max(16, min(max_len - 16, int(rng.lognormvariate(math.log(doc_tokens), 0.9))))
        chars = k * 3  # ~3 characters per token of the tiny byte-level BPE on these words
        rows.append({"query": _words(rng, chars // 5),
                     "response": _words(rng, chars - chars // 5)})
    return rows


def sft_data_for_steps(tok: Any, steps: int, global_batch: int, packing: bool, max_len: int,
                       doc_tokens: int, seed: int = 0) -> tuple[list[dict], int]:
    """Examples that make exactly ``steps`` optimizer steps of ``global_batch`` rows (one epoch),
    counted with the stage's own tokenizer and row builder. -> (rows, tokens)."""
    from engine.train.sft_data import build_rows, tokenize_example

    pool = sft_examples(tok, 64, doc_tokens, max_len, seed)
    extra = 1
    while True:
        examples = [tokenize_example(tok, r["query"], r["response"]) for r in pool]
        built = build_rows(examples, max_len, packing)
        if len(built.rows) >= steps * global_batch:
            break
        pool += sft_examples(tok, max(8, len(pool) // 2), doc_tokens, max_len, seed + extra)
        extra += 1
    # Trim to the examples of the first steps*global_batch rows (packing is deterministic, so
    # rebuilding from the kept examples gives rows close to these; verify and adjust).
    keep = sorted(i for r in built.rows[:steps * global_batch] for i in r)
    rows = [pool[i] for i in keep]
    examples = [examples[i] for i in keep]
    built = build_rows(examples, max_len, packing)
    while math.ceil(len(built.rows) / global_batch) > steps:  # repacking can add a row
        rows, examples = rows[:-1], examples[:-1]
        built = build_rows(examples, max_len, packing)
    return rows, built.tokens


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return path


def stage_metrics(run_root: Path, stage: str) -> dict[int, dict[str, float]]:
    """step -> metrics of ``stage``'s rank-0 events; a later record of a step wins (resume)."""
    from engine.events import read_events

    out: dict[int, dict[str, float]] = {}
    path = run_root / "events" / f"{stage}.0.jsonl"
    if path.is_file():
        for e in read_events(path):
            if e.kind == "metric":
                out[e.step] = dict(e.data)
    return out


def run_stages(cfg_dict: dict, run_root: Path, stages: list[str]) -> Any:
    """Run ``stages`` in this process; StageError text on failure. -> RunDir."""
    from engine.rundir import RunDir
    from engine.runner import EXIT_OK, run_pipeline
    from engine.schema import config_from_dict, dump_config

    cfg = config_from_dict(cfg_dict)
    run = RunDir(run_root)
    rc = run_pipeline(cfg, dump_config(cfg), run, stages)
    if rc != EXIT_OK:
        state = run.read_state()
        reasons = {s: state.stage(s).reason for s in stages}
        raise CheckFailed(f"engine run {stages} exited {rc}: {reasons}; logs in {run.logs_dir}")
    return run


def sft_config(p: dict[str, Any], model: Path, data: Path, *, attention: str, packing: bool,
               global_batch: int, micro: int, max_len: int, zero: int = 0,
               save_every: int = 0, bf16: bool | None = None) -> dict:
    return {"run": {"name": "acceptance", "seed": 0}, "sft": {
        "resources": {"gpus_per_node": 1 if p is PROFILES["cuda"] else 0, "cpus_per_task": 2},
        "base_model": str(model), "data": str(data), "epochs": 1, "lr": 1e-5,
        "warmup_ratio": 0.0, "global_batch_size": global_batch, "micro_batch_size": micro,
        "max_seq_len": max_len, "packing": packing, "attention": attention,
        "zero_stage": zero, "gradient_checkpointing": p["grad_ckpt"],
        "bf16": p["bf16"] if bf16 is None else bf16, "save_every_steps": save_every}}


def _median(xs: list[float]) -> float | None:
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else None


# --- checks ----------------------------------------------------------------------------------


def check_prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Environment facts, the random-init model folder and the RL data, under --work."""
    import torch
    import transformers

    from engine.llm.transformers_local import build_tiny_random
    from engine.train.packing import flex_supported

    device = _need_device(args)
    p = _profile(args)
    _, tok = build_tiny_random(0)
    t0 = time.time()
    n_params = 0
    for key, small in (("shape", False), ("zero_shape", True)):
        shape = dict(SHAPES[p[key]])
        vocab = shape.pop("vocab_size") or len(tok)
        cfg = transformers.Qwen2Config(
            vocab_size=vocab, max_position_embeddings=32768, tie_word_embeddings=True,
            bos_token_id=None, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
            **shape)
        torch.manual_seed(0)
        with torch.device(device):  # initialised where it runs: a 0.5B CPU init is slow
            model = transformers.Qwen2ForCausalLM(cfg)
        folder = model_dir(args.work, small)
        model.to(torch.bfloat16 if args.device == "cuda" else torch.float32)
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        if not small:
            n_params = sum(x.numel() for x in model.parameters())
        del model
    build_s = time.time() - t0
    rl_rows = [{"data_source": "synthsmith",
                "prompt": [{"role": "user", "content": RL_STATEMENT}], "ability": "code",
                "reward_model": {"style": "rule", "ground_truth": json.dumps(RL_TESTS)},
                "extra_info": {"index": i, "split": "train", "task_id": 100 + i,
                               "pass_rate": 1.0 - i / 8}} for i in range(8)]
    write_jsonl(args.work / "rl.jsonl", rl_rows)
    import engine.stages.sft as sft

    figures = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "python": sys.version.split()[0], "torch": torch.__version__,
        "cuda": torch.version.cuda, "transformers": transformers.__version__,
        "params": n_params, "shape": p["shape"], "zero_shape": p["zero_shape"],
        "build_s": round(build_s, 2),
        "flex": flex_supported(device), "sandbox": sandbox_state() or "ok",
        "peak_bf16_flops": sft.peak_flops(device),
    }
    from importlib import metadata

    for dist in ("trl", "deepspeed", "datasets", "pydantic", "accelerate"):
        try:  # no import: deepspeed's takes seconds; the checks that need them import them
            figures[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            figures[dist] = "missing"
    return figures


def check_loss_equal(args: argparse.Namespace) -> dict[str, Any]:
    """The sft stage's first-step loss (all data in one step, float32, before any update) is
    the same packed (flex, sdpa) and unpacked: the mask keeps documents apart."""
    from engine.train.packing import flex_supported
    from engine.train.sft_data import build_rows, tokenize_example

    device = _need_device(args)
    p = _profile(args)
    model = _require_prepared(args.work)
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model)
    max_len = min(p["max_seq_len"], 2048)
    rows = sft_examples(tok, 12, max_len // 6, max_len, seed=7)
    examples = [tokenize_example(tok, r["query"], r["response"]) for r in rows]
    n_packed = len(build_rows(examples, max_len, True).rows)
    n_docs = len(build_rows(examples, max_len, False).rows)
    data = write_jsonl(args.work / "loss_equal.jsonl", rows)
    methods = [("padded", "sdpa", False, n_docs), ("packed_sdpa", "sdpa", True, n_packed)]
    if args.device == "cuda":
        if not flex_supported(device):
            raise CheckFailed("FlexAttention does not run on this GPU with this torch build")
        methods.append(("packed_flex", "flex", True, n_packed))
    losses = {}
    for name, attention, packing, batch in methods:
        cfg = sft_config(p, model, data, attention=attention, packing=packing,
                         global_batch=batch, micro=1, max_len=max_len, bf16=False)
        run = run_stages(cfg, args.work / "runs" / f"loss_equal_{name}", ["sft"])
        losses[name] = stage_metrics(run.root, "sft")[1]["sft/loss"]
    ref = losses["padded"]
    diffs = {k: abs(v - ref) for k, v in losses.items() if k != "padded"}
    figures = {"losses": losses, "abs_diff": diffs, "docs": len(rows), "packed_rows": n_packed,
               "flex": "packed_flex" in losses}
    tol = 1e-4 * max(1.0, abs(ref))
    bad = {k: d for k, d in diffs.items() if not d <= tol}
    if bad:
        raise CheckFailed(f"packed loss differs from unpacked by {bad} (tolerance {tol:.2g})")
    if "packed_flex" not in losses:
        figures["flex"] = NO_FLEX_CPU + ": compared packed sdpa with unpacked only"
    return figures


def check_sft(args: argparse.Namespace) -> dict[str, Any]:
    """The sft stage: N steps, packed (flex BlockMask or sdpa 4D mask) or padded batches."""
    from engine.train.packing import flex_supported

    device = _need_device(args)
    p = _profile(args)
    model = _require_prepared(args.work)
    if args.attention == "flex" and args.device == "cpu":
        raise Skip(NO_FLEX_CPU)
    if args.attention == "flex" and not flex_supported(device):
        raise CheckFailed("FlexAttention does not run on this GPU with this torch build")
    import transformers

    tok = transformers.AutoTokenizer.from_pretrained(model)
    packing = not args.padded
    batch, micro = ((p["packed_batch"], p["packed_micro"]) if packing
                    else (p["padded_batch"], p["padded_micro"]))
    steps = args.steps or (p["sft_steps"] if packing else p["padded_steps"])
    rows, tokens = sft_data_for_steps(tok, steps, batch, packing, p["max_seq_len"],
                                      p["doc_tokens"])
    name = "padded" if args.padded else f"packed_{args.attention}"
    data = write_jsonl(args.work / f"sft_{name}.jsonl", rows)
    cfg = sft_config(p, model, data, attention=args.attention, packing=packing,
                     global_batch=batch, micro=micro, max_len=p["max_seq_len"])
    t0 = time.time()
    run = run_stages(cfg, args.work / "runs" / f"sft_{name}", ["sft"])
    seconds = time.time() - t0
    m = stage_metrics(run.root, "sft")
    if len(m) != steps:
        raise CheckFailed(f"expected {steps} metric steps, got {sorted(m)}")
    warm = [m[s] for s in sorted(m)][min(2, len(m) - 1):]  # skip compile / warm-up steps
    figures = {
        "method": name, "steps": len(m), "examples": len(rows), "tokens": tokens,
        "tokens_per_s": _median([x["sft/tokens_per_s"] for x in warm]),
        "mfu": _median([x["sft/mfu"] for x in warm if "sft/mfu" in x]),
        "peak_memory_gb": max(x["sft/memory_gb"] for x in m.values()),
        "padding_frac": _median([x["sft/padding_frac"] for x in m.values()]),
        "loss_first": m[min(m)]["sft/loss"], "loss_last": m[max(m)]["sft/loss"],
        "stage_s": round(seconds, 2),
    }
    if not all(math.isfinite(x["sft/loss"]) for x in m.values()):
        raise CheckFailed(f"non-finite loss: {[x['sft/loss'] for x in m.values()]}")
    if not (run.checkpoint_dir("sft") / "final" / "config.json").is_file():
        raise CheckFailed("no final checkpoint")
    return figures


def check_zero(args: argparse.Namespace) -> dict[str, Any]:
    """DeepSpeed ZeRO-N, one process: checkpoint every k steps, SIGKILL mid-run after one, a
    rerun resumes from it; its losses equal those the killed run logged for the same steps."""
    device = _need_device(args)
    del device
    p = _profile(args)
    model = _require_prepared(args.work, small=True)
    try:
        import deepspeed  # noqa: F401
    except Exception as e:  # noqa: BLE001
        raise CheckFailed(f"deepspeed does not import: {e}") from None
    import transformers

    from engine.schema import config_from_dict, dump_config

    tok = transformers.AutoTokenizer.from_pretrained(model)
    steps, every = p["zero_steps"], p["zero_save_every"]
    rows, _ = sft_data_for_steps(tok, steps, 2, True, p["zero_seq_len"], p["doc_tokens"], 3)
    data = write_jsonl(args.work / f"zero{args.stage}.jsonl", rows)
    cfg = sft_config(p, model, data, attention="sdpa", packing=True, global_batch=2, micro=1,
                     max_len=p["zero_seq_len"], zero=args.stage, save_every=every)
    cfg_path = args.work / f"zero{args.stage}.yaml"
    cfg_path.write_text(dump_config(config_from_dict(cfg)), encoding="utf-8")
    run_root = args.work / "runs" / f"zero{args.stage}"
    events = run_root / "events" / "sft.0.jsonl"
    cmd = [sys.executable, "-m", "engine", "run", "--config", str(cfg_path), "--run-dir",
           str(run_root), "--stages", "sft"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    kill_after = every + 2  # a checkpoint at `every`, and logged steps past it to compare
    t0 = time.time()
    # The first run SIGKILLs itself right after it logs step kill_after (a hard kill at a
    # known step; racing a kill from outside misses on fast steps).
    killing = [sys.executable, str(Path(__file__).resolve()), "engine-killed", "--kill-after",
               str(kill_after), "--", *cmd[3:]]
    with open(args.work / f"zero{args.stage}.first.log", "w") as log:
        rc = subprocess.run(killing, cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT).returncode
    first = stage_metrics(run_root, "sft")
    killed_at = max(first) if rc == -signal.SIGKILL and first else None
    if killed_at is None:
        raise CheckFailed(f"the first run ended with rc {rc}, not killed after step "
                          f"{kill_after}; logged steps {sorted(first)}; see {log.name}")
    first_s = time.time() - t0
    ckpts = sorted(int(d.name.split("-")[1]) for d in
                   (run_root / "checkpoints" / "sft").glob("step-*") if d.name[5:].isdigit())
    # The rerun appends to the same events file: what it logs comes after these records.
    first_losses = {s: v["sft/loss"] for s, v in first.items()}
    n_first = len(_metric_events(events))
    with open(args.work / f"zero{args.stage}.resume.log", "w") as log:
        rc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
    from engine.rundir import RunDir

    state = RunDir(run_root).read_state().stage("sft")
    if rc != 0:
        raise CheckFailed(f"the resumed run exited {rc}: {state.reason}")
    resumed_from = (state.summary or {}).get("resumed_from")
    after = {e.step: e.data["sft/loss"] for e in _metric_events(events)[n_first:]}
    overlap = sorted(s for s in after if s in first_losses)
    diffs = {s: abs(after[s] - first_losses[s]) for s in overlap}
    figures = {"stage": args.stage, "total_steps": steps, "save_every": every,
               "killed_after_step": killed_at, "checkpoints_before_kill": ckpts,
               "resumed_from": resumed_from, "compared_steps": overlap,
               "abs_diff": diffs, "first_run_s": round(first_s, 2),
               "final": (run_root / "checkpoints" / "sft" / "final" / "config.json").is_file(),
               "steps_after_resume": sorted(after)}
    if not resumed_from:
        raise CheckFailed(f"the rerun did not resume (summary {state.summary})")
    if not overlap:
        raise CheckFailed(f"no step logged by both runs after the checkpoint: {figures}")
    if not figures["final"]:
        raise CheckFailed("no final checkpoint after the resumed run")
    if max(after) != steps:
        raise CheckFailed(f"the resumed run stopped at step {max(after)} of {steps}")
    # The first step after the checkpoint: same weights, same data -> the same loss (forward
    # only). Later steps may differ by GPU backward non-determinism (atomics), a little.
    head = diffs[overlap[0]]
    ref = abs(first_losses[overlap[0]])
    if head > 1e-5 * max(1.0, ref) or max(diffs.values()) > 2e-2 * max(1.0, ref):
        raise CheckFailed(f"resumed losses differ from the first run's: {diffs}")
    return figures


def _metric_events(path: Path) -> list:
    from engine.events import read_events

    return [e for e in read_events(path) if e.kind == "metric"] if path.is_file() else []


def engine_killed(kill_after: int, engine_args: list[str]) -> int:
    """``python -m engine`` with a SIGKILL of this process once an sft metric of step
    ``kill_after`` is written (events are flushed per line, so it is on disk)."""
    from engine import __main__ as engine_main
    from engine.events import EventWriter

    original = EventWriter.metric

    def metric(self: Any, step: int, values: Any) -> None:
        original(self, step, values)
        if step >= kill_after and "sft/loss" in values:
            os.kill(os.getpid(), signal.SIGKILL)

    EventWriter.metric = metric  # type: ignore[method-assign]
    return engine_main.main(engine_args)


def check_rl(args: argparse.Namespace) -> dict[str, Any]:
    """The rl stage (TRL GRPO, HF generate) with the sandbox reward; metric events checked."""
    _need_device(args)
    p = _profile(args)
    model = _require_prepared(args.work)
    why = sandbox_state()
    if why:
        raise Skip(why)
    rl = {"resources": {"gpus_per_node": 1 if args.device == "cuda" else 0,
                        "cpus_per_task": p["rl_cpus"]},
          "model": str(model), "data": str(args.work / "rl.jsonl"),
          "group_size": p["rl_group"], "prompts_per_step": p["rl_prompts"],
          "mini_batch_size": p["rl_prompts"], "micro_batch_size": p["rl_group"],
          "max_steps": p["rl_steps"], "max_prompt_tokens": 512,
          "max_response_tokens": p["rl_response"], "reward_tests_per_call": 2,
          "rollout": "transformers", "save_every_steps": 0, "lr": 1e-6, "kl_coef": 0.0}
    t0 = time.time()
    run = run_stages({"run": {"name": "acceptance", "seed": 0}, "rl": rl},
                     args.work / "runs" / "rl", ["rl"])
    seconds = time.time() - t0
    m = stage_metrics(run.root, "rl")
    keys = set().union(*m.values()) if m else set()
    missing = [k for k in RL_KEYS if k not in keys]
    figures = {"steps": sorted(m), "stage_s": round(seconds, 2), "missing_keys": missing,
               "reward_mean": [m[s].get("rl/reward/mean") for s in sorted(m)],
               "rollout_tokens_per_s": _median([v.get("rl/rollout_tokens_per_s", 0)
                                                for v in m.values()]),
               "generate_s": sum(v.get("rl/time/generate_s", 0) for v in m.values()),
               "final": (run.checkpoint_dir("rl") / "final" / "config.json").is_file()}
    if sorted(m) != list(range(1, p["rl_steps"] + 1)):
        raise CheckFailed(f"metric steps {sorted(m)}, expected 1..{p['rl_steps']}")
    if missing:
        raise CheckFailed(f"metric keys missing: {missing}")
    if not figures["final"]:
        raise CheckFailed("no final rl checkpoint")
    return figures


def check_eval(args: argparse.Namespace) -> dict[str, Any]:
    """The eval stage on assets/eval/smoke.jsonl, transformers backend on this device."""
    _need_device(args)
    p = _profile(args)
    model = _require_prepared(args.work)
    why = sandbox_state()
    if why:
        raise Skip(why)
    ev = {"enabled": True,
          "resources": {"gpus_per_node": 1 if args.device == "cuda" else 0, "cpus_per_task": 4},
          "problems": "assets://eval/smoke.jsonl", "max_problems": p["eval_problems"],
          "model": str(model), "engine": "transformers", "k": p["eval_k"],
          "max_tokens": p["eval_tokens"], "time_limit_s": 2.0}
    t0 = time.time()
    run = run_stages({"run": {"name": "acceptance", "seed": 0}, "eval": ev},
                     args.work / "runs" / "eval", ["eval"])
    seconds = time.time() - t0
    m = stage_metrics(run.root, "eval")
    keys = set().union(*m.values()) if m else set()
    figures = {"stage_s": round(seconds, 2),
               "avg_at_k": next((v["eval/avg_at_k"] for v in m.values()
                                 if "eval/avg_at_k" in v), None),
               "summary_csv": (run.exports_dir / "eval" / "summary.csv").is_file()}
    if args.device == "cuda":  # the stage ran in this process: did the model live on the GPU?
        import torch

        figures["cuda_peak_memory_gb"] = torch.cuda.max_memory_allocated() / 1e9
        if not figures["cuda_peak_memory_gb"] > 0.1:
            raise CheckFailed(f"the eval model did not run on CUDA: {figures}")
    if "eval/avg_at_k" not in keys or not figures["summary_csv"]:
        raise CheckFailed(f"no eval/avg_at_k metric or summary.csv: {figures}")
    return figures


def check_bench(args: argparse.Namespace) -> dict[str, Any]:
    """tests/bench/gpu_sft.py: packed vs padded tokens/s ratio and MFU against the targets."""
    p = _profile(args)
    cmd = [sys.executable, str(ROOT / "tests" / "bench" / "gpu_sft.py"), *p["bench"]]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    sys.stderr.write(proc.stderr[-20000:])
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise CheckFailed(f"gpu_sft.py exited {proc.returncode}: "
                          f"{(proc.stdout + proc.stderr)[-LOG_TAIL_CHARS:]}")
    out = json.loads(lines[-1])
    figures: dict[str, Any] = {"device": out.get("device"), "shapes": out.get("shapes")}
    best_ratio = best_mfu = None
    errors = []
    for shape, res in (out.get("shapes") or {}).items():
        for method, r in res.items():
            if "error" in r:
                errors.append(f"{shape}/{method}: {r['error']}")
            if method != "padded" and "ratio_vs_padded" in r:
                best_ratio = max(best_ratio or 0.0, r["ratio_vs_padded"])
            if method != "padded" and "mfu" in r:
                best_mfu = max(best_mfu or 0.0, r["mfu"])
    figures["best_ratio_vs_padded"] = best_ratio
    figures["best_mfu"] = best_mfu
    figures["targets"] = {
        "ratio_vs_padded>=3": None if best_ratio is None
        else best_ratio >= BENCH_TARGETS["ratio_vs_padded"],
        "mfu>=0.30": None if best_mfu is None else best_mfu >= BENCH_TARGETS["mfu"]}
    if errors:
        raise CheckFailed(f"benchmark methods failed: {errors}")
    if best_ratio is None:
        raise CheckFailed("no packed/padded ratio in the benchmark output")
    return figures


CHECKS = {"prepare": check_prepare, "loss_equal": check_loss_equal, "sft": check_sft,
          "zero": check_zero, "rl": check_rl, "eval": check_eval, "bench": check_bench}


# --- CLI -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", choices=("cuda", "cpu"),
                    default=os.environ.get("ACCEPTANCE_DEVICE", "cuda"))
    ap.add_argument("--work", type=Path, default=Path(os.environ.get("ACCEPTANCE_WORK", ".")),
                    help="scratch folder shared by the checks (model, data, run dirs)")
    ap.add_argument("--result", type=Path,
                    default=Path(os.environ["ACCEPTANCE_RESULT"])
                    if os.environ.get("ACCEPTANCE_RESULT") else None,
                    help="where the check writes its JSON result")
    ap.add_argument("--name", default=None, help="the check's name in the result")
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("install-wheels", help="pip install the carried wheels into a site dir")
    w.add_argument("--wheels", type=Path, required=True)
    w.add_argument("--site", type=Path, required=True)
    w.add_argument("--modules", default=",".join(CARRIED_MODULES),
                   help="comma-separated modules that must import from there")
    sub.add_parser("prepare")
    sub.add_parser("loss_equal")
    s = sub.add_parser("sft")
    s.add_argument("--attention", choices=("flex", "sdpa"), default="flex")
    s.add_argument("--padded", action="store_true", help="one example per row, no packing")
    s.add_argument("--steps", type=int, default=0, help="0: the device profile's")
    z = sub.add_parser("zero")
    z.add_argument("--stage", type=int, choices=(2, 3), required=True)
    k = sub.add_parser("engine-killed", help="(zero's helper) python -m engine, SIGKILLed "
                       "after an sft step")
    k.add_argument("--kill-after", type=int, required=True)
    k.add_argument("engine_args", nargs=argparse.REMAINDER)
    sub.add_parser("rl")
    sub.add_parser("eval")
    sub.add_parser("bench")
    r = sub.add_parser("record", help="append one check's line to acceptance.jsonl")
    r.add_argument("--check", required=True)
    r.add_argument("--rc", type=int, required=True)
    r.add_argument("--seconds", type=float, required=True)
    r.add_argument("--cap", type=float, default=None)
    r.add_argument("--check-result", type=Path, default=None)
    r.add_argument("--log", type=Path, default=None)
    r.add_argument("--jsonl", type=Path, required=True)
    m = sub.add_parser("summary", help="fold acceptance.jsonl into acceptance_summary.json")
    m.add_argument("--jsonl", type=Path, required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--seconds", type=float, required=True)
    m.add_argument("--budget", type=float, default=None)
    m.add_argument("--expected", default="", help="comma-separated checks that should be there")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.cmd == "record":
        rec = make_record(args.check, args.rc, args.seconds, args.cap, args.check_result,
                          args.log)
        trim_log(args.log)
        args.jsonl.parent.mkdir(parents=True, exist_ok=True)
        with open(args.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, default=str) + "\n")
        shown = {k: rec[k] for k in ("name", "ok", "seconds", "skipped", "error") if k in rec}
        print(json.dumps(shown))
        return 0
    if args.cmd == "summary":
        expected = [x for x in args.expected.split(",") if x]
        summary = make_summary(read_records(args.jsonl), os.environ.get(
            "ACCEPTANCE_DEVICE", "cuda"), args.seconds, args.budget, expected)
        write_json(args.out, summary)
        print(json.dumps({k: summary[k] for k in ("ok", "passed", "skipped", "failed",
                                                   "seconds", "targets")}))
        return 0 if summary["ok"] else 1

    if args.cmd == "engine-killed":
        if str(ROOT) not in sys.path:
            sys.path.insert(0, str(ROOT))
        rest = args.engine_args[1:] if args.engine_args[:1] == ["--"] else args.engine_args
        return engine_killed(args.kill_after, rest)
    name = args.name or args.cmd
    result: dict[str, Any] = {"name": name, "ok": False, "figures": {}}
    try:
        if args.cmd == "install-wheels":
            result["figures"] = install_wheels(args.wheels, args.site,
                                               [m for m in args.modules.split(",") if m],
                                               sys.executable)
        else:
            if str(ROOT) not in sys.path:
                sys.path.insert(0, str(ROOT))
            args.work.mkdir(parents=True, exist_ok=True)
            result["figures"] = CHECKS[args.cmd](args)
        result["ok"] = True
    except Skip as e:
        result.update(ok=True, skipped=str(e))
    except CheckFailed as e:
        result["error"] = str(e)
    except Exception as e:  # noqa: BLE001 - any crash is this check's failure, with its trace
        result["error"] = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    if args.result is not None:
        write_json(args.result, result)
    print(json.dumps(result, default=str))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
