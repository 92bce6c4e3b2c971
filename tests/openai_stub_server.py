"""A scripted OpenAI-compatible chat-completions server on loopback: a TEST DOUBLE.

It stands in for a vLLM / SGLang server or a hosted API in tests and benchmarks, and lives
in tests/ only; it is never a product default. Real HTTP on ``POST /v1/chat/completions``:
an aiohttp web server on its own thread and event loop (HTTP/1.1 keep-alive, delays are
``asyncio.sleep`` so hundreds of connections cost no threads, a listen backlog of 1024).
aiohttp rather than the stdlib's ThreadingHTTPServer because the benchmark needs a server
whose own CPU per request (~0.4 ms, no thread switching) does not become what it measures.

Use it from pytest through the ``openai_stub`` fixture (tests/conftest.py), or by hand::

    python tests/openai_stub_server.py --port 8000 --delay 0.2     # Ctrl-C stops it

What it answers, first match wins:

1. a reply queued with ``server.enqueue(Reply(...), ...)`` (taken in order, any request);
2. ``server.rule(body, attempt)`` if set: return a ``Reply`` or None to fall through;
3. directives written in the last user message as ``[[stub key=value flag ...]]``:
   ``status=429`` (or 500, 400, 401, ...), ``times=N`` (only the first N attempts of this
   exact request misbehave; default: all), ``retry_after=S`` (a Retry-After header),
   ``delay=S`` (sleep before answering, every attempt unless ``times`` is given),
   ``malformed`` (a 200 whose body is broken JSON), ``drop`` (close the connection without
   a reply), ``truncate`` (finish_reason "length", text cut short), ``text=WORD``,
   ``json_words=N`` (a JSON object ``{"words": [...]}`` of N one-word strings: N+2 "tokens");
4. a canned, realistic chat completion: a short answer with a Python code block whose text
   is a function of the request (model, messages, seed, temperature), so the same request
   always gets the same text and different samples get different ones.

``server.requests`` records every request (headers, parsed body, start/end times, status);
``server.max_in_flight`` is the most requests it was handling at once. ``delay_s`` on the
server delays every answer (the benchmark's fixed service time).

Limits real servers enforce, each off unless asked for (constructor or command line); tokens
are words here, as in the usage the stub reports:

- ``max_model_len=N``: ``GET /v1/models`` reports it as vLLM does, and a request whose
  prompt + ``max_tokens`` is over it gets vLLM's 400 ("This model's maximum context length is
  N tokens. However, you requested ...");
- ``slots=N``: at most N requests are worked on at once and the rest wait in a queue, as on
  llama.cpp's server (``--parallel``); ``props=True`` serves llama.cpp's ``GET /props`` with
  ``n_ctx`` (``max_model_len``) and ``total_slots``;
- ``cut_at_max_tokens``: an answer longer than the request's budget is cut to it, with
  finish_reason "length";
- ``require_max_completion_tokens``: a request with ``max_tokens`` gets OpenAI's 400 for
  reasoning models ("Use 'max_completion_tokens' instead").

Started as its own process (``spawn``: the real-server tests), ``GET /stub/requests`` lists
what it received (path, body, status).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

CHAT_PATH = "/v1/chat/completions"
DIRECTIVE = re.compile(r"\[\[stub([^\]]*)\]\]")


@dataclass
class Reply:
    """One scripted answer. ``body`` None means a canned completion built from the request."""

    status: int = 200
    body: bytes | dict | None = None
    text: str | None = None  # the completion's text, for a canned body
    finish_reason: str = "stop"
    reasoning: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False  # close the connection without sending anything


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: Any  # parsed JSON, or the raw bytes if it was not JSON
    start: float  # time.monotonic() when the request was read
    end: float = 0.0  # when the reply was sent (or dropped)
    status: int | None = None

    @property
    def last_user(self) -> str:
        return _last_user(self.body)


def _last_user(body: Any) -> str:
    msgs = body.get("messages", []) if isinstance(body, dict) else []
    users = [m.get("content", "") for m in msgs if isinstance(m, dict) and m.get("role") == "user"]
    return users[-1] if users and isinstance(users[-1], str) else ""


def canned_text(body: dict) -> str:
    """The deterministic answer the stub gives a request when nothing else is scripted."""
    key = json.dumps([body.get("model"), body.get("messages"), body.get("seed"),
                      body.get("temperature"), body.get("top_p")], sort_keys=True)
    h = hashlib.sha256(key.encode()).hexdigest()[:12]
    return (f"Read the input, then print the result (answer {h}).\n\n"
            "```python\nimport sys\n\ndef main():\n    data = sys.stdin.read().split()\n"
            "    print(sum(map(int, data)))\n\nmain()\n```\n")


def completion_json(body: dict, text: str, finish_reason: str = "stop",
                    reasoning: str | None = None) -> dict:
    """A chat.completion object shaped like vLLM's, with word-count usage."""
    prompt_words = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    message: dict[str, Any] = {"role": "assistant", "content": text, "tool_calls": []}
    if reasoning is not None:
        message["reasoning_content"] = reasoning
    completion_tokens = len(text.split())
    return {
        "id": "chatcmpl-" + hashlib.sha256(text.encode()).hexdigest()[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "stub-model"),
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": finish_reason, "stop_reason": None}],
        "usage": {"prompt_tokens": prompt_words, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_words + completion_tokens},
    }


def parse_directives(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in DIRECTIVE.finditer(text):
        for part in m.group(1).split():
            k, _, v = part.partition("=")
            out[k] = v
    return out


class StubServer:
    """The server. ``start()`` serves on a background thread; ``url`` is the /v1 base URL."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, delay_s: float = 0.0,
                 max_model_len: int | None = None, slots: int | None = None,
                 props: bool = False, cut_at_max_tokens: bool = False,
                 require_max_completion_tokens: bool = False) -> None:
        self.host, self.port = host, port
        self.delay_s = delay_s
        self.max_model_len, self.slots, self.props = max_model_len, slots, props
        self.cut_at_max_tokens = cut_at_max_tokens
        self.require_max_completion_tokens = require_max_completion_tokens
        self._slots: asyncio.Semaphore | None = None
        self.rule: Any = None  # (body, attempt) -> Reply | None
        self.requests: list[RecordedRequest] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._queue: list[Reply] = []
        self._attempts: dict[str, int] = {}
        self._lock = threading.Lock()  # the handlers run on the server's thread, tests on theirs
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> StubServer:
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = self._loop = asyncio.new_event_loop()
            try:
                loop.run_until_complete(self._start_site())
            except BaseException as exc:  # a port in use: report it to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
            loop.close()

        self._thread = threading.Thread(target=serve, name="openai-stub", daemon=True)
        self._thread.start()
        ready.wait(timeout=30)
        if failure:
            raise failure[0]
        return self

    async def _start_site(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post(CHAT_PATH, self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/stub/requests", self._request_log)
        if self.props:
            app.router.add_get("/props", self._props)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        if self.slots:
            self._slots = asyncio.Semaphore(self.slots)
        # A short shutdown timeout: handlers asleep in a delay must not hold up stop().
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False,
                                     shutdown_timeout=0.1)
        await self._runner.setup()
        # A deep backlog: 64+ clients connect at once in the benchmark.
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def _shutdown(self) -> None:
        await self._runner.cleanup()
        # Handlers still asleep in a delay (a client timed out on them) end here.
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop = self._thread = None

    def __enter__(self) -> StubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- scripting

    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._queue.clear()
            self._attempts.clear()
            self.max_in_flight = 0
            self.rule = None

    def chat_requests(self) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.split("?")[0] == CHAT_PATH]

    # --- the handlers

    async def _models(self, request: web.Request) -> web.Response:
        model: dict[str, Any] = {"id": "stub-model", "object": "model"}
        if self.max_model_len:
            model["max_model_len"] = self.max_model_len  # as vLLM reports it
        return web.json_response({"object": "list", "data": [model]})

    async def _props(self, request: web.Request) -> web.Response:
        # llama.cpp's server: n_ctx is per slot.
        return web.json_response({"default_generation_settings": {"n_ctx": self.max_model_len},
                                  "total_slots": self.slots or 1})

    async def _request_log(self, request: web.Request) -> web.Response:
        with self._lock:
            log = [{"path": r.path, "body": r.body if not isinstance(r.body, bytes) else None,
                    "status": r.status} for r in self.requests]
        return web.json_response(log)

    async def _not_found(self, request: web.Request) -> web.Response:
        raw = await request.read()
        with self._lock:
            self.requests.append(RecordedRequest(request.path_qs, dict(request.headers), raw,
                                                 time.monotonic(), time.monotonic(), 404))
        return web.json_response({"error": {"message": f"no route {request.path}",
                                            "type": "NotFoundError"}}, status=404)

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        rec = RecordedRequest(request.path_qs, dict(request.headers), body, time.monotonic())
        with self._lock:
            self.requests.append(rec)
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
        try:
            if self._slots is None:
                return await self._answer(request, rec, body)
            async with self._slots:  # queued like a busy llama.cpp server: the client waits
                return await self._answer(request, rec, body)
        finally:
            rec.end = time.monotonic()
            with self._lock:
                self._in_flight -= 1

    async def _answer(self, request: web.Request, rec: RecordedRequest,
                      body: Any) -> web.StreamResponse:
        if not isinstance(body, dict):
            rec.status = 400
            return web.json_response({"error": {"message": "body is not JSON"}}, status=400)
        refusal = self._limit_error(body)
        if refusal is not None:
            rec.status = 400
            return web.json_response(refusal, status=400)
        reply = self._reply_for(body)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.drop:
            # Hang up without a byte of reply: the client sees the server disconnect.
            rec.status = None
            request.transport.close()
            return web.Response()  # never sent: the transport is gone
        if isinstance(reply.body, bytes):
            payload = reply.body
        elif isinstance(reply.body, dict):
            payload = json.dumps(reply.body).encode()
        elif reply.status == 200:
            text = reply.text if reply.text is not None else canned_text(body)
            finish = reply.finish_reason
            budget = body.get("max_tokens") or body.get("max_completion_tokens")
            if self.cut_at_max_tokens and isinstance(budget, int) and len(text.split()) > budget:
                text, finish = " ".join(text.split()[:budget]), "length"
            payload = json.dumps(completion_json(body, text, finish, reply.reasoning)).encode()
        else:
            payload = json.dumps({"error": {"message": f"stub says {reply.status}",
                                            "type": "StubError", "code": reply.status}}).encode()
        rec.status = reply.status
        return web.Response(status=reply.status, body=payload, headers=reply.headers,
                            content_type="application/json")

    def _limit_error(self, body: dict) -> dict | None:
        """The 400 a real server gives a request over its limits, in that server's words."""
        if self.require_max_completion_tokens and "max_tokens" in body:
            return {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported "
                              "with this model. Use 'max_completion_tokens' instead.",
                              "type": "invalid_request_error", "param": "max_tokens",
                              "code": "unsupported_parameter"}}
        budget = body.get("max_tokens") or body.get("max_completion_tokens") or 0
        prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
        if self.max_model_len and prompt + budget > self.max_model_len:
            return {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                    "message": f"This model's maximum context length is {self.max_model_len} "
                    f"tokens. However, you requested {prompt + budget} tokens ({prompt} in the "
                    f"messages, {budget} in the completion). Please reduce the length of the "
                    "messages or completion."}
        return None

    def _reply_for(self, body: dict) -> Reply:
        ident = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        with self._lock:
            attempt = self._attempts.get(ident, 0)
            self._attempts[ident] = attempt + 1
            queued = self._queue.pop(0) if self._queue else None
        if queued is not None:
            return queued
        if self.rule is not None:
            reply = self.rule(body, attempt)
            if reply is not None:
                return reply
        return self._directed(_last_user(body), body, attempt)

    def _directed(self, text: str, body: dict, attempt: int) -> Reply:
        d = parse_directives(text)
        times = int(d["times"]) if "times" in d else None
        misbehave = times is None or attempt < times
        delay = self.delay_s
        if "delay" in d and misbehave:
            delay += float(d["delay"])
        if not misbehave:
            return Reply(delay_s=delay, text=d.get("text"))
        headers = {"Retry-After": d["retry_after"]} if "retry_after" in d else {}
        if "drop" in d:
            return Reply(drop=True, delay_s=delay)
        if "malformed" in d:
            return Reply(body=b'{"id": "chatcmpl-x", "choices": [{"index": 0, "message": {"ro',
                         delay_s=delay)
        if "status" in d and int(d["status"]) != 200:
            return Reply(status=int(d["status"]), headers=headers, delay_s=delay)
        if "truncate" in d:
            full = canned_text(body)
            return Reply(text=full[: len(full) // 3], finish_reason="length", delay_s=delay)
        if "json_words" in d:
            words = ", ".join(f'"w{i}"' for i in range(int(d["json_words"])))
            return Reply(delay_s=delay, text=f'{{"words": [{words}] }}', headers=headers)
        return Reply(delay_s=delay, text=d.get("text"), headers=headers)


class StubProcess:
    """The stub in a process of its own (``spawn``): real sockets, its own CPU and GIL."""

    def __init__(self, proc: Any, url: str) -> None:
        self.proc, self.url = proc, url

    def requests(self) -> list[dict]:
        import urllib.request

        root = self.url.removesuffix("/v1")
        with urllib.request.urlopen(root + "/stub/requests", timeout=10) as resp:
            return json.loads(resp.read())

    def chat_requests(self) -> list[dict]:
        return [r for r in self.requests() if r["path"].split("?")[0] == CHAT_PATH]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except Exception:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def __enter__(self) -> StubProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn(*args: str) -> StubProcess:
    """Start ``python openai_stub_server.py --port 0 ARGS`` and wait until it serves."""
    import subprocess

    proc = subprocess.Popen([sys.executable, __file__, "--port", "0", *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "serving http://127.0.0.1:PORT/v1 (Ctrl-C stops)"
    if not line.startswith("serving "):
        proc.kill()
        raise RuntimeError(f"the stub server did not start (it said {line!r})")
    return StubProcess(proc, line.split()[1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Scripted OpenAI-compatible server (test double).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--delay", type=float, default=0.0, help="seconds before every answer")
    p.add_argument("--max-model-len", type=int, help="context (words) /v1/models reports and "
                   "400s enforce, as vLLM does")
    p.add_argument("--slots", type=int, help="requests worked on at once; the rest queue")
    p.add_argument("--props", action="store_true", help="serve llama.cpp's GET /props")
    p.add_argument("--cut-at-max-tokens", action="store_true",
                   help="cut longer answers to the request's budget (finish_reason length)")
    p.add_argument("--require-max-completion-tokens", action="store_true",
                   help="refuse max_tokens with OpenAI's 400 for reasoning models")
    args = p.parse_args(argv)
    server = StubServer(args.host, args.port, delay_s=args.delay,
                        max_model_len=args.max_model_len, slots=args.slots, props=args.props,
                        cut_at_max_tokens=args.cut_at_max_tokens,
                        require_max_completion_tokens=args.require_max_completion_tokens).start()
    return serve_until_stopped(server)


def serve_until_stopped(server: StubServer) -> int:
    """Say where ``server`` (started) serves, as ``spawn`` reads it, and serve until SIGTERM
    or Ctrl-C. -> 0."""
    print(f"serving {server.url} (Ctrl-C stops)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
