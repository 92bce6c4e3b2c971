"""The backend-independent part of the LLM layer: requests, results, stats, the factory.

    .venv/bin/python -m pytest tests/engine/test_llm_base.py -q
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine.events import METRIC_NAME_PATTERN, EventWriter, MetricEvent, read_events
from engine.llm import ChatRequest, ChatResult, LLMError, LLMStats, Usage, make_client
from engine.schema import PipelineConfig

REPO = Path(__file__).resolve().parents[2]


def test_a_request_takes_a_stage_sections_sampling_fields():
    cfg = PipelineConfig()
    req = ChatRequest.for_stage(cfg.solutions, [{"role": "user", "content": "solve"}])
    assert (req.temperature, req.top_p, req.max_tokens) == (0.6, 0.95, 32768)
    tasks = ChatRequest.for_stage(cfg.tasks, [{"role": "user", "content": "x"}], max_tokens=99)
    assert (tasks.temperature, tasks.top_p, tasks.max_tokens) == (0.7, 0.8, 99)


def test_samples_differ_only_in_sample_index_and_get_distinct_seeds():
    reqs = ChatRequest(messages=({"role": "user", "content": "x"},), seed=41).with_samples(3)
    assert [r.sample_index for r in reqs] == [0, 1, 2]
    assert [r.backend_seed() for r in reqs] == [41, 42, 43]
    assert ChatRequest(messages=({"role": "user", "content": "x"},)).backend_seed() is None


def test_a_request_copies_its_messages_so_later_edits_do_not_leak():
    msgs = [{"role": "user", "content": "original", "name": "dropped"}]
    req = ChatRequest(messages=tuple(msgs))
    msgs[0]["content"] = "edited"
    assert req.messages == ({"role": "user", "content": "original"},)


@pytest.mark.parametrize("messages", [(), ({"role": "robot", "content": "x"},),
                                      ({"role": "user", "content": None},)])
def test_malformed_messages_are_refused(messages):
    with pytest.raises(ValueError):
        ChatRequest(messages=messages)


def test_stats_metrics_are_valid_metric_names_and_count_what_happened(tmp_path):
    import re

    stats = LLMStats()
    stats.record(ChatResult(text="a", usage=Usage(10, 5)))
    stats.record(ChatResult(text="b", usage=Usage(10, 7), finish_reason="length"))
    stats.record(ChatResult(text="c", cached=True, attempts=0))
    stats.record(ChatResult(error="timeout", finish_reason="error"))
    stats.note_error("timeout")
    stats.note_error("http_429")
    stats.note_retry()
    with EventWriter(tmp_path / "e.jsonl", "solutions") as w:
        stats.flush(w)
    [event] = read_events(tmp_path / "e.jsonl")
    assert isinstance(event, MetricEvent) and event.step == 4
    m = event.data
    assert all(re.match(METRIC_NAME_PATTERN, k) for k in m)
    assert (m["llm/requests"], m["llm/cache_hits"], m["llm/failed"], m["llm/truncated"]) == (
        3, 1, 1, 1)
    assert (m["llm/prompt_tokens"], m["llm/completion_tokens"]) == (20, 12)
    assert (m["llm/errors"], m["llm/errors/timeout"], m["llm/errors/http_429"]) == (2, 1, 1)
    assert m["llm/retries"] == 1 and m["llm/tokens_per_s"] > 0


def test_stats_rates_cover_the_window_since_the_last_flush():
    stats = LLMStats()
    stats.record(ChatResult(usage=Usage(1, 100)))
    assert stats.metrics()["llm/requests_per_s"] > 0
    assert stats.metrics()["llm/requests_per_s"] == 0  # nothing new since
    assert stats.metrics()["llm/requests"] == 1  # totals stay


def test_an_unknown_backend_is_a_clear_error():
    class Odd:
        backend = "carrier-pigeon"

    with pytest.raises(LLMError, match="carrier-pigeon"):
        make_client(Odd(), name="x")


def test_importing_the_layer_loads_no_backend_library():
    code = ("import sys, engine.llm; "
            "print(sorted(m for m in ('aiohttp', 'torch', 'transformers', 'vllm') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


# --- the llm/ metrics while batches run (issue #16: a zero-rate twin at the same step)


def _slow_batch(stats, events, n, delay_s, interval_s):
    """``generate_cached`` over ``n`` requests whose answers arrive ``delay_s`` apart."""
    import asyncio

    from engine.llm.base import generate_cached

    reqs = [ChatRequest(messages=({"role": "user", "content": f"q{i}"},)) for i in range(n)]

    async def run_misses(items, done):
        for i, _ in items:
            await asyncio.sleep(delay_s)
            done(i, ChatResult(text="a", usage=Usage(3, 10)))

    return generate_cached(reqs, backend="openai", model="m", cache=None, stats=stats,
                           run_misses=run_misses, events=events, flush_interval_s=interval_s)


def test_a_batch_longer_than_the_interval_writes_one_metric_per_step_with_real_rates(tmp_path):
    import asyncio

    stats = LLMStats()
    with EventWriter(tmp_path / "e.jsonl", "tasks") as w:
        asyncio.run(_slow_batch(stats, w, n=6, delay_s=0.05, interval_s=0.12))
    events = [e for e in read_events(tmp_path / "e.jsonl") if isinstance(e, MetricEvent)]
    steps = [e.step for e in events]
    assert len(events) >= 2 and steps == sorted(set(steps)) and steps[-1] == 6
    assert all(e.data["llm/requests_per_s"] > 0 and e.data["llm/tokens_per_s"] > 0
               for e in events)


def test_overlapping_batches_of_one_client_share_one_clock(tmp_path):
    import asyncio

    stats = LLMStats()

    async def both(w):
        await asyncio.gather(_slow_batch(stats, w, n=8, delay_s=0.03, interval_s=10.0),
                             _slow_batch(stats, w, n=2, delay_s=0.01, interval_s=10.0))

    with EventWriter(tmp_path / "e.jsonl", "tasks") as w:
        asyncio.run(both(w))
    events = [e for e in read_events(tmp_path / "e.jsonl") if isinstance(e, MetricEvent)]
    # The short batch ends while the long one runs: no metric then; one when the last ends.
    assert [e.step for e in events] == [10]
    assert events[0].data["llm/requests"] == 10 and events[0].data["llm/requests_per_s"] > 0
