"""verl's reward on SynthSmith's RL export (issue 18): ``compute_score`` called exactly as
verl's reward managers call it, on rows a real curate run wrote, judged in the real sandbox.

Run: .venv/bin/python -m pytest tests/engine/train/test_verl_reward.py -q
Sandbox tests skip when no sandbox (bubblewrap) can start here; the verl test skips without
verl.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.context import StageContext
from engine.events import EventWriter
from engine.rundir import RunDir
from engine.schema import config_from_dict
from engine.stages import curate
from engine.store import Store, Verdict
from engine.verify.sandbox import SandboxUnavailable

REPO = Path(__file__).resolve().parents[3]
MODULE_PATH = REPO / "engine" / "train" / "verl_reward.py"
INPUTS = ["1 2\n", "3 4\n", "10 -5\n", "0 0\n"]
OUTPUTS = ["3", "7", "5", "0"]
THINK = "<think>\nAdd the two numbers.\n</think>\n\n"
RIGHT = THINK + "```python\na, b = map(int, input().split())\nprint(a + b)\n```"
# Right on the first two tests only (a in 1..4).
HALF = THINK + "```python\na, b = map(int, input().split())\nprint(a + b if 0 < a < 5 else 99)\n```"
WRONG = THINK + "```python\nprint(42)\n```"
SYNTAX_ERROR = THINK + "```python\ndef solve(:\n    print(1)\n```"
CPP_COMPILE_ERROR = "```cpp\nint main() { return undefined_name; }\n```"
NO_CODE = "The answer is a + b, computed in O(1)."


def load_like_verl(name: str = "custom_module_1234"):
    """What verl.utils.import_utils.load_module does with custom_reward_function.path."""
    spec = importlib.util.spec_from_file_location(name, MODULE_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reward_module():
    module = load_like_verl()
    try:
        module._shared_pool(2)
    except SandboxUnavailable as exc:
        pytest.skip(f"the verl reward needs the sandbox (bubblewrap): {exc}")
    yield module
    module._close_pool()


def curate_rl_rows(tmp_path: Path, **curate_cfg) -> list[dict]:
    """A store with one verified a+b task, curated; -> the rows of rl.parquet (pyarrow)."""
    run = RunDir(tmp_path / "run")
    run.create()
    with Store(run.store_path) as store:
        tid = store.add_task(style="codeforces", title="A+B", key="a-plus-b",
                             statement="Print the sum of two integers a and b.")
        sid = store.add_solution(tid, 0, code=RIGHT.split("```python\n")[1][:-4],
                                 reasoning="Add them.")
        tests = [store.add_test(tid, i, input=x, kind="random", source="generator",
                                expected_output=y)
                 for i, (x, y) in enumerate(zip(INPUTS, OUTPUTS, strict=True))]
        store.add_verdicts(Verdict(sid, t, "ok") for t in tests)
        store.set_task_result(tid, "accepted", agreement=1.0, golden_solution_id=sid)
    cfg = config_from_dict({"curate": {"rl_val_fraction": 0, **curate_cfg}})
    events = EventWriter.for_run(run.events_dir, "curate", 0)
    ctx = StageContext(config=cfg, run=run, stage="curate", events=events,
                       log=logging.getLogger("test.verl_reward"))
    try:
        curate.run(ctx)
    finally:
        ctx.close()
        events.close()
    return pq.read_table(run.exports_dir / "rl.parquet").to_pylist()


def call_like_verl(compute_score, row: dict, response: str, **reward_kwargs):
    """NaiveRewardManager: verl adds num_turns / rollout_reward_scores to extra_info, then
    calls with keywords only (custom_reward_function.reward_kwargs merged in)."""
    extra_info = dict(row["extra_info"])
    extra_info["num_turns"] = None
    extra_info["rollout_reward_scores"] = {}
    return compute_score(data_source=row["data_source"], solution_str=response,
                         ground_truth=row["reward_model"]["ground_truth"],
                         extra_info=extra_info, **reward_kwargs)


# ---------------------------------------------------------------------------------------------
# The rule, through verl's call


def test_rows_of_a_real_export_score_with_the_rl_stages_rule(reward_module, tmp_path):
    (row,) = curate_rl_rows(tmp_path)
    kw = {"sandbox_workers": 2, "judge_time_limit_s": 2}
    scores = {name: call_like_verl(reward_module.compute_score, row, text, **kw)
              for name, text in [("right", RIGHT), ("half", HALF), ("wrong", WRONG),
                                 ("syntax", SYNTAX_ERROR), ("cpp", CPP_COMPILE_ERROR),
                                 ("none", NO_CODE)]}
    assert scores["right"] == {"score": 5.0, "acc": 1.0, "passed": 4, "total": 4,
                               "has_code": 1.0, "timeouts": 0}
    assert (scores["half"]["score"], scores["half"]["passed"]) == (2.5, 2)  # 5 x 2/4
    assert (scores["wrong"]["score"], scores["wrong"]["acc"]) == (0.0, 0.0)
    # A Python block that does not parse is no parseable code: -2, nothing runs.
    assert scores["syntax"] == {"score": -2.0, "acc": 0.0, "passed": 0, "total": 0,
                                "has_code": 0.0, "timeouts": 0}
    # C++ with balanced braces is code: it is compiled, fails on every test, and scores 0.
    assert (scores["cpp"]["score"], scores["cpp"]["total"]) == (0.0, 4)
    assert scores["none"]["score"] == -2.0 and scores["none"]["has_code"] == 0.0
    # Every result has the same keys: verl's managers collect them per key across a batch.
    assert len({tuple(s) for s in scores.values()}) == 1


def test_all_pass_mode_and_scale_come_from_reward_kwargs(reward_module, tmp_path):
    (row,) = curate_rl_rows(tmp_path)
    kw = {"sandbox_workers": 2, "reward": "all_pass", "reward_scale": 1.0}
    assert call_like_verl(reward_module.compute_score, row, RIGHT, **kw)["score"] == 1.0
    assert call_like_verl(reward_module.compute_score, row, HALF, **kw)["score"] == 0.0
    assert call_like_verl(reward_module.compute_score, row, NO_CODE, **kw)["score"] == -2.0


def test_the_batch_function_matches_one_call_per_row(reward_module, tmp_path):
    (row,) = curate_rl_rows(tmp_path)
    texts = [RIGHT, HALF, NO_CODE, WRONG]
    batch = reward_module.compute_score_batch(
        data_sources=[row["data_source"]] * 4, solution_strs=texts,
        ground_truths=[row["reward_model"]["ground_truth"]] * 4,
        extra_infos=[dict(row["extra_info"]) for _ in texts], sandbox_workers=2)
    single = [call_like_verl(reward_module.compute_score, row, t, sandbox_workers=2)
              for t in texts]
    assert batch == single
    assert [b["score"] for b in batch] == [5.0, 2.5, -2.0, 0.0]


def test_built_in_data_sources_are_judged_here_too(reward_module, tmp_path):
    (row,) = curate_rl_rows(tmp_path, rl_data_source="codeforces")
    assert row["data_source"] == "codeforces"
    assert call_like_verl(reward_module.compute_score, row, HALF, sandbox_workers=2)["score"] \
        == 2.5


def test_many_tests_are_sampled_the_same_way_for_the_same_answer(reward_module):
    truth = json.dumps({"inputs": [f"{i} 1\n" for i in range(30)],
                        "outputs": [str(i + 1) for i in range(30)]})
    kw = {"sandbox_workers": 2, "reward_tests_per_call": 5}
    first = reward_module.compute_score("synthsmith", RIGHT, truth, {}, **kw)
    again = reward_module.compute_score("synthsmith", RIGHT, truth, {}, **kw)
    assert first == again and first["total"] == 5 and first["score"] == 5.0


# ---------------------------------------------------------------------------------------------
# Settings and other data sources (no sandbox needed)


def test_settings_come_from_defaults_then_environment_then_kwargs(monkeypatch):
    from engine.schema import RlConfig, VerifyConfig
    from engine.train import verl_reward

    spec, workers = verl_reward.reward_spec()
    rl = RlConfig()
    assert (spec.mode, spec.tests_per_call, spec.no_code_reward, spec.scale,
            spec.time_limit_s, spec.memory_mb, spec.compare, spec.seed) == (
        rl.reward, rl.reward_tests_per_call, rl.no_code_reward, rl.reward_scale,
        rl.judge_time_limit_s, rl.judge_memory_mb, VerifyConfig().compare, 0)
    assert (spec.mode, spec.scale, spec.no_code_reward) == ("fraction", 5.0, -2.0)
    assert 1 <= workers <= verl_reward.MAX_DEFAULT_WORKERS
    monkeypatch.setenv("SYNTHSMITH_RL_JUDGE_TIME_LIMIT_S", "3.5")
    monkeypatch.setenv("SYNTHSMITH_RL_COMPARE", "strip")
    monkeypatch.setenv("SYNTHSMITH_RL_SANDBOX_WORKERS", "3")
    spec, workers = verl_reward.reward_spec()
    assert (spec.time_limit_s, spec.compare, workers) == (3.5, "strip", 3)
    spec, _ = verl_reward.reward_spec(judge_time_limit_s=7, reward_router_address="ignored")
    assert spec.time_limit_s == 7.0  # kwargs beat the environment; verl's own are ignored


def test_a_bad_setting_names_where_it_came_from(monkeypatch):
    from engine.train import verl_reward

    with pytest.raises(ValueError, match="reward_tests_per_call"):
        verl_reward.reward_spec(reward_tests_per_call=0)
    monkeypatch.setenv("SYNTHSMITH_RL_REWARD", "partial")
    with pytest.raises(ValueError, match="SYNTHSMITH_RL_"):
        verl_reward.reward_spec()


def test_another_data_source_goes_to_verl_or_says_why(monkeypatch):
    from engine.train import verl_reward

    if importlib.util.find_spec("verl") is not None:
        pytest.skip("verl is installed: the row would go to its default_compute_score")
    with pytest.raises(NotImplementedError, match="openai/gsm8k"):
        verl_reward.compute_score(data_source="openai/gsm8k", solution_str="#### 4",
                                  ground_truth="4", extra_info={})


# ---------------------------------------------------------------------------------------------
# Loading by path, as verl does, from anywhere


LOAD_SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    path = sys.argv[1]
    spec = importlib.util.spec_from_file_location("custom_module_42", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, "compute_score")
    spec_, workers = module.reward_spec(sandbox_workers=1)
    print(json.dumps({"engine": sys.modules["engine"].__file__, "sys_path": sys.path,
                      "spec": repr(spec_), "fn": fn.__name__}))
""")


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYNTHSMITH_")}
    env["PYTHONPATH"] = ""
    return env


def test_verl_can_load_the_file_by_path_from_any_working_directory(tmp_path):
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(MODULE_PATH)], cwd=tmp_path,
                          env=clean_env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert Path(out["engine"]).resolve() == REPO / "engine" / "__init__.py"
    assert str(REPO) not in out["sys_path"]  # registered, not put on sys.path
    assert "mode='fraction'" in out["spec"] and out["fn"] == "compute_score"


def test_an_unrelated_engine_on_sys_path_loses_and_an_imported_one_is_refused(tmp_path):
    other = tmp_path / "elsewhere" / "engine"
    other.mkdir(parents=True)
    (other / "__init__.py").write_text("NOT_SYNTHSMITH = True\n")
    env = {**clean_env(), "PYTHONPATH": str(other.parent)}
    proc = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, str(MODULE_PATH)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert Path(json.loads(proc.stdout)["engine"]).resolve() == REPO / "engine" / "__init__.py"
    refused = subprocess.run(
        [sys.executable, "-c", "import engine\n" + LOAD_SCRIPT, str(MODULE_PATH)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0
    assert "another package named 'engine' is already imported" in refused.stderr


# ---------------------------------------------------------------------------------------------
# verl's own scorer on the built-in data source


def test_verls_default_scorer_accepts_rows_exported_for_it(tmp_path):
    reward_score = pytest.importorskip(
        "verl.utils.reward_score", reason="verl is not installed here: its built-in code "
        "scorer (prime_code) can only be checked where it is")
    (row,) = curate_rl_rows(tmp_path, rl_data_source="codeforces")
    right = call_like_verl(reward_score.default_compute_score, row, RIGHT)
    wrong = call_like_verl(reward_score.default_compute_score, row, WRONG)
    score = right["score"] if isinstance(right, dict) else right
    assert float(score) == 1.0
    assert float(wrong["score"] if isinstance(wrong, dict) else wrong) == 0.0
