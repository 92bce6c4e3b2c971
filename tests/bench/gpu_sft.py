"""GPU benchmark of the SFT step: packed rows (sdpa 4D mask, flex BlockMask) vs padded batches.

Never run in CI. On a CUDA machine::

    python tests/bench/gpu_sft.py [--shapes 0.5b,1.5b] [--tokens 16384] [--steps 4]

``--device cpu --shapes tiny`` runs the same code on a ~100k-parameter model in float32, so
the CPU test suite (tests/gpu_plumbing/) checks its plumbing; its figures mean nothing.

Random-init Qwen2-shaped models (0.5B and 1.5B shapes, bf16, gradient checkpointing), examples
with a long-tailed (log-normal) length distribution capped at ``--max-len``. Each method runs
the same examples through forward + backward + AdamW with ~``--tokens`` tokens per step:

- ``padded``: one example per row, rows sorted randomly, padded to the longest in the batch
  (the baseline; an ordinary 2D attention mask);
- ``packed_sdpa``: ``engine.train.packing`` rows with the 4D block-diagonal bool mask;
- ``packed_flex``: the same rows with a FlexAttention BlockMask.

Prints ONE JSON line: per shape and method tokens/s (real tokens, padding not counted) and MFU
(6 x params x tokens/s over the device's dense bf16 peak from engine.stages.sft), and the ratio
of each packed method to the padded baseline. Exits 0 with a message where CUDA is absent.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SHAPES = {  # Qwen2.5 0.5B / 1.5B geometry
    "0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                 num_attention_heads=14, num_key_value_heads=2),
    "1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                 num_attention_heads=12, num_key_value_heads=2),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2,  # CPU dry runs
                 num_attention_heads=4, num_key_value_heads=2),
}
VOCAB = 151_936
VOCABS = {"tiny": 512}  # other shapes: VOCAB


def lengths(n: int, max_len: int, seed: int) -> list[int]:
    """Long-tailed lengths: log-normal around ~1k tokens, a few near max_len."""
    rng = random.Random(seed)
    return [max(32, min(max_len, int(rng.lognormvariate(math.log(900), 0.9)))) for _ in range(n)]


def make_examples(n: int, max_len: int, seed: int,
                  vocab: int = VOCAB) -> list[tuple[list[int], list[int]]]:
    rng = random.Random(seed + 1)
    out = []
    for k in lengths(n, max_len, seed):
        ids = [rng.randrange(10, vocab) for _ in range(k)]
        prompt = max(1, k // 5)  # the first fifth is the "prompt": no loss there
        out.append((ids, [-100] * prompt + ids[prompt:]))
    return out


def step_batches(examples, method: str, tokens_per_step: int, max_len: int):
    """Lists of rows (each a list of documents) of ~tokens_per_step real tokens per step."""
    from engine.train.packing import pack_first_fit

    if method == "padded":
        rows = [[e] for e in examples]
    else:
        groups = pack_first_fit([len(e[0]) for e in examples], max_len)
        rows = [[examples[i] for i in g] for g in groups]
        random.Random(0).shuffle(rows)
    steps, cur, n = [], [], 0
    for r in rows:
        cur.append(r)
        n += sum(len(d[0]) for d in r)
        if n >= tokens_per_step:
            steps.append(cur)
            cur, n = [], 0
    return steps


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def run_method(model, opt, steps, method: str, device, micro_tokens: int) -> dict:
    from contextlib import nullcontext

    import torch

    from engine.train.packing import collate, model_inputs

    def one_step(rows) -> int:
        real = 0
        # Micro-batches of about micro_tokens padded tokens (memory bound, like real training).
        mbs, cur = [], []
        for r in rows:
            width = max([sum(len(d[0]) for d in x) for x in cur + [r]])
            if cur and width * (len(cur) + 1) > micro_tokens:
                mbs.append(cur)
                cur = []
            cur.append(r)
        mbs.append(cur)
        n_loss = sum(sum(x != -100 for d in r for x in d[1]) for r in rows)
        for mb in mbs:
            b = collate(mb, pad_id=0)
            if method == "padded":
                ids = b.input_ids.to(device)
                kw = {"input_ids": ids, "attention_mask": (b.doc_ids != -1).long().to(device)}
            else:
                kw = model_inputs(b, "flex" if method == "packed_flex" else "sdpa", device)
            amp = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                   else nullcontext())
            with amp:
                out = model(**kw, labels=b.labels.to(device), num_items_in_batch=n_loss)
            out.loss.backward()
            real += b.tokens
        opt.step()
        opt.zero_grad(set_to_none=True)
        return real

    one_step(steps[0])  # warm-up (and flex compile)
    _sync(device)
    t0 = time.time()
    real = sum(one_step(s) for s in steps[1:])
    _sync(device)
    dt = time.time() - t0
    return {"tokens_per_s": real / dt, "steps": len(steps) - 1, "seconds": dt}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="0.5b,1.5b")
    ap.add_argument("--tokens", type=int, default=16384, help="real tokens per step")
    ap.add_argument("--micro-tokens", type=int, default=16384, help="padded tokens per pass")
    ap.add_argument("--max-len", type=int, default=8192)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per method")
    ap.add_argument("--methods", default="padded,packed_sdpa,packed_flex")
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                    help="cpu: a plumbing dry run (use --shapes tiny)")
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        print("gpu_sft: torch is not installed; nothing to measure")
        return 0
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_sft: no CUDA device here; this benchmark runs only on a GPU machine")
        return 0
    import transformers

    from engine.stages.sft import peak_flops
    from engine.train.packing import flex_supported

    device = torch.device("cuda", 0) if args.device == "cuda" else torch.device("cpu")
    cuda = device.type == "cuda"
    peak = peak_flops(device)
    n_examples = max(8, args.tokens * (args.steps + 1) // 900 * 2)
    result: dict = {"bench": "gpu_sft",
                    "device": torch.cuda.get_device_name(device) if cuda else "cpu",
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "tokens_per_step": args.tokens, "max_len": args.max_len, "shapes": {}}
    for shape in args.shapes.split(","):
        res: dict = {}
        vocab = VOCABS.get(shape, VOCAB)
        examples = make_examples(n_examples, args.max_len, 0, vocab)
        for method in args.methods.split(","):
            if method == "packed_flex" and not flex_supported(device):
                res[method] = {"skipped": "flex attention unavailable"}
                continue
            steps = step_batches(examples, method, args.tokens, args.max_len)[:args.steps + 1]
            cfg = transformers.Qwen2Config(vocab_size=vocab, max_position_embeddings=32768,
                                           tie_word_embeddings=True, **SHAPES[shape])
            torch.manual_seed(0)
            with torch.device(device):  # initialised where it runs (a 1.5B CPU init takes ~10 s)
                model = transformers.Qwen2ForCausalLM(cfg)  # float32 weights
            model.set_attn_implementation("flex_attention" if method == "packed_flex" else "sdpa")
            model.config.use_cache = False
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
            model.train()
            n_params = sum(p.numel() for p in model.parameters())
            opt = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=cuda)
            if cuda:
                torch.cuda.reset_peak_memory_stats(device)
            try:
                r = run_method(model, opt, steps, method, device, args.micro_tokens)
                if cuda:
                    r["memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
                if peak:
                    r["mfu"] = 6 * n_params * r["tokens_per_s"] / peak
            except torch.OutOfMemoryError:
                r = {"error": "out of memory"}
            r["params"] = n_params
            res[method] = r
            del model, opt
            if cuda:
                torch.cuda.empty_cache()
        base = res.get("padded", {}).get("tokens_per_s")
        for m, r in res.items():
            if base and "tokens_per_s" in r and m != "padded":
                r["ratio_vs_padded"] = r["tokens_per_s"] / base
        result["shapes"][shape] = res
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
