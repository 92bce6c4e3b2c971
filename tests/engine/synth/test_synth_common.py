"""engine/stages/synth_common.py: the item pipeline (real HTTP to the scripted server),
JSON rounds with retries, and which LLM failures a rerun may fix.

Run: .venv/bin/python -m pytest tests/engine/synth/test_synth_common.py -q
"""

from __future__ import annotations

import threading
import time

import pytest
from openai_stub_server import Reply

from engine.llm import ChatRequest, ChatResult, make_client
from engine.schema import OpenAIEndpoint
from engine.stages.synth_common import (
    Done,
    JSONAnswer,
    SynthTally,
    is_transient,
    json_round,
    pipeline_width,
    run_pipeline_items,
)


def request(text: str, k: int = 0) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), sample_index=k, seed=0)


def client_for(stub, tmp_path, concurrency=8):
    return make_client(OpenAIEndpoint(base_url=stub.url, model="m", max_concurrency=concurrency),
                       cache_dir=tmp_path / "cache")


def test_commits_come_in_item_order_whatever_order_answers_arrive_in(openai_stub, tmp_path):
    # Item i answers after (10 - i) * 20 ms: the last items finish first.
    openai_stub.rule = lambda body, attempt: Reply(
        delay_s=(10 - int(body["messages"][0]["content"])) * 0.02, text="x")
    client = client_for(openai_stub, tmp_path)
    committed, arrived = [], []
    try:
        out = run_pipeline_items(
            client, list(range(10)), first=lambda i: [request(str(i))],
            then=lambda i, results: (arrived.append(i), Done(results[0].text))[1],
            commit=lambda i, value: committed.append((i, value)),
            stop=lambda: False, width=10, overlap=True, tick_s=0.01)
    finally:
        client.close()
    assert arrived != sorted(arrived)  # answers really came out of order
    assert committed == [(i, "x") for i in range(10)] and out.committed == 10
    assert not out.interrupted


def test_an_item_asks_several_rounds_before_it_is_done(openai_stub, tmp_path):
    client = client_for(openai_stub, tmp_path)
    rounds: dict[int, int] = {}

    def then(i, results):
        rounds[i] = rounds.get(i, 0) + 1
        if rounds[i] < 3:  # e.g. a JSON retry, then a second step
            return [request(f"{i} round {rounds[i]}"), request(f"{i} other {rounds[i]}")]
        return Done(rounds[i])

    values = []
    try:
        for overlap in (False, True):
            rounds.clear()
            values.clear()
            run_pipeline_items(client, list(range(5)), first=lambda i: [request(str(i))],
                               then=then, commit=lambda i, v: values.append(v),
                               stop=lambda: False, width=2, overlap=overlap, tick_s=0.01)
            assert values == [3] * 5
    finally:
        client.close()
    # 5 items x (1 + 2 + 2) requests, the second pass all from the cache
    assert len(openai_stub.chat_requests()) == 25


def test_stop_starts_no_new_item_and_cancels_calls_in_flight(openai_stub, tmp_path):
    openai_stub.rule = lambda body, attempt: Reply(delay_s=0.05, text="x")
    client = client_for(openai_stub, tmp_path, concurrency=2)
    stop = threading.Event()
    committed = []

    def commit(i, value):
        committed.append(i)
        if len(committed) == 3:
            stop.set()

    started = time.monotonic()
    try:
        out = run_pipeline_items(client, list(range(40)), first=lambda i: [request(str(i))],
                                 then=lambda i, r: Done(None), commit=commit, stop=stop.is_set,
                                 width=4, overlap=True, tick_s=0.01)
    finally:
        client.close()
    assert out.interrupted and 3 <= out.committed < 10
    assert committed == list(range(out.committed))
    assert time.monotonic() - started < 2.0  # 40 items would take 1 s at this rate


def test_an_error_in_a_stage_callback_is_raised_not_swallowed(openai_stub, tmp_path):
    client = client_for(openai_stub, tmp_path)

    def then(i, results):
        raise RuntimeError(f"bug on item {i}")

    try:
        with pytest.raises(RuntimeError, match="bug on item"):
            run_pipeline_items(client, [0, 1], first=lambda i: [request(str(i))], then=then,
                               commit=lambda i, v: None, stop=lambda: False, width=2,
                               overlap=True)
    finally:
        client.close()


def test_json_round_retries_as_new_samples_then_gives_the_reason():
    tally = SynthTally()
    answer = JSONAnswer()
    req = request("q", k=4)
    retry = json_round(answer, req, ChatResult(text="not json at all"), retries=1, tally=tally)
    assert retry.sample_index == 5 and answer.error.startswith("no_json")
    assert json_round(answer, req, ChatResult(text='{"a": 1'), retries=1, tally=tally) is None
    assert answer.error.startswith("invalid: ")  # the model stopped: a broken answer
    assert answer.samples == 2 and tally.json_failed == 2
    cut = JSONAnswer()
    json_round(cut, req, ChatResult(text='{"a": 1', finish_reason="length"), retries=0,
               tally=tally)
    assert cut.error.startswith("truncated: the answer hit max_tokens")
    ok = JSONAnswer()
    assert json_round(ok, req, ChatResult(text='{"a": 1,}'), retries=0, tally=tally) is None
    assert ok.ok and ok.value == {"a": 1} and ok.repairs == ("trailing_comma",)


@pytest.mark.parametrize("kind, transient", [
    ("timeout", True), ("connection", True), ("bad_response", True), ("http_429", True),
    ("http_500", True), ("http_503", True), ("http_408", True), ("http_400", False),
    ("http_413", False), ("http_422", False), ("bad_request", False),
])
def test_which_failures_a_rerun_may_fix(kind, transient):
    assert is_transient(kind) is transient


def test_http_endpoints_get_a_wide_window_and_overlapping_calls(openai_stub, tmp_path):
    client = client_for(openai_stub, tmp_path, concurrency=64)
    try:
        assert pipeline_width(client, 8) == (64, True)
        assert pipeline_width(client, 1) == (512, True)
    finally:
        client.close()


# --- shape checks: an answer is "ok" only when its stage can use it (issue #16)


def test_ask_json_applies_each_requests_own_check_and_retries_what_it_refuses(openai_stub,
                                                                             tmp_path):
    from engine.stages.synth_common import ask_json

    openai_stub.rule = lambda body, attempt: Reply(text='```json\n{"a": []}\n```')
    client = client_for(openai_stub, tmp_path)
    tally = SynthTally()
    try:
        answers = ask_json(client, [request("first"), request("second")], retries=2,
                           tally=tally, checks=[None, lambda v: None if v["a"] else
                                                "empty: nothing under a"])
    finally:
        client.close()
    assert answers[0].ok and answers[0].samples == 1
    assert answers[1].error == "empty: nothing under a" and answers[1].samples == 3
    assert len(openai_stub.chat_requests()) == 4 and tally.json_failed == 3


def test_the_stages_shape_checks_refuse_what_would_be_an_empty_record():
    from engine.stages.evolve import check_expansion
    from engine.stages.features import check_extraction
    from engine.stages.tasks import check_select_for
    from engine.synth.feature_tree import json_to_tree

    sample = {"algorithms": {"graph": ["bfs"]}}
    check = check_expansion(json_to_tree(sample))
    assert check({}).startswith("empty: ")
    assert check(sample).startswith("empty: ")  # sent back unchanged
    assert "outside the sampled categories" in check({"cooking": ["knives"]})
    assert check({"algorithms": {"graph": ["bfs", "dfs"]}}) is None
    assert check_extraction({"algorithms": {}, "summary": "x"}).startswith("empty: ")
    assert check_extraction({"algorithms": ["greedy"]}) is None
    select = check_select_for(json_to_tree({"algorithms": {"graph": ["bfs", "dfs"]}}))
    strategy = "one paragraph"
    assert select({"selected_features": {"cooking": ["knives"]},
                   "integration_strategy": strategy}).startswith("outside: ")
    assert select({"selected_features": {"algorithms": {"graph": ["dfs"]}},
                   "integration_strategy": strategy}) is None
