"""Streamed items vs batches: what a long tail of slow answers costs a synthesis stage.

Run: ``python tests/bench/synth_pipeline.py [--items 384] [--per-item 4] [--concurrency 32]
[--median 0.05] [--sigma 1.0]``. Starts the scripted OpenAI-compatible server
(tests/openai_stub_server.py) in this process; each answer comes after a delay drawn from a
log-normal distribution (a median of ``median`` seconds, spread ``sigma``, capped at 40x the
median) that is a function of the request, like the long tail of long-CoT answer lengths.
The same items (``per-item`` requests each, as the solutions stage asks N candidates) go
through ``engine.stages.synth_common.run_pipeline_items`` twice, with fresh caches:

- ``batches``: one call at a time over ``width`` items (``overlap=False``), i.e. the next
  batch starts only when the slowest answer of the last one is in;
- ``streamed``: ``overlap=True``, what the stages use on HTTP endpoints: new calls start while
  slow ones are still out.

``width`` (items in flight) defaults to what ``pipeline_width`` gives the stages (8x the
concurrency over the requests per item). Measured here (2 cores, 2026-12-03), sigma 1.0:
batches 0.55 of ideal, streamed 0.93, speedup 1.68; sigma 0.3: 0.64 / 0.95 / 1.48.

Prints one JSON line: both wall times, the ideal time (total delay / concurrency), each
mode's efficiency (ideal / measured) and ``speedup`` = batches / streamed, measured side by
side in one run. A benchmark, not a test: pytest does not collect tests/bench.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The repo first: tests/engine (a folder of tests) must not shadow the engine package.
sys.path[:0] = [str(REPO), str(REPO / "tests")]  # tests/: the stub server

from openai_stub_server import Reply, StubServer  # noqa: E402

from engine.llm import ChatRequest, make_client  # noqa: E402
from engine.schema import OpenAIEndpoint  # noqa: E402
from engine.stages.synth_common import Done, run_pipeline_items  # noqa: E402


def delay_of(body: dict, median: float, sigma: float) -> float:
    h = hashlib.sha256(json.dumps([body["messages"], body.get("seed")]).encode()).digest()
    u = (int.from_bytes(h[:8], "big") + 0.5) / 2**64
    z = math.sqrt(2) * _erfinv(2 * u - 1)
    return min(median * math.exp(sigma * z), 40 * median)


def _erfinv(y: float) -> float:
    # Winitzki's approximation, then two Newton steps: plenty for drawing delays.
    a = 0.147
    ln = math.log(1 - y * y)
    x = math.copysign(math.sqrt(math.sqrt((2 / (math.pi * a) + ln / 2) ** 2 - ln / a)
                                - (2 / (math.pi * a) + ln / 2)), y)
    for _ in range(2):
        x -= (math.erf(x) - y) / (2 / math.sqrt(math.pi) * math.exp(-x * x))
    return x


def run_mode(url: str, items: list[int], per_item: int, concurrency: int, overlap: bool,
             width: int) -> float:
    endpoint = OpenAIEndpoint(base_url=url, model="stub-model", max_concurrency=concurrency)
    with tempfile.TemporaryDirectory() as cache_dir:
        client = make_client(endpoint, cache_dir=cache_dir)
        try:
            start = time.perf_counter()
            out = run_pipeline_items(
                client, items,
                first=lambda i: [ChatRequest(messages=({"role": "user", "content": f"item {i}"},),
                                             seed=0, sample_index=k) for k in range(per_item)],
                then=lambda i, results: Done(results),
                commit=lambda i, results: None,
                stop=lambda: False, width=width, overlap=overlap, tick_s=0.05)
            elapsed = time.perf_counter() - start
        finally:
            client.close()
    assert out.committed == len(items)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=384)
    p.add_argument("--per-item", type=int, default=4)
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--median", type=float, default=0.05)
    p.add_argument("--sigma", type=float, default=1.0)
    p.add_argument("--width", type=int, default=0, help="items in flight (default: what "
                   "the stages use)")
    args = p.parse_args(argv)
    items = list(range(args.items))
    width = args.width or max(8 * args.concurrency // args.per_item, 16)  # pipeline_width
    with StubServer() as server:
        delays: list[float] = []

        def rule(body: dict, attempt: int) -> Reply:
            d = delay_of(body, args.median, args.sigma)
            delays.append(d)
            return Reply(delay_s=d, text="ok")

        server.rule = rule
        batches = run_mode(server.url, items, args.per_item, args.concurrency, False, width)
        ideal = sum(delays) / args.concurrency
        delays.clear()
        streamed = run_mode(server.url, items, args.per_item, args.concurrency, True, width)
    print(json.dumps({
        "items": args.items, "requests": args.items * args.per_item,
        "concurrency": args.concurrency, "median_delay_s": args.median, "sigma": args.sigma,
        "ideal_s": round(ideal, 3), "batches_s": round(batches, 3),
        "streamed_s": round(streamed, 3), "efficiency_batches": round(ideal / batches, 3),
        "efficiency_streamed": round(ideal / streamed, 3),
        "speedup": round(batches / streamed, 2),
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
