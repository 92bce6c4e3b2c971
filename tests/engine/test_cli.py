"""The engine CLI as users and the desktop app call it: real subprocesses, real files."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE = REPO / "assets" / "presets" / "smoke-cpu.yaml"
XCODER = REPO / "assets" / "presets" / "xcoder-7b.yaml"


def engine(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout)


def start_engine(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def events(run_dir: Path, stage: str) -> list[dict]:
    path = run_dir / "events" / f"{stage}.0.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def stage_statuses(run_dir: Path, stage: str) -> list[str]:
    return [e["data"]["status"] for e in events(run_dir, stage) if e["kind"] == "stage"]


def seed_rows(run_dir: Path) -> tuple[int, int]:
    with sqlite3.connect(run_dir / "data" / "store.sqlite") as db:
        total, distinct = db.execute(
            "SELECT count(*), count(DISTINCT source_key) FROM seeds").fetchone()
    return total, distinct


def write_seed_file(path: Path, n: int) -> Path:
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"problem": f"Problem {i}: print the sum of two integers. " * 8,
                                "solution": "a, b = map(int, input().split())\nprint(a + b)"})
                    + "\n")
    return path


def seeds_from(path: Path) -> str:
    return f"seeds.sources=[{{path: {path}, format: jsonl, layout: plain}}]"


# --- validate ---------------------------------------------------------------------------------

def test_validate_accepts_the_shipped_presets_with_a_summary():
    for preset in (SMOKE, XCODER):
        out = engine("validate", str(preset))
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith(f"OK: {preset}")
        assert "seeds" in out.stdout
    info = json.loads(engine("validate", str(XCODER), "--json").stdout)
    assert "sft" in info["enabled_stages"]
    assert any("sft" in names for names in info["placements"].values())


def test_validate_applies_dot_path_overrides():
    out = engine("validate", str(SMOKE), "sft.enabled=false", "--json")
    assert out.returncode == 0, out.stderr
    assert "sft" not in json.loads(out.stdout)["enabled_stages"]


def test_validate_lists_every_problem_with_its_key_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent("""\
        sft:
          lr: "fast"
          epochs: -3
        rl:
          grup_size: 8
    """))
    out = engine("validate", str(bad))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    for key in ("sft.lr", "sft.epochs", "rl.grup_size"):
        assert key in out.stderr, out.stderr
    assert "group_size" in out.stderr  # the closest valid key is suggested


def test_validate_reports_malformed_yaml_with_its_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("sft:\n  lr: [1e-5\n  epochs: 2\n")
    out = engine("validate", str(bad))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "line" in out.stderr


def test_validate_names_a_missing_file(tmp_path):
    out = engine("validate", str(tmp_path / "nope.yaml"))
    assert out.returncode == 2 and "nope.yaml" in out.stderr and "Traceback" not in out.stderr


# --- run --------------------------------------------------------------------------------------

def test_a_stage_missing_from_the_engine_is_refused_by_name(monkeypatch):
    # Every stage is implemented now; an engine bundle of an older version may lack some.
    import engine.runner as runner
    from engine.schema import load_config

    monkeypatch.setattr(runner, "IMPLEMENTED", {s: m for s, m in runner.IMPLEMENTED.items()
                                                if s not in ("rl", "eval")})
    config = load_config(SMOKE)
    with pytest.raises(runner.PipelineRefused, match=r"rl, eval are not implemented.*--stages"):
        runner.select_stages(config, None)
    with pytest.raises(runner.PipelineRefused, match="rl"):
        runner.select_stages(config, ["seeds", "rl"])
    assert runner.select_stages(config, ["seeds", "sft"]) == ["seeds", "sft"]


def test_run_refuses_a_disabled_or_unknown_stage(tmp_path):
    run_dir = tmp_path / "run"
    out = engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "seeds",
                 "seeds.enabled=false")
    assert out.returncode == 2 and "seeds.enabled=true" in out.stderr
    out = engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "sedes")
    assert out.returncode == 2 and "unknown stage" in out.stderr
    assert not run_dir.exists()


def test_run_seeds_writes_state_events_store_and_a_rerun_skips_it(tmp_path):
    run_dir = tmp_path / "run"
    out = engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "seeds")
    assert out.returncode == 0, out.stderr
    state = json.loads((run_dir / "state.json").read_text())
    assert state["stages"]["seeds"]["status"] == "completed"
    imported = state["stages"]["seeds"]["summary"]["imported"]
    assert imported > 0
    assert (run_dir / "config.yaml").read_text().startswith("schema_version:")
    assert stage_statuses(run_dir, "seeds") == ["started", "completed"]
    assert any(e["kind"] == "progress" for e in events(run_dir, "seeds"))
    assert seed_rows(run_dir) == (imported, imported)

    again = engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "seeds")
    assert again.returncode == 0, again.stderr
    assert stage_statuses(run_dir, "seeds") == ["started", "completed", "skipped"]
    seqs = [e["seq"] for e in events(run_dir, "seeds")]
    assert seqs == sorted(set(seqs))
    assert seed_rows(run_dir) == (imported, imported)

    status = engine("status", "--run-dir", str(run_dir))
    assert status.returncode == 0
    info = json.loads(status.stdout)
    assert info["state"]["stages"]["seeds"]["status"] == "completed"
    assert info["events"]["seeds.0"]["stage"] == 3


def test_a_rerun_with_a_different_config_is_refused_unless_accepted(tmp_path):
    run_dir = tmp_path / "run"
    assert engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir),
                  "--stages", "seeds").returncode == 0
    out = engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "seeds",
                 "run.seed=7")
    assert out.returncode == 2 and "different config" in out.stderr
    out = engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "seeds",
                 "run.seed=7", "--update-config")
    assert out.returncode == 0, out.stderr
    assert list(run_dir.glob("config.prev-*.yaml"))


def test_run_on_a_corrupted_state_file_says_what_to_do_and_keeps_it(tmp_path):
    run_dir = tmp_path / "run"
    assert engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir),
                  "--stages", "seeds").returncode == 0
    (run_dir / "state.json").write_text('{"stages": {"seeds": ')
    out = engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "seeds")
    assert out.returncode == 2 and "corrupted" in out.stderr and "Traceback" not in out.stderr
    assert (run_dir / "state.json").read_text() == '{"stages": {"seeds": '
    assert seed_rows(run_dir)[0] > 0


def test_a_failing_stage_is_recorded_with_its_reason(tmp_path):
    run_dir = tmp_path / "run"
    out = engine("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "seeds",
                 seeds_from(tmp_path / "missing.jsonl"))
    assert out.returncode == 1
    state = json.loads((run_dir / "state.json").read_text())
    assert state["stages"]["seeds"]["status"] == "failed"
    assert "missing.jsonl" in state["stages"]["seeds"]["reason"]
    assert stage_statuses(run_dir, "seeds") == ["started", "failed"]


def _wait_for_progress(run_dir: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    path = run_dir / "events" / "seeds.0.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"finished before it could be stopped: {proc.stderr.read()}"
        if path.exists() and '"kind":"progress"' in path.read_text():
            return
        time.sleep(0.005)
    raise AssertionError("no progress event")


@pytest.mark.slow
def test_a_stage_killed_mid_way_resumes_with_nothing_lost_or_duplicated(tmp_path):
    n = 150_000
    data = write_seed_file(tmp_path / "big.jsonl", n)
    run_dir = tmp_path / "run"
    args = ("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "seeds",
            seeds_from(data), "seeds.max_seeds=null")
    proc = start_engine(*args)
    _wait_for_progress(run_dir, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = json.loads((run_dir / "state.json").read_text())
    assert state["stages"]["seeds"]["status"] == "running"  # nobody got to record the kill
    partial = seed_rows(run_dir)[0]
    assert 0 < partial < n

    out = engine(*args, timeout=300)
    assert out.returncode == 0, out.stderr
    state = json.loads((run_dir / "state.json").read_text())
    assert state["stages"]["seeds"]["status"] == "completed"
    assert state["stages"]["seeds"]["attempts"] == 2
    assert seed_rows(run_dir) == (n, n)


@pytest.mark.slow
def test_sigterm_saves_marks_interrupted_and_the_rerun_finishes(tmp_path):
    n = 150_000
    data = write_seed_file(tmp_path / "big.jsonl", n)
    run_dir = tmp_path / "run"
    args = ("run", "--config", str(SMOKE), "--run-dir", str(run_dir), "--stages", "seeds",
            seeds_from(data), "seeds.max_seeds=null")
    proc = start_engine(*args)
    _wait_for_progress(run_dir, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 143
    state = json.loads((run_dir / "state.json").read_text())
    assert state["stages"]["seeds"]["status"] == "interrupted"
    assert stage_statuses(run_dir, "seeds") == ["started", "interrupted"]
    assert 0 < seed_rows(run_dir)[0] < n

    out = engine(*args, timeout=300)
    assert out.returncode == 0, out.stderr
    assert seed_rows(run_dir) == (n, n)
    assert stage_statuses(run_dir, "seeds") == ["started", "interrupted", "started", "completed"]


# --- status and doctor ------------------------------------------------------------------------

def test_status_of_a_missing_run_dir_is_a_clear_error(tmp_path):
    out = engine("status", "--run-dir", str(tmp_path / "nope"))
    assert out.returncode == 2 and "no run dir" in out.stderr and "Traceback" not in out.stderr


def test_doctor_reports_host_facts_as_json(tmp_path):
    out = engine("doctor", "--work-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    facts = json.loads(out.stdout)
    assert facts["cpus"] >= 1 and facts["memory_gb"] > 0
    assert facts["work_dir"]["free_gb"] > 0 and facts["work_dir"]["exists"]
    assert facts["python"]["version"].startswith("3.")
    assert set(facts["packages"]) >= {"torch", "transformers", "deepspeed", "trl", "vllm"}
    assert facts["packages"]["pydantic"]
    assert isinstance(facts["slurm"]["present"], bool)
    assert facts["stages"]["sft"]["ok"] is (not facts["stages"]["sft"]["missing"])


def _modules_after(calls: str) -> set[str]:
    """Third-party top-level modules imported by running the CLI calls in a fresh process."""
    probe = textwrap.dedent(f"""
        import contextlib, io, sys, sysconfig
        from engine.__main__ import main
        with contextlib.redirect_stdout(io.StringIO()):
            {calls}
        site = sysconfig.get_paths()["purelib"]
        third = sorted({{name.split(".")[0] for name, mod in list(sys.modules.items())
                        if (getattr(mod, "__file__", None) or "").startswith(site)}})
        print(" ".join(third))
    """)
    out = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert out.returncode == 0, out.stderr
    # The editable install's import finder and setuptools' shim live in site-packages too.
    return {m for m in out.stdout.split()
            if not m.startswith("__editable__") and m != "_distutils_hack"}


def test_validate_and_status_import_nothing_but_pydantic_and_yaml():
    calls = (f"assert main(['validate', {str(XCODER)!r}]) == 0; "
             "assert main(['status', '--run-dir', '/nonexistent']) == 2")
    allowed = {"pydantic", "pydantic_core", "yaml", "_yaml", "typing_extensions",
               "annotated_types", "typing_inspection"}
    assert _modules_after(calls) <= allowed


def test_doctor_reads_library_versions_without_importing_them():
    # torch is imported when present (to ask about CUDA); the heavy rest is only looked up.
    imported = _modules_after("assert main(['doctor']) == 0")
    assert not imported & {"transformers", "deepspeed", "trl", "vllm", "accelerate",
                           "flash_attn", "PySide6", "paramiko"}
