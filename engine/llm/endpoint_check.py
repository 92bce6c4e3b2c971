"""Test one LLM endpoint of a config before a launch: ``check_endpoint(endpoint, name)``.

What it finds out about an OpenAI-compatible server (``backend: openai``), in this order:

1. the API key: whether ``api_key_env`` names a variable and whether it is set here (the key
   itself is never read into the report, printed or logged);
2. reachability: ``GET /v1/models`` answers, and how fast;
3. the model: whether the server lists the configured model name (and which it lists);
4. the limits the stages will use (``OpenAIClient.learn_limits``): context length and where it
   came from, the server's parallel slots, requests in flight;
5. a 1-token completion: that the server generates for this model, with its latency and
   usage, and which reply-limit field it takes (``max_completion_tokens`` where it asks).

It returns an ``EndpointCheck`` (a dataclass; ``to_dict()`` for JSON, ``lines()`` for a
one-screen text report) and raises nothing for a server that misbehaves: each problem is a
line saying what to change. Qt-free and blocking (it runs its own event loop), so the GUI
runs it on a worker thread and the CLI calls it directly::

    synthsmith llm test generator --config pipeline.yaml [--json]
    python -m engine check-llm --config pipeline.yaml generator     # on the cluster

Where the stage will run matters (a server on a compute node's loopback is not the laptop's):
the engine command runs the same check on a cluster host, e.g. through the bundle that
``synthsmith cluster test`` uploads.

Leaves out: in-process backends (vllm, transformers load the model in the stage; there is no
server to test), throughput under load (tests/bench/llm_concurrency.py measures that), and a
context-length probe for servers that report none (the stages learn it from the first cut or
refused reply; set ``llms.NAME.context_length`` to know it beforehand).
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from engine.llm.base import ChatRequest, LLMError

CHECK_PROMPT = "Reply with the single word OK."


@dataclass
class EndpointCheck:
    """What ``check_endpoint`` found. ``problems`` empty means the endpoint is usable."""

    name: str
    base_url: str
    model: str
    api_key_env: str | None = None
    key_present: bool | None = None  # None: the endpoint names no key variable
    reachable: bool = False
    models_latency_s: float | None = None
    models: list[str] | None = None  # what /v1/models lists
    model_listed: bool | None = None  # None: the server lists no models
    context_length: int | None = None
    context_source: str = ""
    parallel_slots: int | None = None
    slots_source: str = ""
    in_flight: int | None = None  # requests the stages will send at once
    reply_limit_param: str = ""  # max_tokens or max_completion_tokens
    completion_ok: bool = False
    completion_text: str | None = None
    finish_reason: str | None = None
    completion_latency_s: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}

    def lines(self) -> list[str]:
        """The one-screen report (server-sent text is the caller's to make printable)."""
        def ms(s: float | None) -> str:
            return "-" if s is None else f"{s * 1000:.0f} ms"

        if self.api_key_env is None:
            key = "none configured (api_key_env empty)"
        else:
            key = f"${self.api_key_env} {'is set' if self.key_present else 'is NOT set'}"
        listed = ("-" if self.models is None else ", ".join(self.models[:8]) or "(none)")
        if self.model_listed is False:
            listed += "  <- the configured model is not among them"
        answer = (f"ok in {ms(self.completion_latency_s)}: {self.completion_text!r} "
                  f"(finish {self.finish_reason}, {self.prompt_tokens} prompt + "
                  f"{self.completion_tokens} completion tokens)" if self.completion_ok
                  else "failed")
        reach = f"yes, /v1/models in {ms(self.models_latency_s)}" if self.reachable else "no"
        out = [
            f"endpoint {self.name}: {self.base_url}  model {self.model}",
            f"  API key        {key}",
            f"  reachable      {reach}",
            f"  models served  {listed}",
            f"  context        {self.context_length or 'unknown'} tokens ({self.context_source})",
            f"  server slots   {self.parallel_slots or 'unknown'} ({self.slots_source}); "
            f"{self.in_flight} in flight at most",
            f"  1-token reply  {answer}",
            f"  reply limit    sent as {self.reply_limit_param}",
        ]
        out += [f"  ! {p}" for p in self.problems]
        out.append("OK" if self.ok else f"FAILED: {len(self.problems)} problem(s)")
        return out


def check_endpoint(endpoint: Any, name: str, *, timeout_s: float = 120.0) -> EndpointCheck:
    """Check ``endpoint`` (a config ``llms`` entry named ``name``); see the module docstring.
    ``timeout_s`` caps the endpoint's own timeout for this check. Blocking."""
    if getattr(endpoint, "backend", None) != "openai":
        raise LLMError(
            f"llms.{name} is a {getattr(endpoint, 'backend', '?')} endpoint: the model loads "
            "inside the stage's process, so there is no server to test; only backend: openai "
            "endpoints can be tested (run the stage's smoke preset instead)")
    return asyncio.run(_check(endpoint, name, timeout_s))


async def _check(endpoint: Any, name: str, timeout_s: float) -> EndpointCheck:
    from engine.llm.openai_http import OpenAIClient

    report = EndpointCheck(name=name, base_url=endpoint.base_url, model=endpoint.model,
                           api_key_env=endpoint.api_key_env)
    tested = endpoint.model_copy(update={"max_retries": 0,
                                         "timeout_s": min(endpoint.timeout_s, timeout_s)})
    if endpoint.api_key_env:
        report.key_present = bool(os.environ.get(endpoint.api_key_env, "").strip())
        if not report.key_present:
            report.problems.append(
                f"${endpoint.api_key_env} is not set here: export it where the stage runs "
                f"(or clear llms.{name}.api_key_env for a server without a key); "
                "checked without a key")
            tested = tested.model_copy(update={"api_key_env": None})
    client = OpenAIClient(tested, name=name)
    try:
        started = time.monotonic()
        limits = await client.learn_limits()
        report.models_latency_s = time.monotonic() - started
        report.reachable = limits.models_status is not None
        report.models = limits.models
        report.context_length, report.context_source = (limits.context_length,
                                                        limits.context_source)
        report.parallel_slots, report.slots_source = limits.parallel_slots, limits.slots_source
        report.in_flight = client.in_flight
        if not report.reachable:
            report.models_latency_s = None
            why = "; ".join(limits.notes) or "no reply"
            report.problems.append(
                f"{endpoint.base_url} does not answer ({why}): check llms.{name}.base_url and "
                "that the server runs and is reachable from this host")
            return report
        if limits.models:
            report.model_listed = endpoint.model in limits.models
            if not report.model_listed:
                report.problems.append(
                    f"the server serves {', '.join(limits.models[:5])}, not {endpoint.model!r}:"
                    f" set llms.{name}.model to the served name")
        await _complete(client, report, name)
    finally:
        await client.aclose()
        client.close()
    return report


async def _complete(client: Any, report: EndpointCheck, name: str) -> None:
    req = ChatRequest(messages=({"role": "user", "content": CHECK_PROMPT},), temperature=0.0,
                      max_tokens=1)
    try:
        result = await client.complete(req)
    except LLMError as e:  # 401/403/404: the message says what to fix
        report.problems.append(str(e))
        return
    finally:
        report.reply_limit_param = client.reply_param
    report.completion_latency_s = result.latency_s
    if not result.ok:
        report.problems.append(
            f"the 1-token completion failed: {result.error}: {result.error_detail}; "
            + (f"raise llms.{name}.timeout_s or check the server's load"
               if result.error == "timeout" else "see the server's log"))
        return
    report.completion_ok = True
    report.completion_text = result.text[:80]
    report.finish_reason = result.finish_reason
    report.prompt_tokens = result.usage.prompt_tokens
    report.completion_tokens = result.usage.completion_tokens
    if result.usage.completion_tokens > 1:
        report.problems.append(
            f"asked for 1 token, got {result.usage.completion_tokens}: the server ignores "
            f"{client.reply_param}, so replies are not bounded; set llms.{name}."
            "reply_limit_param to the field it honours")

