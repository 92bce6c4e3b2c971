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
- fixed and sent again at once, not counted as retries (at most 3 times per call), two kinds
  of 400: one that asks for ``max_completion_tokens`` (OpenAI's reasoning models) switches
  the client to that field (``reply_limit_param: auto``); one that says prompt + reply is
  over the context ("maximum context length is N", vLLM, OpenAI, llama-cpp-python; llama.cpp's
  ``n_ctx`` / ``n_prompt_tokens`` error fields) teaches the client the context and resends
  with the budget that fits, if the prompt alone fits.

Endpoint limits are learned, not guessed (``learn_limits``, once per client, before its first
request; ``engine.llm.endpoint_check`` shows them): the context length from the config's
``context_length``, else vLLM's ``max_model_len`` in ``GET /v1/models`` (or a
``context_length`` there), else llama.cpp's ``GET /props`` (``n_ctx`` per slot), else the
first context-length 400 or reply cut short of its budget (llama-cpp-python's server reports
no context length, and cuts a reply at the context's end instead of refusing it). The
server's parallel slots from ``parallel_slots``, else /props' ``total_slots``, else
``max_concurrency``. With a context known, each request's ``max_tokens``
is cut to the context minus the prompt's estimated tokens (characters per token learned from
the server's ``usage.prompt_tokens``, 2 until then: an over-estimate for most tokenizers);
each result says what it was sent and the most its prompt could get (``max_tokens_sent``,
``max_tokens_limit``), which the JSON retry uses to ask for a larger budget after a cut-off
answer (engine/stages/synth_common.py ``json_round``).

At most min(``max_concurrency``, server slots) requests are in flight, and ``timeout_s`` runs
from when a request is sent: a server with fewer slots than our concurrency would otherwise
queue requests whose timeouts run while they wait (4 in flight on a one-slot server all timed
out while it kept generating their abandoned answers).

The API key is read from the environment variable the endpoint names, once, when the client
is made, and lives only in the Authorization header: it is not in the cache key, the repr,
the errors or the logs.

Why aiohttp and not httpx: the client's CPU per request is what bounds concurrency once
replies come back in bursts. Measured on a 2-core host against a fixed-delay loopback server
(tests/bench/llm_concurrency.py, 640 requests at concurrency 64): on httpx 0.29 this client
spent ~1.7 ms of CPU per request (httpcore's pool also rescans every connection for every
request) and reached efficiency ~0.75; on aiohttp ~0.4 ms and ~0.92.

Left out: streaming, HTTP/2, the legacy /completions endpoint, a circuit breaker (a server
that is down costs every request its full retries), a server's tokenize endpoint (prompt
tokens are estimated instead: one request per call, not two), and other provider-specific
fields.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import math
import os
import random
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
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
MAX_REFITS = 3  # 400s fixed by the client itself per call (reply field, then budget)
# Characters per prompt token until the server's usage teaches better: most tokenizers give
# 3-4 on English and code, so 2 over-estimates the prompt and leaves the reply room to spare.
DEFAULT_CHARS_PER_TOKEN = 2.0
MIN_CALIBRATION_CHARS = 400  # shorter prompts are mostly chat template: they skew the ratio
# A budget cut below this is sent at this size anyway: where the estimate was too high the
# server accepts it, and where the prompt really fills the context its 400 says so exactly.
MIN_FITTED_TOKENS = 64

# "This model's maximum context length is 2048 tokens. However, you requested 3000 tokens
# (1000 in the messages, 2000 in the completion)." (vLLM, OpenAI, llama-cpp-python), and newer
# vLLM: "... maximum context length is 2048 tokens and your request has 1000 input tokens".
_CONTEXT_RE = re.compile(r"maximum context length is (\d+)", re.I)
_PROMPT_RE = re.compile(r"(\d+) in the messages|has (\d+) input tokens", re.I)
_REQUESTED_RE = re.compile(r"you requested (\d+) tokens", re.I)
# OpenAI: "Unsupported parameter: 'max_tokens' is not supported with this model. Use
# 'max_completion_tokens' instead." (vLLM's own messages name both fields: not this.)
_WANTS_MCT_RE = re.compile(r"use '?max_completion_tokens'?|max_completion_tokens'? instead|"
                           r"unsupported parameter:? '?max_tokens", re.I)


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
class EndpointLimits:
    """What the client learned about its server (``OpenAIClient.learn_limits``)."""

    context_length: int | None = None  # tokens of prompt + reply the server accepts
    context_source: str = "unknown"  # "config", "/v1/models max_model_len", "/props n_ctx", ...
    parallel_slots: int | None = None  # requests the server works on at once
    slots_source: str = "unknown"
    models: list[str] | None = None  # ids /v1/models listed; None if it did not answer
    models_status: int | None = None  # HTTP status of /v1/models; None: no reply at all
    notes: list[str] = field(default_factory=list)  # queries that failed, and why


@dataclass
class _Attempt:
    """How one HTTP attempt ended, when it did not end in a result."""

    kind: str
    detail: str
    retryable: bool
    retry_after: float | None = None
    error: dict | None = None  # the server's error object, for a 400 the client may fix


@dataclass
class _Session:
    """What is bound to one event loop: the connection pool and the concurrency slots."""

    loop: asyncio.AbstractEventLoop
    http: aiohttp.ClientSession
    slots: asyncio.Semaphore | None = None  # made once the server's slots are known
    ready: asyncio.Lock = field(default_factory=asyncio.Lock)


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
        self.limits: EndpointLimits | None = None  # learned before the first request
        self.reply_param = ("max_tokens" if endpoint.reply_limit_param == "auto"
                            else endpoint.reply_limit_param)
        self._chars_per_token: float | None = None  # learned from the server's usage

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

    @property
    def in_flight(self) -> int:
        """Most requests sent at once: max_concurrency, or fewer where the server has fewer
        slots (known once ``learn_limits`` ran)."""
        slots = self.limits.parallel_slots if self.limits else self.endpoint.parallel_slots
        return min(self.endpoint.max_concurrency, slots or self.endpoint.max_concurrency)

    def _session(self) -> _Session:
        # Connection pools and semaphores belong to one event loop; run_batch makes a new
        # loop per call, so the session is rebuilt whenever the loop changes.
        loop = asyncio.get_running_loop()
        if self._session_ is None or self._session_.loop is not loop:
            c = self.endpoint.max_concurrency
            http = aiohttp.ClientSession(
                # One connection per slot, kept alive: no reconnects between requests.
                connector=aiohttp.TCPConnector(limit=c, limit_per_host=c),
                # A total deadline per attempt, started when the request is sent (after its
                # slot is taken): a server that trickles bytes still times out.
                timeout=aiohttp.ClientTimeout(total=self.endpoint.timeout_s,
                                              connect=min(30.0, self.endpoint.timeout_s)),
                headers=self._headers,
            )
            self._session_ = _Session(loop, http)
        return self._session_

    async def _ready_session(self) -> _Session:
        session = self._session()
        if session.slots is None:
            async with session.ready:  # overlapping generate() calls learn once
                if session.slots is None:
                    if self.limits is None:
                        self.limits = await self._learn(session.http)
                    session.slots = asyncio.Semaphore(self.in_flight)
        return session

    async def learn_limits(self) -> EndpointLimits:
        """The server's context length and parallel slots (see the module docstring)."""
        await self._ready_session()
        assert self.limits is not None
        return self.limits

    async def _run_misses(self, items: list[tuple[int, ChatRequest]], done: Any) -> None:
        session = await self._ready_session()
        queue = iter(items)  # shared by the workers; safe, they all run on this loop's thread

        async def worker() -> None:
            for i, req in queue:
                done(i, await self._call(session, req))

        # As many workers as slots, not one task per request: memory stays flat for 100k.
        n = min(self.in_flight, len(items))
        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(n):
                    group.create_task(worker())
        except ExceptionGroup as eg:
            # Raise one error, not a group: the first fatal LLMError, else the first error
            # (an on_result callback of the stage that raised, say).
            fatal = [e for e in eg.exceptions if isinstance(e, LLMError)]
            raise (fatal or list(eg.exceptions))[0] from None

    # --- learning the server's limits

    async def _learn(self, http: aiohttp.ClientSession) -> EndpointLimits:
        ep, limits = self.endpoint, EndpointLimits()
        if ep.context_length:
            limits.context_length, limits.context_source = ep.context_length, "config"
        if ep.parallel_slots:
            limits.parallel_slots, limits.slots_source = ep.parallel_slots, "config"
        base = ep.base_url.rstrip("/")
        data, why, limits.models_status = await self._get_json(http, base + "/models")
        if isinstance(data, dict) and isinstance(data.get("data"), list):
            entries = [e for e in data["data"] if isinstance(e, dict)]
            limits.models = [str(e.get("id")) for e in entries]
            entry = next((e for e in entries if e.get("id") == self.model), None)
            if entry is not None and limits.context_length is None:
                for key in ("max_model_len", "context_length", "context_window"):
                    n = _positive_int(entry.get(key))
                    if n:
                        limits.context_length = n
                        limits.context_source = f"/v1/models {key}"
                        break
        else:
            limits.notes.append(f"/v1/models: {why or 'not a model list'}")
        if limits.context_length is None or limits.parallel_slots is None:
            # llama.cpp's server: /props beside /v1, n_ctx per slot, total_slots.
            root = base[:-3] if base.endswith("/v1") else base
            props, why, _ = await self._get_json(http, root + "/props")
            if isinstance(props, dict):
                settings = props.get("default_generation_settings")
                n_ctx = _positive_int((settings if isinstance(settings, dict) else {})
                                      .get("n_ctx") or props.get("n_ctx"))
                if n_ctx and limits.context_length is None:
                    limits.context_length, limits.context_source = n_ctx, "/props n_ctx"
                slots = _positive_int(props.get("total_slots"))
                if slots and limits.parallel_slots is None:
                    limits.parallel_slots, limits.slots_source = slots, "/props total_slots"
            else:
                limits.notes.append(f"/props: {why or 'not an object'}")
        if limits.parallel_slots is None:
            limits.slots_source = "not reported; max_concurrency is used"
        if limits.context_length is None:
            limits.context_source = ("not reported; learned from the first context-length 400 "
                                     "or reply cut at the context's end")
        return limits

    async def _get_json(self, http: aiohttp.ClientSession,
                        url: str) -> tuple[Any, str, int | None]:
        """(parsed JSON or None, why not, HTTP status). Short deadline: these only inform."""
        try:
            async with http.get(url, proxy=self._proxy, timeout=aiohttp.ClientTimeout(
                    total=min(30.0, self.endpoint.timeout_s))) as resp:
                status, content = resp.status, await resp.read()
        except TimeoutError:
            return None, "no reply in time", None
        except aiohttp.ClientError as exc:
            return None, self._redact(f"{type(exc).__name__}: {exc}"), None
        if status != 200:
            return None, self._redact(f"HTTP {status}: {_error_message(content)}"), status
        try:
            return json.loads(content), "", status
        except ValueError:
            return None, "not JSON", status

    def estimate_prompt_tokens(self, req: ChatRequest) -> int:
        """An over-estimate of the prompt's tokens, chat template included."""
        chars = sum(len(m["content"]) for m in req.messages)
        per_token = 0.9 * (self._chars_per_token or DEFAULT_CHARS_PER_TOKEN)
        return math.ceil(chars / per_token) + 8 * len(req.messages) + 16

    def _calibrate(self, req: ChatRequest, prompt_tokens: int) -> None:
        chars = sum(len(m["content"]) for m in req.messages)
        if prompt_tokens > 0 and chars >= MIN_CALIBRATION_CHARS:
            ratio = max(1.0, chars / prompt_tokens)  # the densest prompt seen sets the rate
            self._chars_per_token = min(self._chars_per_token or ratio, ratio)

    def _learn_from_cut(self, result: ChatResult, budget: int) -> None:
        # A reply cut ("length") short of its budget stopped at the end of the context, as
        # llama-cpp-python does instead of a 400 (it reports no context length anywhere).
        u, limits = result.usage, self.limits
        if (result.finish_reason != "length" or limits is None or not u.prompt_tokens
                or not 0 < u.completion_tokens < budget):
            return
        ctx = u.prompt_tokens + u.completion_tokens
        if limits.context_length is None or ctx < limits.context_length:
            limits.context_length, limits.context_source = ctx, "a reply cut at the context's end"

    def _fit(self, req: ChatRequest) -> tuple[int, int | None]:
        """(budget to send, the most this prompt can get) for one request."""
        ctx = self.limits.context_length if self.limits else None
        if ctx is None:
            return req.max_tokens, None
        room = ctx - self.estimate_prompt_tokens(req)
        return min(req.max_tokens, max(room, MIN_FITTED_TOKENS)), max(room, 1)

    def _refit(self, outcome: _Attempt, req: ChatRequest, budget: int) -> int | None:
        """The budget to resend with after a 400 the client can fix itself, else None."""
        message, err = outcome.detail, outcome.error or {}
        if (self.reply_param == "max_tokens" and self.endpoint.reply_limit_param == "auto"
                and _WANTS_MCT_RE.search(message)):
            self.reply_param = "max_completion_tokens"
            return budget
        m = _CONTEXT_RE.search(message)
        ctx = int(m.group(1)) if m else _positive_int(err.get("n_ctx"))
        if not ctx or self.limits is None:
            return None
        if self.limits.context_length != ctx:  # the server's word beats a config or a guess
            self.limits.context_length, self.limits.context_source = ctx, "a context-length 400"
        p = _PROMPT_RE.search(message)
        prompt = int(p.group(1) or p.group(2)) if p else _positive_int(err.get("n_prompt_tokens"))
        if prompt is None and (r := _REQUESTED_RE.search(message)):
            prompt = int(r.group(1)) - budget
        if prompt is None:
            prompt = self.estimate_prompt_tokens(req)
        else:
            self._calibrate(req, prompt)
        fitted = min(req.max_tokens, ctx - prompt)
        return fitted if 1 <= fitted < budget else None

    # --- one request

    def _body(self, req: ChatRequest, budget: int | None = None) -> bytes:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(m) for m in req.messages],
            "temperature": req.temperature,
            "top_p": req.top_p,
            self.reply_param: req.max_tokens if budget is None else budget,
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
        assert session.slots is not None and self.limits is not None
        start = time.monotonic()
        budget, room = self._fit(req)
        attempts = self.endpoint.max_retries + 1
        n = refits = sent = 0
        while True:
            sent += 1
            async with session.slots:
                outcome = await self._attempt(session.http, self._body(req, budget))
            if isinstance(outcome, ChatResult):
                prompt = outcome.usage.prompt_tokens
                self._calibrate(req, prompt)
                self._learn_from_cut(outcome, budget)
                ctx = self.limits.context_length
                limit = max(ctx - prompt, 1) if ctx and prompt else room
                return replace(outcome, attempts=sent, latency_s=time.monotonic() - start,
                               max_tokens_sent=budget, max_tokens_limit=limit)
            if outcome.kind == "http_400" and refits < MAX_REFITS:
                fixed = self._refit(outcome, req, budget)
                if fixed is not None:
                    refits, budget = refits + 1, fixed
                    continue
            self.stats.note_error(outcome.kind)
            if not outcome.retryable or n == attempts - 1:
                detail = outcome.detail
                if outcome.kind == "http_400":  # enough to see what to change before a retry
                    ctx = self.limits.context_length
                    detail += (f" [sent {self.reply_param}={budget}; prompt ~"
                               f"{self.estimate_prompt_tokens(req)} tokens estimated; context "
                               f"{ctx if ctx else 'unknown'} ({self.limits.context_source})]")
                return failed(outcome.kind, detail, attempts=sent,
                              latency_s=time.monotonic() - start)
            n += 1
            self.stats.note_retry()
            await asyncio.sleep(self._delay(n - 1, outcome.retry_after))

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
        return _Attempt(f"http_{status}", detail, False, error=_error_object(content))

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


def _positive_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 \
        else None


def _error_object(content: bytes) -> dict | None:
    """The server's ``{"error": {...}}`` object (llama.cpp puts n_ctx / n_prompt_tokens in it)."""
    try:
        data = json.loads(content)
    except ValueError:
        return None
    err = data.get("error", data) if isinstance(data, dict) else None
    return err if isinstance(err, dict) else None


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
