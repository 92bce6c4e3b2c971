"""The in-process backends: transformers with the tiny random model, and vLLM's CPU-testable parts.

    .venv/bin/python -m pytest tests/engine/test_llm_local_backends.py -q

The transformers tests are slow (importing torch takes seconds) and skip where torch or
transformers is absent (the headless CI venv). vLLM is not installed here: its
missing-library error, the pure request -> SamplingParams / LLM mappings and the client's
batching are tested against a stand-in for ``vllm.LLM``; tests/gpu/check_vllm_offline.py
runs the client against a real vLLM.
"""

from __future__ import annotations

import builtins
import sys
from types import SimpleNamespace

import pytest

from engine.llm import ChatRequest, LLMError, make_client, run_batch
from engine.llm.vllm_offline import VLLM_MISSING, llm_kwargs, sampling_params_kwargs
from engine.schema import TransformersEndpoint, VLLMOfflineEndpoint


def ask(text: str, **kw) -> ChatRequest:
    return ChatRequest(messages=({"role": "user", "content": text},), **kw)


# --- vLLM offline


def test_vllm_missing_says_it_needs_a_gpu_node_and_the_rollout_extra(monkeypatch, tmp_path):
    real_import = builtins.__import__

    def no_vllm(name, *args, **kwargs):
        if name == "vllm" or name.startswith("vllm."):
            raise ImportError("No module named 'vllm'", name="vllm")
        return real_import(name, *args, **kwargs)

    monkeypatch.setitem(sys.modules, "vllm", None)
    monkeypatch.setattr(builtins, "__import__", no_vllm)
    with pytest.raises(LLMError) as err:
        make_client(VLLMOfflineEndpoint(model="Qwen/Qwen2.5-Coder-7B-Instruct"), name="solver",
                    cache_dir=tmp_path)
    assert str(err.value) == VLLM_MISSING
    assert "CUDA GPU node" in VLLM_MISSING and "`rollout` extra" in VLLM_MISSING


def test_a_request_maps_onto_vllm_sampling_params():
    req = ask("x", temperature=0.6, top_p=0.95, max_tokens=32768, stop=("</code>",), seed=100,
              sample_index=7)
    assert sampling_params_kwargs(req) == {
        "n": 1, "temperature": 0.6, "top_p": 0.95, "max_tokens": 32768,
        "stop": ["</code>"], "seed": 107,
    }
    greedy = sampling_params_kwargs(ask("x", temperature=0.0, max_tokens=16))
    assert "seed" not in greedy and "stop" not in greedy and greedy["temperature"] == 0.0


def test_the_placement_overrides_the_endpoints_tensor_parallel_size():
    ep = VLLMOfflineEndpoint(model="m", tensor_parallel_size=2, max_model_len=4096)
    assert llm_kwargs(ep)["tensor_parallel_size"] == 2
    kw = llm_kwargs(ep, tensor_parallel=8)
    assert kw == {"model": "m", "tensor_parallel_size": 8, "gpu_memory_utilization": 0.85,
                  "dtype": "auto", "max_num_seqs": 256, "max_model_len": 4096}


def test_llm_options_reach_vllm_llm_and_win_over_the_endpoint():
    ep = VLLMOfflineEndpoint(model="m", max_num_seqs=8)
    kw = llm_kwargs(ep, llm_options={"enforce_eager": True, "max_num_seqs": 4})
    assert kw["enforce_eager"] is True and kw["max_num_seqs"] == 4 and kw["model"] == "m"


class FakeValidationError(Exception):
    """Like vllm.exceptions.VLLMValidationError: not a ValueError."""


class FakeLLM:
    """A stand-in for ``vllm.LLM``: like vLLM it refuses a whole ``chat`` call when one
    prompt is too long, and it answers each prompt with its own text."""

    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.calls: list[int] = []
        self.shut_down = False
        self.llm_engine = SimpleNamespace(engine_core=SimpleNamespace(shutdown=self._shutdown))
        FakeLLM.instances.append(self)

    def _shutdown(self):
        self.shut_down = True

    def chat(self, convos, sampling_params, use_tqdm):
        assert len(convos) == len(sampling_params) and use_tqdm is False
        self.calls.append(len(convos))
        for c in convos:
            if len(c[-1]["content"]) > 100:
                raise FakeValidationError("prompt longer than the maximum model length")
        return [SimpleNamespace(
            prompt_token_ids=[1] * len(c[-1]["content"]),
            outputs=[SimpleNamespace(text=f"re: {c[-1]['content']}", token_ids=[7] * p.max_tokens,
                                     finish_reason="length")])
            for c, p in zip(convos, sampling_params, strict=True)]


def fake_sampling_params(**kwargs):
    if kwargs["top_p"] > 1:
        raise ValueError("top_p must be in (0, 1]")
    return SimpleNamespace(**kwargs)


@pytest.fixture
def fake_vllm(monkeypatch):
    import engine.llm.vllm_offline as vo

    FakeLLM.instances = []
    monkeypatch.setattr(vo, "_import_vllm", lambda: (
        FakeLLM, fake_sampling_params, (ValueError, FakeValidationError)))
    return FakeLLM


def test_vllm_client_answers_in_order_and_a_bad_request_fails_alone(fake_vllm, tmp_path):
    ep = VLLMOfflineEndpoint(model="m", max_model_len=512)
    client = make_client(ep, cache_dir=tmp_path, chunk_size=8,
                         llm_options={"enforce_eager": True})
    llm = fake_vllm.instances[0]
    assert llm.kwargs["enforce_eager"] is True and llm.kwargs["max_model_len"] == 512
    reqs = [ask(f"q{i}", max_tokens=3, tag=str(i)) for i in range(8)]
    reqs[5] = ask("x" * 200, max_tokens=3, tag="5")  # too long: vLLM refuses its whole call
    results = run_batch(client, reqs)
    assert [r.tag for r in results] == [str(i) for i in range(8)]
    assert [r.ok for r in results] == [True] * 5 + [False] + [True] * 2
    assert results[5].error == "bad_request" and "maximum model length" in results[5].error_detail
    assert results[0].text == "re: q0" and results[0].finish_reason == "length"
    assert results[0].usage.prompt_tokens == 2 and results[0].usage.completion_tokens == 3
    # Split in halves, not one request at a time: 8 refused -> 0-3 ok, 4-7 refused -> 4-5
    # refused -> 4 ok, 5 fails alone -> 6-7 ok.
    assert llm.calls == [8, 4, 4, 2, 1, 1, 2]
    m = client.stats.metrics()
    assert m["llm/requests"] == 8 and m["llm/failed"] == 1 and m["llm/errors/bad_request"] == 1
    again = run_batch(client, reqs)  # successes come from the cache; the failure is retried
    assert sum(r.cached for r in again) == 7 and not again[5].cached and not again[5].ok
    client.close()
    assert llm.shut_down
    with pytest.raises(LLMError, match="closed"):
        run_batch(client, reqs[:1])


def test_vllm_client_turns_refused_sampling_params_into_a_failed_result(fake_vllm):
    client = make_client(VLLMOfflineEndpoint(model="m"))
    good, bad = run_batch(client, [ask("fine", max_tokens=2), ask("odd", top_p=1.5, max_tokens=2)])
    assert good.ok and good.usage.completion_tokens == 2
    assert bad.error == "bad_request" and "top_p" in bad.error_detail
    assert fake_vllm.instances[0].calls == [1]  # the bad one never reached vLLM


# --- transformers, tiny random model


@pytest.fixture(scope="module")
def tiny():
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    ep = TransformersEndpoint(model="tiny-random", device="cpu", max_new_tokens=24, batch_size=4)
    return make_client(ep, name="smoke")


@pytest.mark.slow
def test_tiny_random_answers_every_request_in_order(tiny):
    reqs = [ask(f"problem {i}", temperature=0.0, max_tokens=8) for i in range(6)]
    results = run_batch(tiny, reqs)
    assert len(results) == 6 and all(r.ok for r in results)
    assert all(0 < r.usage.completion_tokens <= 8 and r.usage.prompt_tokens > 0 for r in results)
    assert all(isinstance(r.text, str) for r in results)


@pytest.mark.slow
def test_tiny_random_is_the_same_model_every_build(tiny):
    from engine.llm.transformers_local import build_tiny_random

    reqs = [ask("same prompt", temperature=0.0, max_tokens=12), ask("another", temperature=0.9,
                                                                     top_p=0.9, max_tokens=12)]
    ep = TransformersEndpoint(model="tiny-random", device="cpu", max_new_tokens=24)
    again = make_client(ep, name="smoke2")
    assert [r.text for r in run_batch(tiny, reqs)] == [r.text for r in run_batch(again, reqs)]
    (m1, t1), (m2, t2) = build_tiny_random(), build_tiny_random()
    assert t1.get_vocab() == t2.get_vocab()
    assert all((a == b).all() for a, b in zip(m1.state_dict().values(),
                                              m2.state_dict().values(), strict=True))


@pytest.mark.slow
def test_tiny_random_greedy_answers_do_not_depend_on_the_batch(tiny):
    alone = run_batch(tiny, [ask("lonely prompt", temperature=0.0, max_tokens=10)])[0]
    crowd = run_batch(tiny, [ask(f"filler {i}", temperature=0.0, max_tokens=10) for i in range(3)]
                      + [ask("lonely prompt", temperature=0.0, max_tokens=10)])[-1]
    assert alone.text == crowd.text


@pytest.mark.slow
def test_tiny_random_reports_length_when_cut_and_caps_max_tokens(tiny):
    [r] = run_batch(tiny, [ask("go on", temperature=0.0, max_tokens=100_000)])
    assert r.usage.completion_tokens <= 24  # the endpoint's max_new_tokens
    # A random model rarely emits its end token in 24 steps: when it does not, it is "length".
    assert r.finish_reason in ("length", "stop")
    assert (r.finish_reason == "length") == (r.usage.completion_tokens == 24)
    assert tiny.effective(ask("x", max_tokens=100_000)).max_tokens == 24


@pytest.mark.slow
def test_tiny_random_serves_reruns_from_the_cache(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    ep = TransformersEndpoint(model="tiny-random", device="cpu", max_new_tokens=16)
    reqs = ask("cache me", temperature=0.8, top_p=0.9, seed=3, max_tokens=16).with_samples(3)
    first_client = make_client(ep, cache_dir=tmp_path)
    first = run_batch(first_client, reqs)
    second_client = make_client(ep, cache_dir=tmp_path)
    second = run_batch(second_client, reqs)
    assert [r.text for r in second] == [r.text for r in first]
    assert all(r.cached for r in second) and second_client.stats.calls == 0
    assert first_client.stats.calls == 3
