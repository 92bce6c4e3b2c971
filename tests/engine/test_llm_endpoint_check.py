"""``check_endpoint`` and ``synthsmith llm test NAME``: one endpoint tested before a launch.

    .venv/bin/python -m pytest tests/engine/test_llm_endpoint_check.py -q

Against the stub server as its own process (tests/openai_stub_server.py ``spawn``) playing a
llama.cpp server (``/props``: context and slots) that honours the reply budget, and the CLI as
a user runs it (real subprocesses). Each test breaks one thing the report must catch.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from openai_stub_server import spawn

from engine.llm import LLMError
from engine.llm.endpoint_check import check_endpoint
from engine.schema import OpenAIEndpoint, VLLMOfflineEndpoint

REPO = Path(__file__).resolve().parents[2]
LLAMA_LIKE = ("--props", "--slots", "2", "--max-model-len", "512", "--cut-at-max-tokens")


def endpoint(url: str, **kw) -> OpenAIEndpoint:
    return OpenAIEndpoint(base_url=url, model=kw.pop("model", "stub-model"), **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_healthy_server_reports_model_context_slots_and_a_one_token_reply():
    with spawn(*LLAMA_LIKE) as stub:
        report = check_endpoint(endpoint(stub.url), "gen")
    assert report.ok, report.problems
    assert report.reachable and report.model_listed and report.models == ["stub-model"]
    assert (report.context_length, report.parallel_slots, report.in_flight) == (512, 2, 2)
    assert report.completion_ok and report.completion_tokens == 1
    assert report.reply_limit_param == "max_tokens" and report.completion_latency_s > 0


def test_a_server_that_is_not_there_is_unreachable_with_the_fix():
    report = check_endpoint(endpoint(f"http://127.0.0.1:{free_port()}/v1"), "gen")
    assert not report.ok and not report.reachable and not report.completion_ok
    assert "does not answer" in report.problems[0] and "llms.gen.base_url" in report.problems[0]


def test_a_model_the_server_does_not_list_is_named():
    with spawn(*LLAMA_LIKE) as stub:
        report = check_endpoint(endpoint(stub.url, model="Qwen/Qwen3-8B"), "gen")
    assert report.model_listed is False
    assert any("not 'Qwen/Qwen3-8B'" in p and "llms.gen.model" in p for p in report.problems)


def test_a_server_that_ignores_the_reply_budget_is_flagged():
    with spawn() as stub:  # answers at length whatever max_tokens says
        report = check_endpoint(endpoint(stub.url), "gen")
    assert report.completion_ok and report.completion_tokens > 1
    assert any("ignores max_tokens" in p for p in report.problems)


def test_a_missing_key_variable_is_a_problem_and_a_set_key_is_never_shown(monkeypatch):
    monkeypatch.delenv("SYNTH_CHECK_KEY", raising=False)
    with spawn(*LLAMA_LIKE) as stub:
        missing = check_endpoint(endpoint(stub.url, api_key_env="SYNTH_CHECK_KEY"), "gen")
        monkeypatch.setenv("SYNTH_CHECK_KEY", "sk-secret-value-123")
        present = check_endpoint(endpoint(stub.url, api_key_env="SYNTH_CHECK_KEY"), "gen")
    assert missing.key_present is False and "$SYNTH_CHECK_KEY is not set" in missing.problems[0]
    assert present.ok and present.key_present is True
    shown = json.dumps(present.to_dict()) + "\n".join(present.lines())
    assert "sk-secret" not in shown and "$SYNTH_CHECK_KEY is set" in shown


def test_an_in_process_backend_has_no_server_to_test():
    with pytest.raises(LLMError, match="no server to test"):
        check_endpoint(VLLMOfflineEndpoint(model="m"), "local")


# ---------------------------------------------------------------------------------------------
# The command line


def synthsmith(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "SYNTH_CHECK_KEY"}
    return subprocess.run([sys.executable, "-m", "gui.cli", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=120, env=env)


def write_config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(f"llms:\n  gen:\n    backend: openai\n    base_url: {url}\n"
                    "    model: stub-model\n  local:\n    backend: vllm\n    model: m\n"
                    "features: {llm: gen}\nevolve: {llm: gen}\ntasks: {llm: gen}\n"
                    "solutions: {llm: gen}\ntests: {llm: gen}\n")
    return path


def test_llm_test_prints_one_screen_and_exits_0_when_usable(tmp_path):
    with spawn(*LLAMA_LIKE) as stub:
        p = synthsmith("llm", "test", "gen", "--config", str(write_config(tmp_path, stub.url)))
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert len(lines) <= 12 and lines[-1] == "OK"
    assert "context        512 tokens (/v1/models max_model_len)" in p.stdout
    assert "1-token reply  ok in" in p.stdout


def test_llm_test_json_is_exact_and_exits_1_on_a_problem(tmp_path):
    cfg = write_config(tmp_path, f"http://127.0.0.1:{free_port()}/v1")
    p = synthsmith("llm", "test", "gen", "--config", str(cfg), "--json")
    assert p.returncode == 1
    report = json.loads(p.stdout)  # nothing but the JSON on stdout
    assert report["ok"] is False and report["reachable"] is False


def test_engine_check_llm_is_the_same_check_on_the_host_it_runs_on(tmp_path):
    with spawn(*LLAMA_LIKE) as stub:
        cfg = write_config(tmp_path, stub.url)
        p = subprocess.run([sys.executable, "-m", "engine", "check-llm", "--config", str(cfg),
                            "gen", "--json"], cwd=REPO, text=True, capture_output=True,
                           timeout=120)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["context_length"] == 512


@pytest.mark.parametrize(("name", "message"), [
    ("nope", "has no endpoint 'nope' under llms: (it has gen, local)"),
    ("local", "no server to test"),
])
def test_llm_test_refuses_a_name_it_cannot_test_with_a_clear_message(tmp_path, name, message):
    p = synthsmith("llm", "test", name, "--config", str(write_config(tmp_path, "http://x/v1")))
    assert p.returncode == 1 and message in p.stderr and "Traceback" not in p.stderr
