"""How close the HTTP client comes to ideal concurrency against a fixed-latency server.

Run: ``python tests/bench/llm_concurrency.py [--requests 640] [--concurrency 64] [--delay 0.2]
[--cache] [--in-process]``. Starts the scripted OpenAI-compatible server
(tests/openai_stub_server.py) on loopback in its own process, answering every request after
``delay`` seconds, warms the client up with one round, then sends ``requests`` chat
completions through ``engine.llm`` with ``max_concurrency`` = ``concurrency`` and prints one
JSON line::

    {"requests": 640, "concurrency": 64, "delay_s": 0.2, "ideal_s": 2.0, "measured_s": ...,
     "efficiency": ..., "requests_per_s": ...}

``efficiency`` = ideal time (requests / concurrency * delay) / measured time; the target is
>= 0.9 at concurrency 64. ``--cache`` writes every result to a response cache in a temp dir
(what a stage does), to show the per-call commit does not cost concurrency. A benchmark, not
a test: pytest does not collect tests/bench, and nothing here asserts a speed. The server
and client share this machine's cores, so a loaded machine reads lower.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

STUB = Path(__file__).resolve().parents[1] / "openai_stub_server.py"
sys.path.insert(0, str(STUB.parent))  # tests/: the stub server

from openai_stub_server import StubServer  # noqa: E402

from engine.llm import ChatRequest, LLMStats, make_client, run_batch  # noqa: E402
from engine.schema import OpenAIEndpoint  # noqa: E402


@contextlib.contextmanager
def _server(delay: float, in_process: bool) -> Iterator[str]:
    """The stub server's /v1 URL; by default in its own process, as a real server would be."""
    if in_process:
        with StubServer(delay_s=delay) as server:
            yield server.url
        return
    proc = subprocess.Popen([sys.executable, str(STUB), "--port", "0", "--delay", str(delay)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()  # "serving http://127.0.0.1:PORT/v1 (Ctrl-C stops)"
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=640)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--delay", type=float, default=0.2, help="server seconds per answer")
    p.add_argument("--cache", action="store_true", help="cache every result on disk")
    p.add_argument("--in-process", action="store_true",
                   help="run the server on threads of this process (shares its GIL)")
    args = p.parse_args(argv)

    reqs = [ChatRequest(messages=({"role": "user", "content": f"bench request {i}"},),
                        max_tokens=256, temperature=0.7) for i in range(args.requests)]
    with _server(args.delay, args.in_process) as url, tempfile.TemporaryDirectory() as tmp:
        ep = OpenAIEndpoint(base_url=url, model="bench-model",
                            max_concurrency=args.concurrency, timeout_s=60, max_retries=0)
        client = make_client(ep, cache_dir=Path(tmp) if args.cache else None)
        warm = [ChatRequest(messages=({"role": "user", "content": f"warm-up {i}"},))
                for i in range(args.concurrency)]
        run_batch(client, warm)  # lazy imports and the first connects stay out of the timing
        client.stats = LLMStats()
        start = time.perf_counter()
        results = run_batch(client, reqs)
        measured = time.perf_counter() - start
        client.close()
    failures = sum(not r.ok for r in results)
    ideal = args.requests / args.concurrency * args.delay
    print(json.dumps({
        "requests": args.requests,
        "concurrency": args.concurrency,
        "delay_s": args.delay,
        "cache": args.cache,
        "ideal_s": round(ideal, 3),
        "measured_s": round(measured, 3),
        "efficiency": round(ideal / measured, 3),
        "requests_per_s": round(args.requests / measured, 1),
        "server": "in-process" if args.in_process else "subprocess",
        "failures": failures,
    }))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
