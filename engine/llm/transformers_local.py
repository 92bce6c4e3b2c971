"""The transformers backend: ``generate()`` in the stage's own process, for CPU smoke runs.

``model: tiny-random`` builds, in memory and with no download, a ~100k-parameter Qwen2 model
with random weights and a byte-level BPE tokenizer trained on a few built-in lines (both
seeded, so every build is the same), with a ChatML chat template. Its replies are gibberish
of the right shape: enough to run every stage end to end. Any other ``model`` is a local
path or Hugging Face id loaded with ``AutoModelForCausalLM`` / ``AutoTokenizer``::

    client = TransformersClient(TransformersEndpoint(model="tiny-random", device="cpu"))
    results = engine.llm.run_batch(client, requests)

torch and transformers are imported when a client is made, not when this module is
(``engine`` must import without them). Tests: tests/engine/test_llm_local_backends.py (slow).

Decisions:

- ``max_tokens`` is cut to the endpoint's ``max_new_tokens``; the cut value is what the cache
  key holds, so raising the cap later does not serve the shorter answers.
- Requests with the same sampling parameters are generated together, ``batch_size`` at a
  time, with left padding. Greedy (temperature 0) answers do not depend on the batch;
  sampled ones do (one RNG per batch, seeded from the batch's requests), so a fresh run
  repeats itself but a rerun after a kill may draw the unfinished requests differently. The
  cache keeps every finished one identical. Set ``batch_size: 1`` for per-request draws.
- ``stop`` strings are applied to the decoded text (cut at the first one, finish "stop").

Left out: streaming, quantisation, multi-GPU placement (use the vLLM backend there).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from engine.events import NullEventWriter
from engine.llm.base import (
    ChatRequest,
    ChatResult,
    LLMError,
    LLMStats,
    ResultCallback,
    Usage,
    generate_cached,
)
from engine.llm.cache import ResponseCache
from engine.schema import TransformersEndpoint

TINY_RANDOM = "tiny-random"
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# A few lines of the text the pipeline handles, so BPE merges look like its words.
_TOKENIZER_CORPUS = (
    "Given an array of n integers, find the maximum sum of a contiguous subarray.",
    "The first line contains two integers n and m (1 <= n, m <= 2 * 10^5).",
    "Print a single integer: the answer modulo 998244353.",
    "def solve():\n    n = int(input())\n    a = list(map(int, input().split()))\n",
    "    print(max(a) - min(a))\n\nif __name__ == '__main__':\n    solve()\n",
    '{"algorithms": ["dynamic programming", "graph"], "data_structures": ["segment tree"]}',
    "#include <bits/stdc++.h>\nint main() { long long n; std::cin >> n; }\n",
)


def _import_torch() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise LLMError(
            f"the transformers backend needs torch and transformers ({exc.name} is missing): "
            "install them, e.g. pip install torch==2.13.0 transformers tokenizers on a CPU "
            "host, or the `train` extra on a GPU node"
        ) from None
    return torch, transformers


def build_tiny_random(seed: int = 0) -> tuple[Any, Any]:
    """(model, tokenizer): a seeded random Qwen2 with an in-process BPE tokenizer."""
    torch, transformers = _import_torch()
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, special_tokens=specials, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodes
    )
    bpe.train_from_iterator(list(_TOKENIZER_CORPUS) * 20, trainer)
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tok.chat_template = CHATML_TEMPLATE
    config = transformers.Qwen2Config(
        vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
        bos_token_id=None,
    )
    # fork_rng: building a model must not move the caller's global RNG.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = transformers.Qwen2ForCausalLM(config)
    return model.eval(), tok


def _cut_at_stop(text: str, stop: Sequence[str]) -> tuple[str, bool]:
    cuts = [i for i in (text.find(s) for s in stop if s) if i >= 0]
    return (text[: min(cuts)], True) if cuts else (text, False)


class TransformersClient:
    """An ``LLMClient`` running a transformers model in this process (one batch at a time)."""

    backend = "transformers"

    def __init__(
        self,
        endpoint: TransformersEndpoint,
        *,
        name: str = "llm",
        cache: ResponseCache | None = None,
        events: Any = None,
        stats: LLMStats | None = None,
        flush_interval_s: float = 10.0,
    ) -> None:
        torch, transformers = _import_torch()
        self._torch = torch
        self.endpoint = endpoint
        self.name = name
        self.model = endpoint.model
        self.cache = cache
        self.events = events if events is not None else NullEventWriter()
        self.stats = stats or LLMStats()
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()  # one generate() on the model at a time
        cuda = torch.cuda.is_available()
        self.device = ("cuda" if cuda else "cpu") if endpoint.device == "auto" else endpoint.device
        if self.device == "cuda" and not cuda:
            raise LLMError(f"endpoint {name!r} asks for device cuda, but torch sees no CUDA GPU "
                           f"here: set llms.{name}.device to cpu or auto")
        dtype_name = endpoint.dtype
        if dtype_name == "auto":
            dtype_name = "bfloat16" if self.device == "cuda" else "float32"
        dtype = getattr(torch, dtype_name)
        if endpoint.model == TINY_RANDOM:
            model, tok = build_tiny_random()
        else:
            try:
                tok = transformers.AutoTokenizer.from_pretrained(endpoint.model)
                model = transformers.AutoModelForCausalLM.from_pretrained(endpoint.model,
                                                                          dtype=dtype)
            except OSError as exc:
                raise LLMError(f"endpoint {name!r}: cannot load model {endpoint.model!r} ({exc}); "
                               "give a local folder or a Hugging Face id this host can "
                               f"download, or {TINY_RANDOM}") from None
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        tok.padding_side = "left"  # decoder-only: new tokens must follow every prompt directly
        self._tok = tok
        self._model = model.to(device=self.device, dtype=dtype).eval()
        gen_eos = getattr(self._model.generation_config, "eos_token_id", None)
        gen_eos = gen_eos if isinstance(gen_eos, list) else [gen_eos]
        self._eos_ids = frozenset(t for t in [*gen_eos, tok.eos_token_id] if t is not None)

    def __repr__(self) -> str:
        return (f"TransformersClient(name={self.name!r}, model={self.model!r}, "
                f"device={self.device!r})")

    def effective(self, req: ChatRequest) -> ChatRequest:
        """The request as it will be run: max_tokens cut to the endpoint's cap."""
        cap = self.endpoint.max_new_tokens
        return req if req.max_tokens <= cap else replace(req, max_tokens=cap)

    async def generate(
        self, requests: Sequence[ChatRequest], *, on_result: ResultCallback | None = None
    ) -> list[ChatResult]:
        return await generate_cached(
            [self.effective(r) for r in requests], backend=self.backend, model=self.model,
            cache=self.cache, stats=self.stats, run_misses=self._run_misses,
            events=self.events, on_result=on_result, flush_interval_s=self.flush_interval_s,
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        return (await self.generate([request]))[0]

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self._model = None

    async def _run_misses(self, items: list[tuple[int, ChatRequest]], done: Any) -> None:
        groups: dict[tuple, list[tuple[int, ChatRequest]]] = {}
        for i, req in items:
            p = req.sampling_params()
            groups.setdefault((p["temperature"], p["top_p"], p["max_tokens"]), []).append((i, req))
        size = self.endpoint.batch_size
        for group in groups.values():
            for start in range(0, len(group), size):
                batch = group[start:start + size]
                # The model runs on a thread so an async caller's loop stays responsive.
                outs = await asyncio.to_thread(self._generate_batch, [r for _, r in batch])
                for (i, _), result in zip(batch, outs, strict=True):
                    done(i, result)

    def _generate_batch(self, reqs: list[ChatRequest]) -> list[ChatResult]:
        torch, tok = self._torch, self._tok
        prompts = [tok.apply_chat_template([dict(m) for m in r.messages], tokenize=False,
                                           add_generation_prompt=True) for r in reqs]
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        first = reqs[0]
        kwargs: dict[str, Any] = {"max_new_tokens": first.max_tokens,
                                  "pad_token_id": tok.pad_token_id,
                                  "eos_token_id": sorted(self._eos_ids)}
        if first.temperature > 0:
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        # One RNG per batch, seeded from what is in it: a fresh run draws the same answers.
        digest = hashlib.sha256(repr([(r.messages, r.sample_index, r.seed) for r in reqs])
                                .encode()).digest()
        with self._lock, torch.random.fork_rng(devices=[]), torch.no_grad():
            torch.manual_seed(int.from_bytes(digest[:8], "little") % 2**63)
            out = self._model.generate(**enc, **kwargs)
        prompt_len = enc["input_ids"].shape[1]
        mask = enc["attention_mask"]
        results = []
        for row, req in enumerate(reqs):
            new = out[row, prompt_len:].tolist()
            # generate() pads the rows that finished early; a row's own tokens end at its
            # first end-of-sequence token (the model may have several).
            ends = [j for j, t in enumerate(new) if t in self._eos_ids]
            stopped = bool(ends)
            n = ends[0] + 1 if ends else len(new)
            text = tok.decode(new[:n], skip_special_tokens=True)
            text, cut = _cut_at_stop(text, req.stop)
            finish = "stop" if (stopped or cut or n < req.max_tokens) else "length"
            results.append(ChatResult(
                text=text, finish_reason=finish,
                usage=Usage(int(mask[row].sum()), n), attempts=1))
        return results
