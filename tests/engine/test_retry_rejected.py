"""``--retry-rejected REASON``: rejected items asked again after a config change.

    .venv/bin/python -m pytest tests/engine/test_retry_rejected.py -q

A permanent 400 (a prompt over the context, say) is recorded as a rejection, and a plain rerun
skips recorded items: that is the finding of issue #16 these tests reproduce first. Then
``run_pipeline(..., retry_rejected=[...])`` (``python -m engine run --retry-rejected``) asks
those items, and only those, again.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from openai_stub_server import Reply
from synth_responder import SynthResponder

from engine.rundir import RunDir
from engine.runner import EXIT_OK, PipelineRefused, run_pipeline
from engine.schema import config_from_dict, dump_config
from engine.store import Store

REPO = Path(__file__).resolve().parents[2]


def config(url: str):
    return config_from_dict({
        "run": {"seed": 7},
        "llms": {name: {"backend": "openai", "base_url": url, "model": "stub-model",
                        "timeout_s": 10.0, "max_retries": 1} for name in ("generator", "solver")},
        "seeds": {"sources": [{"path": "assets://seeds/seeds.jsonl"}], "max_seeds": 4},
        "features": {"json_retries": 1},
    })


def run(cfg, run_dir: RunDir, stages, **kw) -> int:
    return run_pipeline(cfg, dump_config(cfg), run_dir, stages, **kw)


def test_a_rejected_400_is_asked_again_only_with_retry_rejected(openai_stub, tmp_path):
    responder, refused = SynthResponder(seed=1), {"prompt": None, "on": True}

    def rule(body, attempt):  # the first seed's prompt is refused while "on"
        text = body["messages"][-1]["content"]
        if refused["prompt"] is None and text.startswith("# Extract"):
            refused["prompt"] = text
        if refused["on"] and text == refused["prompt"]:
            return Reply(status=400)
        return responder(body, attempt)

    openai_stub.rule = rule
    cfg, rd = config(openai_stub.url), RunDir(tmp_path / "r")
    assert run(cfg, rd, ["seeds", "features"]) == EXIT_OK
    with Store(rd.store_path) as store:
        [rejected] = store.item_records("features", "rejected")
    assert rejected["reason"].startswith("extract_llm_http_400: HTTP 400")

    refused["on"] = False  # the config is fixed (a longer context, say)
    before = len(openai_stub.chat_requests())
    assert run(cfg, rd, ["seeds", "features"]) == EXIT_OK
    assert len(openai_stub.chat_requests()) == before  # a plain rerun skips the rejection

    assert run(cfg, rd, ["seeds", "features"], retry_rejected=["llm_http_400"]) == EXIT_OK
    assert len(openai_stub.chat_requests()) == before + 1  # that item, and only it
    with Store(rd.store_path) as store:
        assert store.item_records("features", "rejected") == []
        assert len(store.item_records("features", "ok")) == 4
    assert rd.read_state().stages["features"].status == "completed"


def test_only_pending_tasks_with_a_matching_candidate_lose_their_candidates(tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        a = store.add_task(style="codeforces", title="A", statement="a", key="a")
        b = store.add_task(style="codeforces", title="B", statement="b", key="b")
        store.add_solution(a, 0, code="print(1)")
        store.add_solution(a, 1, code=None, status="rejected",
                           reject_reason="llm_http_400: HTTP 400: too long")
        store.add_solution(b, 0, code=None, status="rejected", reject_reason="no_code_block")
        assert store.forget_rejected("solutions", "llm_http_400") == 1
        assert store.get_task(a).n_solutions == 0 and store.get_task(b).n_solutions == 1
        assert store.forget_rejected("solutions", "llm_http_400") == 0


def test_a_reason_code_matches_whole_or_as_a_suffix_after_an_underscore(tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        for item, reason in [("s1", "extract_llm_http_400: x"), ("s2", "llm_http_400: y"),
                             ("s3", "extract_xllm_http_400: z"), ("s4", "extract_truncated: w")]:
            store.record_item("features", item, "rejected", reason=reason)
        assert store.forget_rejected("features", "llm_http_400") == 2
        assert sorted(store.done_items("features")) == ["s3", "s4"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--shard", "0/2"], "--retry-rejected changes the run's store"),
    ([], "give a reason code"),
])
def test_the_command_line_refuses_what_it_cannot_do_before_writing_anything(tmp_path, extra,
                                                                            message):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(dump_config(config("http://127.0.0.1:9/v1")))
    reason = "llm_http_400" if extra else "http 400"
    p = subprocess.run([sys.executable, "-m", "engine", "run", "--config", str(cfg),
                        "--run-dir", str(tmp_path / "r"), "--stages", "features",
                        "--retry-rejected", reason, *extra],
                       cwd=REPO, text=True, capture_output=True, timeout=60)
    assert p.returncode == 2 and message in p.stderr
    assert not (tmp_path / "r").exists()


def test_retry_rejected_is_refused_with_shards_in_the_api_too(tmp_path):
    with pytest.raises(PipelineRefused, match="without --shard"):
        run(config("http://127.0.0.1:9/v1"), RunDir(tmp_path / "r"), ["features"],
            retry_rejected=["x"], shard_index=0, shard_count=2)
