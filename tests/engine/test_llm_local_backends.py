"""The in-process backends: transformers with the tiny random model, and vLLM's CPU-testable parts.

    .venv/bin/python -m pytest tests/engine/test_llm_local_backends.py -q

The transformers tests are slow (importing torch takes seconds) and skip where torch or
transformers is absent (the headless CI venv). vLLM needs a CUDA GPU: here only its
missing-library error and the pure request -> SamplingParams / LLM mappings are tested.
"""

from __future__ import annotations

import builtins
import sys

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
