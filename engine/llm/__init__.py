"""The LLM layer: one interface (``LLMClient``), three backends, one response cache.

- ``openai`` — an OpenAI-compatible HTTP server (vLLM, SGLang, a hosted API): async, bounded
  concurrency, retries with backoff (engine/llm/openai_http.py).
- ``vllm`` — vLLM offline in this process, on CUDA GPU nodes (engine/llm/vllm_offline.py).
- ``transformers`` — transformers in this process, for CPU smoke runs, with the no-download
  ``tiny-random`` model (engine/llm/transformers_local.py).

Every backend serves repeated calls from the run's persistent cache (engine/llm/cache.py),
so a killed stage rerun never repeats a completed call. A stage does::

    from engine.llm import ChatRequest, make_client, run_batch

    name = ctx.config.features.llm
    client = make_client(ctx.config.llms[name], name=name, cache_dir=ctx.run.cache_dir,
                         events=ctx.events)
    results = run_batch(client, [ChatRequest.for_stage(ctx.config.features, msgs) for msgs in ...])
    client.close()

The types and the shared batch path are in engine/llm/base.py. Nothing here imports aiohttp,
torch or vllm until the backend that needs it is asked for.
"""

from __future__ import annotations

import os
from typing import Any

from engine.llm.base import (
    ChatRequest,
    ChatResult,
    LLMClient,
    LLMError,
    LLMStats,
    ResultCallback,
    Usage,
    cache_key,
    run_batch,
)
from engine.llm.cache import CACHE_FILE, ResponseCache

__all__ = [
    "CACHE_FILE",
    "ChatRequest",
    "ChatResult",
    "LLMClient",
    "LLMError",
    "LLMStats",
    "ResponseCache",
    "ResultCallback",
    "Usage",
    "cache_key",
    "make_client",
    "run_batch",
]


def make_client(
    endpoint: Any,
    *,
    name: str = "llm",
    cache_dir: str | os.PathLike[str] | None = None,
    cache_name: str = CACHE_FILE,
    events: Any = None,
    tensor_parallel: int | None = None,
    **options: Any,
) -> LLMClient:
    """The client for one endpoint of ``PipelineConfig.llms``, picked by its ``backend``.

    ``name`` is the endpoint's key in ``llms`` (errors name it). ``cache_dir`` (the run's
    ``data/cache``) turns on the persistent cache; None runs uncached. ``cache_name`` gives
    sharded workers their own file. ``events`` (an EventWriter) receives ``llm/...``
    metrics. ``tensor_parallel`` overrides a vLLM endpoint's own size with the GPUs the
    stage's placement gives it. ``options`` go to the backend's constructor (e.g.
    ``backoff_base_s`` for HTTP, ``chunk_size`` for vLLM).
    """
    backend = getattr(endpoint, "backend", None)
    if backend not in ("openai", "vllm", "transformers"):
        raise LLMError(f"endpoint {name!r} has backend {backend!r}; "
                       "expected openai, vllm or transformers")
    cache = ResponseCache.in_dir(cache_dir, cache_name) if cache_dir is not None else None
    try:
        if backend == "openai":
            from engine.llm.openai_http import OpenAIClient

            return OpenAIClient(endpoint, name=name, cache=cache, events=events, **options)
        if backend == "vllm":
            from engine.llm.vllm_offline import VLLMOfflineClient

            return VLLMOfflineClient(endpoint, name=name, cache=cache, events=events,
                                     tensor_parallel=tensor_parallel, **options)
        from engine.llm.transformers_local import TransformersClient

        return TransformersClient(endpoint, name=name, cache=cache, events=events, **options)
    except BaseException:
        if cache is not None:
            cache.close()
        raise
