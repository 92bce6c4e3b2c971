"""Limits real servers enforce, against the stub server running as its own process.

    .venv/bin/python -m pytest tests/engine/test_llm_endpoint_limits.py -q

Each test reproduces one finding of issue #16 with the stub acting as the server that showed
it (tests/openai_stub_server.py ``spawn``; tokens are words there): vLLM's 400 when prompt +
max_tokens is over ``max_model_len``, a one-slot server that queues (llama.cpp), a cut-off
JSON answer asked again with the same budget, and OpenAI's reasoning models that refuse
``max_tokens``. Where a behaviour could pass by accident, a control shows the failure it
prevents.
"""

from __future__ import annotations

import pytest
from openai_stub_server import spawn

from engine.llm import ChatRequest, make_client, run_batch
from engine.schema import OpenAIEndpoint
from engine.stages.synth_common import SynthTally, ask_json, is_transient

FAST = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05}


def client(url: str, **kw):
    ep = OpenAIEndpoint(base_url=url, model="stub-model", **{"timeout_s": 10.0, **kw})
    return make_client(ep, **FAST)


def ask(text: str, max_tokens: int = 32768, **kw) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), max_tokens=max_tokens,
                       **kw)


def words(n: int) -> str:
    return " ".join(f"w{i}" for i in range(n))


# ---------------------------------------------------------------------------------------------
# Context length


def test_a_budget_over_max_model_len_is_cut_to_what_the_context_leaves():
    with spawn("--max-model-len", "300") as stub:
        c = client(stub.url)
        [r] = run_batch(c, [ask("summarise " + words(49))])  # 50 words of prompt
        [sent] = stub.chat_requests()
    assert r.ok, r.error_detail
    assert c.limits.context_length == 300 and "max_model_len" in c.limits.context_source
    assert sent["status"] == 200 and sent["body"]["max_tokens"] <= 250
    assert r.max_tokens_sent == sent["body"]["max_tokens"]
    assert r.max_tokens_limit == 250  # 300 - the 50 prompt tokens the server counted


def test_a_context_400_teaches_the_real_context_and_the_request_is_resent_to_fit():
    # The config claims a bigger context than the server has: its 400 (vLLM's words) wins.
    with spawn("--max-model-len", "300") as stub:
        c = client(stub.url, context_length=4096)
        [r] = run_batch(c, [ask("summarise " + words(49))])
        sent = stub.chat_requests()
    assert r.ok and r.attempts == 2
    assert [s["status"] for s in sent] == [400, 200]
    assert sent[1]["body"]["max_tokens"] == 250  # exactly 300 - 50, from the 400's numbers
    assert c.limits.context_length == 300 and c.limits.context_source == "a context-length 400"
    assert c.stats.retries == 0  # fixed by the client, not a transport retry


def test_a_prompt_longer_than_the_context_is_a_permanent_400_that_names_the_numbers():
    with spawn("--max-model-len", "300") as stub:
        c = client(stub.url)
        [r] = run_batch(c, [ask(words(400))])
    assert not r.ok and r.error == "http_400" and not is_transient(r.error)
    assert "maximum context length is 300" in r.error_detail
    assert "sent max_tokens=" in r.error_detail and "context 300" in r.error_detail


def test_without_a_known_context_the_configured_budget_is_sent_as_is():
    # The control for the tests above: nothing reported, nothing configured, nothing cut.
    with spawn() as stub:
        c = client(stub.url)
        run_batch(c, [ask("hello")])
        [sent] = stub.chat_requests()
    assert c.limits.context_length is None and sent["body"]["max_tokens"] == 32768


# ---------------------------------------------------------------------------------------------
# Server slots


@pytest.mark.parametrize("slots", [{"parallel_slots": 1}, {}], ids=["configured", "from_props"])
def test_four_in_flight_on_a_one_slot_server_none_time_out(slots):
    # Each answer takes 0.4 s and the server works on one at a time: the 4th would wait 1.2 s
    # in its queue, over the 1 s timeout, if all four were sent at once.
    with spawn("--slots", "1", "--delay", "0.4", "--props") as stub:
        c = client(stub.url, max_concurrency=4, timeout_s=1.0, max_retries=0, **slots)
        results = run_batch(c, [ask(f"q{i}", max_tokens=16) for i in range(4)])
    assert [r.error for r in results] == [None] * 4
    assert c.in_flight == 1


def test_four_in_flight_on_a_one_slot_server_time_out_when_sent_at_once():
    # The control: a server that does not report its slots, and none configured.
    with spawn("--slots", "1", "--delay", "0.4") as stub:
        c = client(stub.url, max_concurrency=4, timeout_s=1.0, max_retries=0)
        results = run_batch(c, [ask(f"q{i}", max_tokens=16) for i in range(4)])
    assert c.in_flight == 4
    assert sum(r.error == "timeout" for r in results) >= 1


def test_llama_cpp_props_give_the_context_and_the_slots():
    with spawn("--slots", "2", "--props", "--max-model-len", "512") as stub:
        c = client(stub.url, max_concurrency=8)
        run_batch(c, [ask("hi")])
    assert (c.limits.parallel_slots, c.limits.slots_source) == (2, "/props total_slots")
    assert c.limits.context_length == 512 and c.in_flight == 2


# ---------------------------------------------------------------------------------------------
# max_completion_tokens


def test_a_server_that_wants_max_completion_tokens_gets_it_from_then_on():
    with spawn("--require-max-completion-tokens") as stub:
        c = client(stub.url, max_concurrency=1)
        results = run_batch(c, [ask("a", max_tokens=50), ask("b", max_tokens=60)])
        sent = stub.chat_requests()
    assert all(r.ok for r in results) and c.reply_param == "max_completion_tokens"
    assert [s["status"] for s in sent] == [400, 200, 200]
    assert sent[1]["body"]["max_completion_tokens"] == 50 and "max_tokens" not in sent[1]["body"]
    assert sent[2]["body"]["max_completion_tokens"] == 60


def test_max_completion_tokens_from_the_config_is_sent_from_the_first_request():
    with spawn("--require-max-completion-tokens") as stub:
        c = client(stub.url, reply_limit_param="max_completion_tokens")
        [r] = run_batch(c, [ask("a", max_tokens=50)])
        assert [s["status"] for s in stub.chat_requests()] == [200]
    assert r.ok


def test_a_pinned_max_tokens_is_not_switched_and_the_400_is_kept():
    with spawn("--require-max-completion-tokens") as stub:
        c = client(stub.url, reply_limit_param="max_tokens")
        [r] = run_batch(c, [ask("a", max_tokens=50)])
    assert r.error == "http_400" and "max_completion_tokens" in r.error_detail


# ---------------------------------------------------------------------------------------------
# Truncated JSON (synth_common.json_round)


def test_a_cut_off_json_answer_is_asked_again_with_twice_the_budget():
    with spawn("--cut-at-max-tokens") as stub:
        c = client(stub.url)
        tally = SynthTally()
        # 30 items: 32 "tokens" of JSON; 16 cuts it, 32 holds it.
        [a] = ask_json(c, [ask("list [[stub json_words=30]]", max_tokens=16)], retries=2,
                       tally=tally)
        budgets = [s["body"]["max_tokens"] for s in stub.chat_requests()]
    assert a.ok and len(a.value["words"]) == 30
    assert budgets == [16, 32] and a.samples == 2


def test_the_same_budget_would_have_been_cut_again():
    # The control: what the old retry did (same max_tokens, a new sample) fails every time.
    with spawn("--cut-at-max-tokens") as stub:
        c = client(stub.url)
        reqs = [ask("list [[stub json_words=30]]", max_tokens=16, sample_index=i)
                for i in range(3)]
        results = run_batch(c, reqs)
    assert all(r.truncated for r in results)


def test_a_cut_off_answer_at_the_endpoints_limit_is_rejected_naming_the_limit():
    with spawn("--cut-at-max-tokens", "--max-model-len", "40") as stub:
        c = client(stub.url)
        # 3 prompt words: 37 tokens left of 40.
        [a] = ask_json(c, [ask("list [[stub json_words=60]]")], retries=3, tally=SynthTally())
        n_sent = len(stub.chat_requests())
    assert not a.ok and a.error.startswith(
        "truncated: the answer filled the 37 tokens the endpoint's context leaves after this "
        "prompt")
    assert a.samples == 1 and n_sent <= 2  # no retry that would be cut the same way
