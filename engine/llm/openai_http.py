"""The OpenAI-compatible HTTP backend: vLLM / SGLang servers on a cluster, or a hosted API.

``POST {base_url}/chat/completions`` with aiohttp on asyncio, at most ``max_concurrency``
requests in flight per client, each attempt with a total deadline of ``timeout_s``::

    client = OpenAIClient(cfg.llms["generator"], name="generator", cache=cache)
    results = await client.generate(requests)      # or engine.llm.run_batch(client, requests)

Tests run it against the scripted server in ``tests/openai_stub_server.py``;
``tests/bench/llm_concurrency.py`` measures how close it comes to ideal concurrency.

Retries, sorted by cause (each pinned by a test in tests/engine/test_llm_openai_http.py):

- retried, with exponential backoff and full jitter (``uniform(0, min(cap, base * 2**n))``):
  timeouts, connection errors (refused, reset, closed without a reply), HTTP 408, 409, 429
  and 5xx, and a 200 whose body is not a chat completion (a proxy cutting a reply short).
  A ``Retry-After`` header (seconds or an HTTP date) sets the wait instead, capped at
  ``retry_after_cap_s``, plus a little jitter so a burst of 429s does not return in step.
  The wait happens outside the concurrency slot, so other requests use it meanwhile.
- not retried, returned as a failed result: other 4xx (400 is usually a prompt longer than
  the context; retrying cannot help).
- raised as ``LLMError``, stopping the batch: 401/403 (the key), 404 (the URL or the model
  name), and a named ``api_key_env`` that is not set. Calls already finished stay cached.

The API key is read from the environment variable the endpoint names, once, when the client
is made, and lives only in the Authorization header: it is not in the cache key, the repr,
the errors or the logs.

Why aiohttp and not httpx: the client's CPU per request is what bounds concurrency once
replies come back in bursts. Measured on a 2-core host against a fixed-delay loopback server
(tests/bench/llm_concurrency.py, 640 requests at concurrency 64): on httpx 0.29 this client
spent ~1.7 ms of CPU per request (httpcore's pool also rescans every connection for every
request) and reached efficiency ~0.75; on aiohttp ~0.4 ms and ~0.92.

Left out: streaming, HTTP/2, the legacy /completions endpoint, a circuit breaker (a server
that is down costs every request its full retries), and provider-specific fields such as
``max_completion_tokens``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

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
from engine.schema import OpenAIEndpoint

RETRY_STATUSES = frozenset({408, 409, 429})  # plus every 5xx
FATAL_STATUSES = frozenset({401, 403, 404})
USER_AGENT = "synthsmith-engine"


def read_api_key(endpoint: OpenAIEndpoint, name: str) -> str | None:
    """The key from ``os.environ[endpoint.api_key_env]``; None if the endpoint names none."""
    var = endpoint.api_key_env
    if not var:
        return None
    key = os.environ.get(var, "").strip()
    if not key:
        raise LLMError(
            f"endpoint {name!r} ({endpoint.base_url}) reads its API key from ${var}, which is "
            f"not set on this host: export {var}=... in the job's environment (or clear "
            f"llms.{name}.api_key_env for a server without a key)"
        )
    return key


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """A ``Retry-After`` header as seconds from now: ``"2"``, ``"1.5"`` or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def proxy_for(url: str) -> str | None:
    """The proxy for ``url`` from HTTP(S)_PROXY / NO_PROXY, as curl and the OpenAI SDK use.

    Looked up once per client: aiohttp's own ``trust_env`` repeats the lookup, plus a netrc
    read, on a worker thread for every request (two thread hops per call).
    """
    parts = urllib.parse.urlsplit(url)
    if parts.hostname is None or urllib.request.proxy_bypass(parts.hostname):
        return None
    return urllib.request.getproxies().get(parts.scheme)


@dataclass
class _Attempt:
    """How one HTTP attempt ended, when it did not end in a result."""

    kind: str
    detail: str
    retryable: bool
    retry_after: float | None = None


@dataclass
class _Session:
    """What is bound to one event loop: the connection pool and the concurrency slots."""

    loop: asyncio.AbstractEventLoop
    http: aiohttp.ClientSession
    slots: asyncio.Semaphore


class OpenAIClient:
    """An ``LLMClient`` for one OpenAI-compatible endpoint."""

    backend = "openai"

    def __init__(
        self,
        endpoint: OpenAIEndpoint,
        *,
        name: str = "llm",
        cache: ResponseCache | None = None,
        events: Any = None,
        stats: LLMStats | None = None,
        backoff_base_s: float = 0.5,
        backoff_cap_s: float = 30.0,
        retry_after_cap_s: float = 300.0,
        flush_interval_s: float = 10.0,
        rng: random.Random | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.model = endpoint.model
        self.cache = cache
        self.events = events if events is not None else NullEventWriter()
        self.stats = stats or LLMStats()
        self.backoff_base_s = backoff_base_s
        self.backoff_cap_s = backoff_cap_s
        self.retry_after_cap_s = retry_after_cap_s
        self.flush_interval_s = flush_interval_s
        self._rng = rng or random.Random()
        self._url = endpoint.base_url.rstrip("/") + "/chat/completions"
        self._headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT}
        self._api_key = read_api_key(endpoint, name)
        if self._api_key is not None:
            self._headers["Authorization"] = f"Bearer {self._api_key}"
        self._session_: _Session | None = None
        self._proxy = proxy_for(self._url)

    def __repr__(self) -> str:  # no headers: they hold the key
        return f"OpenAIClient(name={self.name!r}, url={self._url!r}, model={self.model!r})"

    # --- the LLMClient interface

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
        session, self._session_ = self._session_, None
        if session is not None and session.loop is asyncio.get_running_loop():
            await session.http.close()

    def close(self) -> None:
        self._session_ = None  # its loop is gone or not ours to drive; the pool is dropped
        if self.cache is not None:
            self.cache.close()

    # --- batch plumbing

    def _session(self) -> _Session:
        # Connection pools and semaphores belong to one event loop; run_batch makes a new
        # loop per call, so the session is rebuilt whenever the loop changes.
        loop = asyncio.get_running_loop()
        if self._session_ is None or self._session_.loop is not loop:
            c = self.endpoint.max_concurrency
            http = aiohttp.ClientSession(
                # One connection per slot, kept alive: no reconnects between requests.
                connector=aiohttp.TCPConnector(limit=c, limit_per_host=c),
                # A total deadline per attempt: a server that trickles bytes still times out.
                timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout_s,
                                              connect=min(30.0, self.endpoint.timeout_s)),
                headers=self._headers,
            )
            self._session_ = _Session(loop, http, asyncio.Semaphore(c))
        return self._session_

    async def _run_misses(self, items: list[tuple[int, ChatRequest]], done: Any) -> None:
        session = self._session()
        queue = iter(items)  # shared by the workers; safe, they all run on this loop's thread

        async def worker() -> None:
            for i, req in queue:
                done(i, await self._call(session, req))

        # As many workers as slots, not one task per request: memory stays flat for 100k.
        n = min(self.endpoint.max_concurrency, len(items))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(n):
                    group.create_task(worker())
        except ExceptionGroup as eg:
            # Raise one error, not a group: the first fatal LLMError, else the first error
            # (an on_result callback of the stage that raised, say).
            fatal = [e for e in eg.exceptions if isinstance(e, LLMError)]
            raise (fatal or list(eg.exceptions))[0] from None

    def _body(self, req: ChatRequest) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in req.messages],
            "temperature": req.temperature,
            "top_p": req.top_p,
            "max_tokens": req.max_tokens,
            "n": 1,
            "stream": False,
        }
        if req.stop:
            body["stop"] = list(req.stop)
        seed = req.backend_seed()
        if seed is not None:
            body["seed"] = seed
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _delay(self, retry: int, retry_after: float | None) -> float:
        if retry_after is not None:
            jitter = self._rng.uniform(0, self.backoff_base_s)
            return min(retry_after, self.retry_after_cap_s) + jitter
        return self._rng.uniform(0, min(self.backoff_cap_s, self.backoff_base_s * 2**retry))

    async def _call(self, session: _Session, req: ChatRequest) -> ChatResult:
        body = self._body(req)
        start = time.monotonic()
        attempts = self.endpoint.max_retries + 1
        for n in range(attempts):
            async with session.slots:
                outcome = await self._attempt(session.http, body)
            if isinstance(outcome, ChatResult):
                return ChatResult(text=outcome.text, reasoning=outcome.reasoning,
                                  finish_reason=outcome.finish_reason, usage=outcome.usage,
                                  attempts=n + 1, latency_s=time.monotonic() - start)
            self.stats.note_error(outcome.kind)
            if not outcome.retryable or n == attempts - 1:
                return failed(outcome.kind, outcome.detail, attempts=n + 1,
                              latency_s=time.monotonic() - start)
            self.stats.note_retry()
            await asyncio.sleep(self._delay(n, outcome.retry_after))
        raise AssertionError("unreachable")

    async def _attempt(self, http: aiohttp.ClientSession, body: bytes) -> ChatResult | _Attempt:
        try:
            async with http.post(self._url, data=body, proxy=self._proxy) as resp:
                status = resp.status
                content = await resp.read()
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:  # aiohttp's timeouts are TimeoutError subclasses
            return _Attempt("timeout", f"no reply within {self.endpoint.timeout_s:g} s", True)
        except aiohttp.ClientError as exc:  # refused, reset, closed early, cut-off body
            return _Attempt("connection", self._redact(f"{type(exc).__name__}: {exc}"), True)
        if status == 200:
            return _parse_completion(content)
        detail = self._redact(f"HTTP {status}: {_error_message(content)}")
        if status in FATAL_STATUSES:
            raise LLMError(self._fatal_message(status, detail))
        if status in RETRY_STATUSES or status >= 500:
            return _Attempt(f"http_{status}", detail, True, retry_after_seconds(retry_after))
        return _Attempt(f"http_{status}", detail, False)

    def _redact(self, text: str) -> str:
        # A server may echo the key in an error ("Incorrect API key provided: sk-...").
        return text.replace(self._api_key, "***") if self._api_key else text

    def _fatal_message(self, status: int, detail: str) -> str:
        where = f"endpoint {self.name!r} ({self._url})"
        if status in (401, 403):
            var = self.endpoint.api_key_env
            fix = (f"check the key in ${var} on this host" if var else
                   f"the server wants a key: export it and set llms.{self.name}.api_key_env "
                   "to the variable's name")
            return f"{where} refused the API key ({detail}); {fix}"
        return (f"{where} has no such route or model ({detail}); check llms.{self.name}.base_url "
                f"(up to and including /v1) and that the server serves model {self.model!r}")


def _error_message(content: bytes) -> str:
    """The server's error text, from an OpenAI-style ``{"error": {"message": ...}}`` if any."""
    try:
        data = json.loads(content)
        err = data.get("error", data) if isinstance(data, dict) else data
        msg = err.get("message", err) if isinstance(err, dict) else err
        text = str(msg)
    except (ValueError, AttributeError):
        text = content.decode("utf-8", "replace")
    return text.strip()[:300] or "(empty body)"


def _parse_completion(content: bytes) -> ChatResult | _Attempt:
    try:
        data = json.loads(content)
        choice = data["choices"][0]
        message = choice["message"]
        text = message.get("content") or ""
        if not isinstance(text, str):
            raise TypeError("content is not a string")
        # vLLM's reasoning parsers put the thinking in reasoning_content (newer: reasoning).
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        usage = data.get("usage") or {}
        return ChatResult(
            text=text,
            reasoning=reasoning if isinstance(reasoning, str) else None,
            finish_reason=choice.get("finish_reason") or "unknown",
            usage=Usage(int(usage.get("prompt_tokens") or 0),
                        int(usage.get("completion_tokens") or 0)),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as exc:
        snippet = content[:120].decode("utf-8", "replace")
        return _Attempt("bad_response", f"not a chat completion ({exc!r}): {snippet!r}", True)
