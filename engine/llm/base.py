"""The one interface every LLM backend offers: requests in, results out, stats on the side.

A stage builds ``ChatRequest``s (messages + its section's sampling fields + a sample index),
hands a batch to a client from ``engine.llm.make_client`` and gets one ``ChatResult`` per
request, in order::

    from engine.llm import ChatRequest, make_client, run_batch

    client = make_client(cfg.llms[cfg.solutions.llm], name=cfg.solutions.llm,
                         cache_dir=ctx.run.cache_dir, events=ctx.events)
    reqs = ChatRequest.for_stage(cfg.solutions, messages).with_samples(8)
    results = run_batch(client, reqs)          # or: await client.generate(reqs)
    good = [r.text for r in results if r.ok and not r.truncated]

Decisions a caller needs to know:

- A call that still fails after its retries is a *result* (``ok`` False, ``error`` a short
  kind such as ``timeout``, ``http_429``, ``bad_response``), never an exception that takes
  the batch down. Only problems no retry can fix raise ``LLMError``: a missing API key
  variable, HTTP 401/403/404 (wrong key, URL or model), a missing backend library.
- ``sample_index`` tells apart the samples of one prompt: it is part of the cache key, and
  where a ``seed`` is set the backend is sent ``seed + sample_index``, so every sample is
  reproducible and no two are the same draw.
- Identical requests (same key) inside one batch are sent once and share the result.
- ``LLMStats`` counts calls, tokens, cache hits, retries and errors; ``flush`` writes them as
  ``llm/...`` metrics (see ``LLMStats.metrics`` for the keys): while batches run, one per
  ``flush_interval_s`` with the rates of that interval, and one when the client's last batch
  in flight ends, never two at the same step.

Shared by the backends: ``generate_cached`` (cache lookup, de-duplication, caching of
successful results, stats, the per-result callback). Left out: streaming, tool calls,
logprobs, multimodal messages and ``n > 1`` in one call (samples are separate requests so
that each is cached and retried on its own).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, runtime_checkable

from engine.events import NullEventWriter

ROLES = frozenset({"system", "user", "assistant"})
SEED_MODULUS = 2**31  # backends take signed 32-bit seeds; seed + sample_index wraps here


class LLMError(Exception):
    """A problem no retry can fix (bad key, URL, model, missing library); says what to do."""


# --- requests and results


@dataclass(frozen=True)
class ChatRequest:
    """One chat completion to make. Every field but ``tag`` is part of the cache key."""

    messages: tuple[Mapping[str, str], ...]
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 1024
    sample_index: int = 0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    # The caller's own label (a task id, say), carried through untouched; not in the key.
    tag: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        msgs = []
        for i, m in enumerate(self.messages):
            role, content = m.get("role"), m.get("content")
            if role not in ROLES or not isinstance(content, str):
                raise ValueError(
                    f"message {i} must be {{'role': one of {sorted(ROLES)}, 'content': str}}, "
                    f"got role={role!r} content of type {type(content).__name__}"
                )
            msgs.append({"role": role, "content": content})  # a copy: later edits can't leak
        if not msgs:
            raise ValueError("a ChatRequest needs at least one message")
        if self.max_tokens < 1 or self.sample_index < 0:
            raise ValueError("max_tokens must be >= 1 and sample_index >= 0")
        object.__setattr__(self, "messages", tuple(msgs))
        object.__setattr__(self, "stop", tuple(self.stop))

    @classmethod
    def for_stage(
        cls, section: Any, messages: Sequence[Mapping[str, str]], **overrides: Any
    ) -> ChatRequest:
        """A request with a stage section's ``temperature`` / ``top_p`` / ``max_tokens``."""
        params = {
            "temperature": section.temperature,
            "top_p": section.top_p,
            "max_tokens": section.max_tokens,
        }
        return cls(messages=tuple(messages), **{**params, **overrides})

    def with_samples(self, k: int) -> list[ChatRequest]:
        """``k`` copies with sample_index 0..k-1: k independent, separately cached samples."""
        return [replace(self, sample_index=i) for i in range(k)]

    def backend_seed(self) -> int | None:
        """The seed a backend is sent: ``seed + sample_index``, or None (server's choice)."""
        return None if self.seed is None else (self.seed + self.sample_index) % SEED_MODULUS

    def sampling_params(self) -> dict[str, Any]:
        """The sampling part of the cache key (and of every backend's own parameters)."""
        return {
            "temperature": float(self.temperature),
            "top_p": float(self.top_p),
            "max_tokens": int(self.max_tokens),
            "stop": list(self.stop),
            "seed": self.seed,
        }


KEY_VERSION = 1  # bump when the key's contents change, so old cache entries stop matching


def cache_key(backend: str, model: str, request: ChatRequest) -> str:
    """sha256 of the canonical JSON of everything that decides a call's answer."""
    payload = {
        "v": KEY_VERSION,
        "backend": backend,
        "model": model,
        "messages": [dict(m) for m in request.messages],
        "params": request.sampling_params(),
        "sample_index": request.sample_index,
    }
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class ChatResult:
    """What one request produced. ``error`` is None on success, else the kind of failure."""

    text: str = ""
    finish_reason: str = "stop"  # "stop", "length" (cut at max_tokens), ... ; "error" if failed
    usage: Usage = field(default_factory=Usage)
    reasoning: str | None = None  # a reasoning model's thinking, where the server splits it off
    cached: bool = False
    error: str | None = None  # "timeout", "connection", "http_429", "http_400", "bad_response", ...
    error_detail: str | None = None  # a short human-readable explanation (never a secret)
    attempts: int = 1  # HTTP attempts made; 0 for a cache hit
    latency_s: float = 0.0  # wall time from the first attempt to the answer, backoff included
    tag: str | None = None  # the request's tag
    # The reply budget the backend was sent (an HTTP client cuts the request's max_tokens to
    # the context left after the prompt), and the most this prompt could get from the
    # endpoint (context - prompt tokens); None where unknown, and on cache hits.
    max_tokens_sent: int | None = None
    max_tokens_limit: int | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


def failed(kind: str, detail: str, *, attempts: int, latency_s: float) -> ChatResult:
    return ChatResult(finish_reason="error", error=kind, error_detail=detail[:500],
                      attempts=attempts, latency_s=latency_s)


ResultCallback = Callable[[int, ChatResult], None]


@runtime_checkable
class LLMClient(Protocol):
    """What every backend offers. ``generate`` keeps the order of its input."""

    backend: str  # "openai", "vllm" or "transformers"
    model: str
    stats: LLMStats

    async def generate(
        self, requests: Sequence[ChatRequest], *, on_result: ResultCallback | None = None
    ) -> list[ChatResult]:
        """One result per request. ``on_result(index, result)`` runs as each one is ready
        (cache hits first), so a stage can save work before the batch ends."""
        ...

    async def complete(self, request: ChatRequest) -> ChatResult: ...

    async def aclose(self) -> None:
        """Release what is bound to the running event loop (HTTP connections)."""
        ...

    def close(self) -> None:
        """Release everything (cache file, model); the client is unusable afterwards."""
        ...


# --- stats


class LLMStats:
    """Counts what a client did; ``flush`` writes it to the event stream as metrics.

    Thread-safe (local backends finish calls on a worker thread). Rates are over the window
    since the previous flush; counts are totals since the client was made.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls = 0  # calls answered by the backend (not cache hits), failed ones included
        self.failed_calls = 0  # calls still failing after their retries
        self.cache_hits = 0
        self.retries = 0
        self.prompt_tokens = 0
        self.completion_tokens = 0
        self.truncated = 0
        self.errors: Counter[str] = Counter()  # failed attempts by kind, retried ones included
        self._window_start = time.monotonic()
        self._window_calls = 0
        self._window_tokens = 0
        # What ``_Flusher`` shares between the batches of one client (see its docstring).
        self._flushed_step = -1  # ``done`` when the last metric was written (its step)
        self._flushed_at = time.monotonic()
        self._batches = 0  # generate() calls running

    @property
    def done(self) -> int:
        """Results handed out so far (backend calls + cache hits)."""
        return self.calls + self.cache_hits

    def record(self, result: ChatResult) -> None:
        with self._lock:
            if result.cached:
                self.cache_hits += 1
                return
            self.calls += 1
            self._window_calls += 1
            self.prompt_tokens += result.usage.prompt_tokens
            self.completion_tokens += result.usage.completion_tokens
            self._window_tokens += result.usage.completion_tokens
            if not result.ok:
                self.failed_calls += 1
            elif result.truncated:
                self.truncated += 1

    def note_error(self, kind: str) -> None:
        with self._lock:
            self.errors[kind] += 1

    def note_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def metrics(self, *, reset_window: bool = True) -> dict[str, float]:
        """The metric dict: ``llm/requests_per_s`` and ``llm/tokens_per_s`` (completion tokens)
        over the window; totals ``llm/requests``, ``llm/cache_hits``, ``llm/retries``,
        ``llm/failed``, ``llm/truncated``, ``llm/prompt_tokens``, ``llm/completion_tokens``,
        ``llm/errors`` and ``llm/errors/<kind>`` (failed attempts, e.g. ``llm/errors/http_429``).
        """
        with self._lock:
            now = time.monotonic()
            span = max(now - self._window_start, 1e-9)
            out = {
                "llm/requests_per_s": self._window_calls / span,
                "llm/tokens_per_s": self._window_tokens / span,
                "llm/requests": float(self.calls),
                "llm/cache_hits": float(self.cache_hits),
                "llm/retries": float(self.retries),
                "llm/failed": float(self.failed_calls),
                "llm/truncated": float(self.truncated),
                "llm/prompt_tokens": float(self.prompt_tokens),
                "llm/completion_tokens": float(self.completion_tokens),
                "llm/errors": float(sum(self.errors.values())),
            }
            out.update({f"llm/errors/{k}": float(v) for k, v in sorted(self.errors.items())})
            if reset_window:
                self._window_start, self._window_calls, self._window_tokens = now, 0, 0
            return out

    def flush(self, events: Any, step: int | None = None) -> None:
        """Write ``metrics()`` as one metric event; ``step`` defaults to results handed out."""
        with self._lock:
            done = self.done
            self._flushed_step, self._flushed_at = done, time.monotonic()
        events.metric(done if step is None else step, self.metrics())


# --- the shared batch path


class _Flusher:
    """Writes a client's stats as ``llm/`` metrics while its batches run: at most one per
    ``interval_s``, and one more when the last batch in flight ends with results not written
    yet. Never two at the same step.

    The clock and what was written belong to the stats, shared by every batch of the client:
    a streamed stage runs several ``generate`` calls at once, and when each flushed on its own
    clock (and always at its end) a batch longer than the interval wrote a second metric at
    the same step with rates over an empty window, zeros that made rate plots saw-tooth.
    """

    def __init__(self, stats: LLMStats, events: Any, interval_s: float) -> None:
        self.stats, self.events, self.interval_s = stats, events, interval_s
        with stats._lock:
            stats._batches += 1

    def maybe(self) -> None:
        st = self.stats
        with st._lock:
            due = (st.done != st._flushed_step
                   and time.monotonic() - st._flushed_at >= self.interval_s)
        if due:
            st.flush(self.events)

    def end(self) -> None:
        """The batch is over: write what no metric has shown yet, unless another batch of
        this client still runs (it writes when due, or when it ends)."""
        st = self.stats
        with st._lock:
            st._batches -= 1
            due = st._batches == 0 and st.done != st._flushed_step
        if due:
            st.flush(self.events)


class ResultCache(Protocol):
    """Where ``generate_cached`` keeps answers (``engine.llm.cache.ResponseCache``)."""

    def get_many(self, keys: Sequence[str]) -> dict[str, ChatResult]: ...

    def put(self, key: str, backend: str, model: str, result: ChatResult) -> None: ...


RunMisses = Callable[[list[tuple[int, ChatRequest]], Callable[[int, ChatResult], None]],
                     Awaitable[None]]


async def generate_cached(
    requests: Sequence[ChatRequest],
    *,
    backend: str,
    model: str,
    cache: ResultCache | None,
    stats: LLMStats,
    run_misses: RunMisses,
    events: Any = None,
    on_result: ResultCallback | None = None,
    flush_interval_s: float = 10.0,
) -> list[ChatResult]:
    """The batch path every backend shares.

    Looks every request up in the cache, sends each distinct miss once through
    ``run_misses(items, done)`` (which calls ``done(index, result)`` per finished call, on the
    event loop's thread), caches successful results the moment they arrive (so a kill loses
    only calls in flight), fans results out to duplicates, counts them, and calls
    ``on_result``. ``events`` (an EventWriter) gets the stats at most every
    ``flush_interval_s`` and when the client's last batch in flight ends (``_Flusher``).
    """
    flusher = _Flusher(stats, events if events is not None else NullEventWriter(), flush_interval_s)
    results: list[ChatResult | None] = [None] * len(requests)
    keys = [cache_key(backend, model, r) for r in requests]
    first: dict[str, int] = {}
    copies: dict[int, list[int]] = {}
    for i, k in enumerate(keys):
        if k in first:
            copies[first[k]].append(i)
        else:
            first[k] = i
            copies[i] = [i]

    def deliver(i: int, result: ChatResult) -> None:
        stats.record(result)
        for j in copies[i]:
            r = replace(result, tag=requests[j].tag)
            results[j] = r
            if on_result is not None:
                on_result(j, r)
        flusher.maybe()

    hits = cache.get_many(list(first)) if cache is not None else {}
    misses: list[tuple[int, ChatRequest]] = []
    for k, i in first.items():
        if k in hits:
            deliver(i, hits[k])
        else:
            misses.append((i, requests[i]))

    def done(i: int, result: ChatResult) -> None:
        if result.ok and cache is not None:
            cache.put(keys[i], backend, model, result)  # durable before anyone sees it
        deliver(i, result)

    try:
        if misses:
            await run_misses(misses, done)
    finally:
        flusher.end()
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:  # a backend bug, not a model failure: say so loudly
        raise RuntimeError(f"{backend} backend returned no result for requests {missing[:10]}")
    return results  # type: ignore[return-value]


def run_batch(
    client: LLMClient, requests: Sequence[ChatRequest], *, on_result: ResultCallback | None = None
) -> list[ChatResult]:
    """``client.generate(requests)`` for code that is not async (most stages).

    Runs its own event loop and closes the client's loop-bound resources at the end; call it
    as often as you like. Inside a running loop, ``await client.generate(...)`` instead.
    """
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("run_batch() was called inside a running event loop; "
                           "use `await client.generate(requests)` there")

    async def main() -> list[ChatResult]:
        try:
            return await client.generate(requests, on_result=on_result)
        finally:
            await client.aclose()

    return asyncio.run(main())
