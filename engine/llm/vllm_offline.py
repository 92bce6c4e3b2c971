"""The vLLM offline backend: ``vllm.LLM`` inside the stage's process, on CUDA GPU nodes.

For bulk generation without running a server: the stage's own GPUs hold the model
(``tensor_parallel_size`` of them per copy, from the endpoint or the stage's placement) and
vLLM batches all pending prompts itself::

    client = VLLMOfflineClient(cfg.llms["solver"], tensor_parallel=ctx_gpus, cache=cache)
    results = engine.llm.run_batch(client, requests)

``vllm`` is imported when a client is made, never when this module is: it exists only on
GPU nodes with the ``rollout`` extra. Where it is missing the client raises an ``LLMError``
that says so. This file cannot run without a CUDA GPU; CPU tests cover the missing-library
error and ``sampling_params_kwargs`` (tests/engine/test_llm_local_backends.py).

Decisions:

- Prompts go through ``LLM.chat``, which applies the model's own chat template.
- Misses are sent in chunks of ``chunk_size`` (default 4 x ``max_num_seqs``) and each chunk's
  results are cached as soon as it returns: a killed job loses at most one chunk, while
  vLLM still sees enough prompts at once to keep its batches full.
- Each request carries its own seed (``seed + sample_index``) where one is set, so answers do
  not depend on which chunk a request landed in.

Left out: LoRA adapters, multi-node pipeline parallelism, data parallel replicas inside one
process (run one process per model copy), and guided decoding.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
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
from engine.schema import VLLMOfflineEndpoint

VLLM_MISSING = (
    "vllm is not installed on this host; it needs a CUDA GPU node — install the `rollout` "
    "extra there (pip install -e '.[rollout]'), or point this stage at an OpenAI-compatible "
    "server or the transformers backend"
)


def sampling_params_kwargs(req: ChatRequest) -> dict[str, Any]:
    """The keyword arguments of ``vllm.SamplingParams`` for one request (a pure function)."""
    kwargs: dict[str, Any] = {
        "n": 1,
        "temperature": float(req.temperature),
        "top_p": float(req.top_p),
        "max_tokens": int(req.max_tokens),
    }
    if req.stop:
        kwargs["stop"] = list(req.stop)
    seed = req.backend_seed()
    if seed is not None:
        kwargs["seed"] = seed
    return kwargs


def llm_kwargs(endpoint: VLLMOfflineEndpoint, tensor_parallel: int | None = None) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for an endpoint (a pure function)."""
    kwargs: dict[str, Any] = {
        "model": endpoint.model,
        "tensor_parallel_size": tensor_parallel or endpoint.tensor_parallel_size,
        "gpu_memory_utilization": endpoint.gpu_memory_utilization,
        "dtype": endpoint.dtype,
        "max_num_seqs": endpoint.max_num_seqs,
    }
    if endpoint.max_model_len is not None:
        kwargs["max_model_len"] = endpoint.max_model_len
    return kwargs


def _import_vllm() -> tuple[Any, Any]:
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise LLMError(VLLM_MISSING) from None
    return LLM, SamplingParams


class VLLMOfflineClient:
    """An ``LLMClient`` holding a ``vllm.LLM`` in this process."""

    backend = "vllm"

    def __init__(
        self,
        endpoint: VLLMOfflineEndpoint,
        *,
        name: str = "llm",
        tensor_parallel: int | None = None,
        cache: ResponseCache | None = None,
        events: Any = None,
        stats: LLMStats | None = None,
        chunk_size: int | None = None,
        flush_interval_s: float = 10.0,
    ) -> None:
        llm_cls, self._sampling_cls = _import_vllm()
        self.endpoint = endpoint
        self.name = name
        self.model = endpoint.model
        self.cache = cache
        self.events = events if events is not None else NullEventWriter()
        self.stats = stats or LLMStats()
        self.chunk_size = chunk_size or 4 * endpoint.max_num_seqs
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()  # vllm.LLM is not safe to drive from two threads
        self._llm = llm_cls(**llm_kwargs(endpoint, tensor_parallel))

    def __repr__(self) -> str:
        return f"VLLMOfflineClient(name={self.name!r}, model={self.model!r})"

    async def generate(
        self, requests: Sequence[ChatRequest], *, on_result: ResultCallback | None = None
    ) -> list[ChatResult]:
        return await generate_cached(
            requests, backend=self.backend, model=self.model, cache=self.cache,
            stats=self.stats, run_misses=self._run_misses, events=self.events,
            on_result=on_result, flush_interval_s=self.flush_interval_s,
        )

    async def complete(self, request: ChatRequest) -> ChatResult:
        return (await self.generate([request]))[0]

    async def aclose(self) -> None:
        pass

    def close(self) -> None:
        if self.cache is not None:
            self.cache.close()
        self._llm = None

    async def _run_misses(self, items: list[tuple[int, ChatRequest]], done: Any) -> None:
        for start in range(0, len(items), self.chunk_size):
            chunk = items[start:start + self.chunk_size]
            # Called on the loop's own thread, as vLLM's examples do: vLLM drives worker
            # processes and signal handlers that expect the thread that made the LLM.
            # While a chunk runs, nothing else on this event loop does.
            outs = self._generate_chunk([r for _, r in chunk])
            for (i, _), result in zip(chunk, outs, strict=True):
                done(i, result)
            await asyncio.sleep(0)  # let the loop breathe between chunks

    def _generate_chunk(self, reqs: list[ChatRequest]) -> list[ChatResult]:
        params = [self._sampling_cls(**sampling_params_kwargs(r)) for r in reqs]
        convos = [[dict(m) for m in r.messages] for r in reqs]
        with self._lock:
            outputs = self._llm.chat(convos, sampling_params=params, use_tqdm=False)
        return [result_from_output(o) for o in outputs]


def result_from_output(output: Any) -> ChatResult:
    """A ``ChatResult`` from one ``vllm.RequestOutput``."""
    best = output.outputs[0]
    return ChatResult(
        text=best.text,
        finish_reason=best.finish_reason or "unknown",
        usage=Usage(len(output.prompt_token_ids or ()), len(best.token_ids or ())),
        attempts=1,
    )
