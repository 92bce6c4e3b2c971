"""remote/doctor.py: the engine's doctor run through a runner, and what would stop a stage.

Run: .venv/bin/python -m pytest tests/remote/test_doctor.py -q
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.doctor import collect
from engine.schema import config_from_dict
from remote.bundle import sync_bundle
from remote.doctor import remote_doctor, stage_problems, summary_lines
from remote.errors import RemoteSetupError
from remote.profiles import ClusterProfile
from remote.runner import LocalRunner


def test_the_engine_doctor_runs_in_the_uploaded_bundle(tmp_path):
    runner = LocalRunner()
    profile = ClusterProfile(name="box", host="h", workdir=str(tmp_path), python=sys.executable)
    report = sync_bundle(runner, str(tmp_path))
    facts = remote_doctor(runner, profile, report.bundle_dir)
    assert facts["python"]["executable"] == sys.executable
    assert facts["work_dir"]["path"] == str(tmp_path)
    lines = summary_lines(facts)
    assert lines[1].startswith(f"python {sys.version.split()[0]}")


def test_a_missing_python_or_engine_import_error_names_the_fix(tmp_path):
    runner = LocalRunner()
    report = sync_bundle(runner, str(tmp_path))
    gone = ClusterProfile(name="box", host="h", workdir=str(tmp_path),
                          python="/opt/none/python3")
    with pytest.raises(RemoteSetupError, match="set the profile's python"):
        remote_doctor(runner, gone, report.bundle_dir)
    bare = ClusterProfile(name="box", host="h", workdir=str(tmp_path), python="python3",
                          activate="export PYTHONNOUSERSITE=1 PYTHONPATH=")
    try:
        import subprocess

        subprocess.run(["python3", "-c", "import pydantic"], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        with pytest.raises(RemoteSetupError, match="pip install pydantic"):
            remote_doctor(runner, bare, report.bundle_dir)
    else:
        pytest.skip("the system python3 has pydantic: no import error to provoke")


def _facts_with_everything() -> dict:
    """This host's facts, with every package installed (the tests choose what is missing:
    CI also runs them in a venv without torch)."""
    from engine.doctor import PACKAGES

    facts = collect(".")
    facts["packages"] = dict.fromkeys(PACKAGES, "1.0")
    facts["tools"] = {"bwrap": True, "g++": True, "nvidia-smi": False}
    return facts


def test_stage_problems_read_the_config_and_the_disk():
    facts = _facts_with_everything()
    facts["packages"]["vllm"] = None
    facts["stages"]["rl"] = {"ok": False, "missing": ["vllm"]}
    facts["work_dir"]["free_gb"] = 0.4
    config = config_from_dict({"llms": {"solver": {"backend": "vllm", "model": "/models/x"},
                                        "generator": {"backend": "openai",
                                                      "base_url": "http://h/v1", "model": "m"}}})
    found = stage_problems(facts, config, ["solutions", "rl", "features"], "h200")
    assert found["solutions"] == ["solutions needs vllm on h200 (endpoint 'solver' uses "
                                  "backend vllm): install it in the Python stages run with "
                                  "there (pip install vllm; CUDA GPU machines only)"]
    assert [p.split(":")[0] for p in found["rl"]] == ["rl needs vllm on h200"]
    assert "features" not in found  # aiohttp is here
    assert "only 0.4 GB free" in found["*"][0]


def test_stage_problems_follow_the_config_not_every_option():
    """The finding of issue 17: "rl needs vllm" right after rl completed with HF generate."""
    facts = _facts_with_everything()
    for dist in ("vllm", "deepspeed", "trl"):
        facts["packages"][dist] = None
    facts["tools"]["g++"] = False
    facts["gpus"] = None
    cpu = {"gpus_per_node": 0}
    config = config_from_dict({"llms": {"m": {"backend": "transformers", "model": "tiny"}},
                               "features": {"llm": "m"}, "evolve": {"llm": "m"},
                               "tasks": {"llm": "m"}, "solutions": {"llm": "m",
                                                                    "languages": ["python"]},
                               "tests": {"llm": "m"},
                               "sft": {"zero_stage": 0, "resources": cpu, "attention": "sdpa"},
                               "eval": {"engine": "transformers", "resources": cpu},
                               "rl": {"rollout": "transformers", "resources": cpu}})
    found = stage_problems(facts, config, ["sft", "rl", "eval", "verify"], "here",
                           gpus_here=True)
    assert "sft" not in found and "eval" not in found and "verify" not in found, found
    assert [p.split(":")[0] for p in found["rl"]] == ["rl needs trl on here"]
    # the same stages as configured for GPUs: DeepSpeed, vLLM, g++ and the GPUs are needed
    gpu = config_from_dict({"llms": {"m": {"backend": "transformers", "model": "tiny"}},
                            "solutions": {"llm": "m", "languages": ["python", "cpp"]},
                            "features": {"llm": "m"}, "evolve": {"llm": "m"},
                            "tasks": {"llm": "m"}, "tests": {"llm": "m"},
                            "sft": {"zero_stage": 2, "resources": {"gpus_per_node": 8}}})
    found = stage_problems(facts, gpu, ["sft", "rl", "verify"], "here", gpus_here=True)
    assert any("needs deepspeed" in p for p in found["sft"])
    assert any("asks for 8 GPU(s) per node but here has none" in p for p in found["sft"])
    assert any("needs vllm" in p for p in found["rl"])
    assert found["verify"] == ["verify needs g++ on here: C++ candidates need a compiler "
                               "(apt-get install g++), or drop cpp from solutions.languages"]


def test_wandb_is_needed_everywhere_once_enabled_and_nowhere_before():
    facts = _facts_with_everything()
    facts["packages"]["wandb"] = None
    off = config_from_dict({})
    assert not any("wandb" in p for ps in stage_problems(facts, off, ["seeds", "curate"],
                                                         "here").values() for p in ps)
    on = config_from_dict({"run": {"metrics": {"wandb": {"enabled": True}}}})
    found = stage_problems(facts, on, ["seeds", "curate"], "here")
    assert all(any("needs wandb" in p for p in found[s]) for s in ("seeds", "curate")), found


def test_engine_doctor_with_a_config_reports_that_configs_needs(tmp_path):
    import json
    import subprocess

    smoke = str(Path(__file__).resolve().parents[2] / "assets" / "presets" / "smoke-cpu.yaml")
    out = subprocess.run([sys.executable, "-m", "engine", "doctor", "--config", smoke],
                         capture_output=True, text=True, check=True).stdout
    stages = json.loads(out)["stages"]
    assert "vllm" not in stages["rl"]["missing"]  # the smoke preset's rl rolls out with HF
    if collect(".")["packages"]["vllm"] is None:  # every option's view does want it
        assert "vllm" in collect(".")["stages"]["rl"]["missing"]
