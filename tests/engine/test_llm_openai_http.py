"""The OpenAI-compatible HTTP backend against the scripted server (real HTTP on loopback).

    .venv/bin/python -m pytest tests/engine/test_llm_openai_http.py -q

Each test attacks one property: which failures are retried (and how often), Retry-After,
the concurrency bound, usage accounting, fatal errors, the key never leaking, metrics.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

import pytest

from engine.events import MetricEvent, read_events
from engine.llm import ChatRequest, LLMClient, LLMError, make_client, run_batch
from engine.llm.openai_http import OpenAIClient, retry_after_seconds
from engine.schema import OpenAIEndpoint

FAST = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05}


def endpoint(url: str, **kw) -> OpenAIEndpoint:
    return OpenAIEndpoint(base_url=url, model="stub-model", **{"timeout_s": 5.0, **kw})


def client_for(stub, **kw) -> OpenAIClient:
    opts = {k: kw.pop(k) for k in list(kw) if k in ("cache_dir", "events", "name")}
    return make_client(endpoint(stub.url, **kw), **opts, **FAST)


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), max_tokens=64, **kw)


def test_a_canned_answer_comes_back_with_text_usage_and_stop():
    from openai_stub_server import StubServer

    with StubServer() as stub:
        client = client_for(stub)
        assert isinstance(client, LLMClient)
        [r] = run_batch(client, [ask("add two numbers")])
    assert r.ok and r.finish_reason == "stop" and not r.cached
    assert "```python" in r.text
    assert r.usage.prompt_tokens == 3 and r.usage.completion_tokens == len(r.text.split())
    assert r.attempts == 1


def test_the_request_body_carries_model_messages_and_sampling_params(openai_stub):
    req = ChatRequest(messages=({"role": "system", "content": "be brief"},
                                {"role": "user", "content": "hi"}),
                      temperature=0.6, top_p=0.95, max_tokens=123, stop=("END",), seed=7,
                      sample_index=3)
    run_batch(client_for(openai_stub), [req])
    [rec] = openai_stub.chat_requests()
    assert rec.path == "/v1/chat/completions"
    assert rec.body == {
        "model": "stub-model", "messages": [dict(m) for m in req.messages],
        "temperature": 0.6, "top_p": 0.95, "max_tokens": 123, "n": 1, "stream": False,
        "stop": ["END"], "seed": 10,  # seed + sample_index
    }


def test_results_keep_the_order_of_the_requests(openai_stub):
    # Later requests answer first (shorter delays); results must still line up.
    reqs = [ask(f"q{i} [[stub delay={0.02 * (10 - i)}]]") for i in range(10)]
    results = run_batch(client_for(openai_stub, max_concurrency=10), reqs)
    by_prompt = {r.last_user: r for r in openai_stub.chat_requests()}
    from openai_stub_server import canned_text

    for req, res in zip(reqs, results, strict=True):
        assert res.text == canned_text(by_prompt[req.messages[0]["content"]].body)


def test_a_429_burst_is_retried_until_it_succeeds(openai_stub):
    client = client_for(openai_stub, max_retries=5)
    [r] = run_batch(client, [ask("busy [[stub status=429 times=3]]")])
    assert r.ok and r.attempts == 4
    assert [x.status for x in openai_stub.chat_requests()] == [429, 429, 429, 200]
    assert client.stats.errors["http_429"] == 3 and client.stats.retries == 3


def test_500s_are_retried_and_give_up_after_max_retries(openai_stub):
    client = client_for(openai_stub, max_retries=2)
    [r] = run_batch(client, [ask("broken [[stub status=500]]")])
    assert not r.ok and r.error == "http_500" and r.finish_reason == "error"
    assert r.attempts == 3 and len(openai_stub.chat_requests()) == 3
    assert "HTTP 500" in r.error_detail


def test_backoff_waits_are_full_jitter_over_a_doubling_ceiling(openai_stub):
    # Full jitter draws from [0, base * 2**n]; with a seeded rng the waits are known.
    import random

    client = make_client(endpoint(openai_stub.url, max_retries=3), backoff_base_s=0.1,
                         backoff_cap_s=10.0, rng=random.Random(1))
    rng = random.Random(1)
    expected = [rng.uniform(0, 0.1 * 2**n) for n in range(3)]
    run_batch(client, [ask("flaky [[stub status=503 times=3]]")])
    starts = [x.start for x in openai_stub.chat_requests()]
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert len(gaps) == 3
    for gap, want in zip(gaps, expected, strict=True):
        assert gap >= want - 0.005


def test_retry_after_is_honoured(openai_stub):
    client = client_for(openai_stub, max_retries=2)
    [r] = run_batch(client, [ask("slow down [[stub status=429 times=1 retry_after=1]]")])
    first, second = openai_stub.chat_requests()
    assert r.ok and second.start - first.end >= 1.0


def test_retry_after_reads_seconds_and_http_dates():
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("0.5") == 0.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_a_timeout_is_retried(openai_stub):
    client = client_for(openai_stub, timeout_s=1.0, max_retries=2)
    t0 = time.monotonic()
    [r] = run_batch(client, [ask("think hard [[stub delay=3 times=1]]")])
    assert r.ok and r.attempts == 2
    assert 1.0 <= time.monotonic() - t0 < 2.5  # gave up on the first after the 1 s deadline
    assert client.stats.errors["timeout"] == 1


def test_a_timeout_on_every_attempt_is_a_failed_result(openai_stub):
    client = client_for(openai_stub, timeout_s=1.0, max_retries=1)
    [r] = run_batch(client, [ask("hang [[stub delay=3]]")])
    assert r.error == "timeout" and r.attempts == 2


def test_a_dropped_connection_is_retried(openai_stub):
    client = client_for(openai_stub, max_retries=3)
    [r] = run_batch(client, [ask("flaky link [[stub drop times=2]]")])
    assert r.ok and r.attempts == 3
    assert client.stats.errors["connection"] == 2


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = make_client(endpoint(f"http://127.0.0.1:{port}/v1", max_retries=3), **FAST)
    [r] = run_batch(client, [ask("anyone there?")])
    assert r.error == "connection" and r.attempts == 4
    assert "Cannot connect" in r.error_detail
    assert client.stats.errors["connection"] == 4 and client.stats.retries == 3


def test_malformed_json_is_retried(openai_stub):
    client = client_for(openai_stub, max_retries=3)
    [r] = run_batch(client, [ask("garbled [[stub malformed times=2]]")])
    assert r.ok and r.attempts == 3 and client.stats.errors["bad_response"] == 2


def test_malformed_json_on_every_attempt_is_a_bad_response(openai_stub):
    [r] = run_batch(client_for(openai_stub, max_retries=1), [ask("garbled [[stub malformed]]")])
    assert r.error == "bad_response" and "not a chat completion" in r.error_detail


def test_a_400_is_not_retried_and_is_a_result(openai_stub):
    client = client_for(openai_stub, max_retries=5)
    results = run_batch(client, [ask("too long [[stub status=400]]"), ask("fine")])
    assert results[0].error == "http_400" and results[0].attempts == 1
    assert results[1].ok  # one bad request does not sink the batch
    assert len(openai_stub.chat_requests()) == 2


def test_a_401_is_not_retried_and_raises_naming_the_endpoint_and_variable(openai_stub,
                                                                          monkeypatch):
    monkeypatch.setenv("STUB_API_KEY", "sk-wrong-but-secret-0123456789")
    client = client_for(openai_stub, api_key_env="STUB_API_KEY", max_retries=5, name="generator")
    with pytest.raises(LLMError) as err:
        run_batch(client, [ask("who am i [[stub status=401]]")])
    msg = str(err.value)
    assert "'generator'" in msg and "$STUB_API_KEY" in msg and "401" in msg
    assert "sk-wrong" not in msg
    assert len(openai_stub.chat_requests()) == 1


def test_a_404_raises_pointing_at_base_url_and_model(openai_stub):
    client = make_client(endpoint(openai_stub.url.removesuffix("/v1")), name="solver", **FAST)
    with pytest.raises(LLMError, match=r"llms\.solver\.base_url"):
        run_batch(client, [ask("hi")])


def test_a_missing_key_variable_is_a_clear_error_before_any_request(openai_stub, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(LLMError, match=r"\$NOT_SET_ANYWHERE, which is not set"):
        client_for(openai_stub, api_key_env="NOT_SET_ANYWHERE", name="generator")
    assert openai_stub.chat_requests() == []


def test_concurrency_never_exceeds_the_bound(openai_stub):
    client = client_for(openai_stub, max_concurrency=5)
    results = run_batch(client, [ask(f"q{i} [[stub delay=0.05]]") for i in range(40)])
    assert all(r.ok for r in results)
    assert 2 <= openai_stub.max_in_flight <= 5


def test_the_bound_holds_across_concurrent_generate_calls(openai_stub):
    client = client_for(openai_stub, max_concurrency=4)

    async def main():
        batches = [[ask(f"b{b} q{i} [[stub delay=0.05]]") for i in range(8)] for b in range(3)]
        try:
            return await asyncio.gather(*(client.generate(b) for b in batches))
        finally:
            await client.aclose()

    out = asyncio.run(main())
    assert sum(len(b) for b in out) == 24
    assert openai_stub.max_in_flight <= 4


def test_usage_is_summed_over_calls(openai_stub):
    client = client_for(openai_stub)
    results = run_batch(client, [ask("one two three"), ask("four five"), ask("six")])
    served = [r.body for r in openai_stub.chat_requests()]
    assert client.stats.prompt_tokens == sum(r.usage.prompt_tokens for r in results) == 6
    from openai_stub_server import canned_text

    assert client.stats.completion_tokens == sum(len(canned_text(b).split()) for b in served)
    assert client.stats.calls == 3


def test_truncated_output_is_reported_as_length(openai_stub):
    client = client_for(openai_stub)
    [r] = run_batch(client, [ask("write a lot [[stub truncate]]")])
    assert r.ok and r.truncated and r.finish_reason == "length"
    assert client.stats.truncated == 1


def test_reasoning_content_is_kept_apart_from_the_answer(openai_stub):
    from openai_stub_server import Reply

    openai_stub.enqueue(Reply(text="final", reasoning="let me think"))
    [r] = run_batch(client_for(openai_stub), [ask("why")])
    assert (r.text, r.reasoning) == ("final", "let me think")


def test_identical_requests_in_one_batch_are_sent_once(openai_stub):
    results = run_batch(client_for(openai_stub), [ask("same"), ask("same", tag="b")])
    assert len(openai_stub.chat_requests()) == 1
    assert results[0].text == results[1].text and results[1].tag == "b"


def test_on_result_sees_every_result_as_it_arrives(openai_stub):
    seen = []
    reqs = [ask(f"q{i}") for i in range(5)]
    results = run_batch(client_for(openai_stub), reqs, on_result=lambda i, r: seen.append(i))
    assert sorted(seen) == list(range(5)) and len(results) == 5


def test_run_batch_refuses_to_run_inside_an_event_loop(openai_stub):
    client = client_for(openai_stub)

    async def main():
        run_batch(client, [ask("x")])

    with pytest.raises(RuntimeError, match="await client.generate"):
        asyncio.run(main())


def test_metrics_reach_the_event_stream(openai_stub, tmp_path):
    from engine.events import EventWriter

    with EventWriter(tmp_path / "features.0.jsonl", "features") as events:
        client = client_for(openai_stub, events=events, max_retries=3)
        run_batch(client, [ask("a [[stub status=429 times=1]]"), ask("b"), ask("c")])
    metrics = [e for e in read_events(tmp_path / "features.0.jsonl") if isinstance(e, MetricEvent)]
    last = metrics[-1].data
    assert last["llm/requests"] == 3 and last["llm/errors/http_429"] == 1
    assert last["llm/retries"] == 1 and last["llm/requests_per_s"] > 0
    assert last["llm/tokens_per_s"] > 0 and last["llm/cache_hits"] == 0
    assert metrics[-1].step == 3


def test_the_api_key_is_sent_but_never_logged_cached_or_shown(openai_stub, tmp_path,
                                                              monkeypatch, caplog):
    secret = "sk-test-9f8e7d6c5b4a39281706aabbccdd"
    monkeypatch.setenv("STUB_API_KEY", secret)
    caplog.set_level(logging.DEBUG)  # aiohttp logs at debug too
    from engine.events import EventWriter

    with EventWriter(tmp_path / "events.jsonl", "features") as events:
        client = client_for(openai_stub, api_key_env="STUB_API_KEY", cache_dir=tmp_path / "cache",
                            events=events)
        results = run_batch(client, [ask("hello"), ask("fail [[stub status=400]]")])
        client.close()
    assert openai_stub.chat_requests()[0].headers["Authorization"] == f"Bearer {secret}"
    assert secret not in caplog.text and secret not in repr(client)
    assert all(secret not in (r.error_detail or "") for r in results)
    for f in [*tmp_path.rglob("*")]:
        if f.is_file():
            assert secret.encode() not in f.read_bytes(), f


def test_the_proxy_comes_from_the_environment_once_and_no_proxy_bypasses_it(monkeypatch):
    from engine.llm.openai_http import proxy_for

    for var in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    assert proxy_for("https://api.example.com/v1/chat/completions") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    monkeypatch.setenv("NO_PROXY", "gpu-node-3,127.0.0.1")
    assert proxy_for("https://api.example.com/v1/chat/completions") == "http://proxy.corp:3128"
    assert proxy_for("http://gpu-node-3:8000/v1/chat/completions") is None
    assert proxy_for("http://127.0.0.1:8000/v1/chat/completions") is None
