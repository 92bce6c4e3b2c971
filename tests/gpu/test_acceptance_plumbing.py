"""CPU tests of the GPU acceptance script (tests/gpu/acceptance.sh, issue #20): everything it
does that needs no CUDA, so the one short GPU call does not fail on a typo.

- the driver's records and summary: a passing, a skipped, a crashed and a timed-out check;
  the summary's documented shape; checks the driver never reached count as failed;
- the wheel step: a real ``pip install --no-index --no-deps --target`` of a wheel built here,
  then the import probe with that site dir on PYTHONPATH; the wheel-set check against the list
  carry_wheels.sh downloads;
- the bash driver: a check killed by its cap still leaves a summary (ok=false, exit 1); an
  unknown check name is refused; the wheel step through the driver;
- (slow) the whole dry mode, ``acceptance.sh --cpu``: every check end to end on this CPU with
  tiny shapes (flex BlockMask training skipped: no FlexAttention backward on CPU).

Run: .venv/bin/python -m pytest tests/gpu/test_acceptance_plumbing.py -q [-m "not slow"]
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
DRIVER = HERE / "acceptance.sh"
sys.path.insert(0, str(HERE))
import acceptance_checks as ac  # noqa: E402

SUMMARY_KEYS = {"version", "ok", "device", "seconds", "budget_s", "passed", "skipped", "failed",
                "checks", "targets", "figures"}
RECORD_KEYS = {"name", "ok", "seconds", "rc", "cap_s", "figures"}


def build_wheel(folder: Path, dist: str = "tinycarry", version: str = "0.1") -> Path:
    """A minimal pure-Python wheel (one module with __version__), built by hand."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-{version}-py3-none-any.whl"
    info = f"{dist}-{version}.dist-info"
    files = {f"{dist}.py": f"__version__ = {version!r}\n",
             f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n",
             f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                              "Tag: py3-none-any\n"}
    record = []
    for name, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=")
        record.append(f"{name},sha256={digest.decode()},{len(text.encode())}")
    files[f"{info}/RECORD"] = "\n".join(record + [f"{info}/RECORD,,"]) + "\n"
    with zipfile.ZipFile(path, "w") as z:
        for name, text in files.items():
            z.writestr(name, text)
    return path


def driver(tmp_path: Path, *args: str, timeout: float = 120, **env: str):
    out = tmp_path / "out"
    full = {**os.environ, "OUT": str(out), "PYTHON": sys.executable,
            "ACCEPTANCE_WORK": str(tmp_path / "work"),
            "ACCEPTANCE_WHEELS": str(tmp_path / "no-wheels"), **env}
    proc = subprocess.run(["bash", str(DRIVER), *args], cwd=ROOT, env=full, text=True,
                          capture_output=True, timeout=timeout)
    summary = out / "acceptance_summary.json"
    return proc, (json.loads(summary.read_text()) if summary.is_file() else None), out


# --- records and summary ----------------------------------------------------------------------


def test_record_of_a_passing_and_a_skipped_check(tmp_path):
    res = tmp_path / "r.json"
    ac.write_json(res, {"name": "sft_sdpa", "ok": True, "figures": {"tokens_per_s": 5.0}})
    rec = ac.make_record("sft_sdpa", 0, 3.25, 40, res, None)
    assert set(rec) >= RECORD_KEYS and rec["ok"] and rec["figures"] == {"tokens_per_s": 5.0}
    ac.write_json(res, {"name": "rl", "ok": True, "skipped": "no bwrap: x", "figures": {}})
    rec = ac.make_record("rl", 0, 1.0, 45, res, None)
    assert rec["ok"] and rec["skipped"] == "no bwrap: x" and "log_tail" not in rec


def test_record_of_a_timed_out_and_a_crashed_check_is_not_ok(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("loading...\nstep 3/30\n")
    rec = ac.make_record("zero3", 124, 50.0, 50, tmp_path / "missing.json", log)
    assert not rec["ok"] and "timed out after 50" in rec["error"]
    assert rec["log_tail"].endswith("step 3/30\n") and rec["log"] == "x.log"
    rec = ac.make_record("eval", 1, 2.0, 30, tmp_path / "missing.json", log)
    assert not rec["ok"] and rec["error"] == "exit code 1 without a result"
    # A result that says ok but a non-zero exit (e.g. killed while exiting) is not ok.
    res = tmp_path / "r.json"
    ac.write_json(res, {"name": "eval", "ok": True, "figures": {}})
    rec = ac.make_record("eval", 137, 30.0, 30, res, log)
    assert not rec["ok"] and "exit code 137" in rec["error"]


def test_trim_log_keeps_the_tail(tmp_path):
    log = tmp_path / "big.log"
    log.write_bytes(b"a" * 5000 + b"THE END")
    ac.trim_log(log, keep=100)
    data = log.read_bytes()
    assert data.endswith(b"THE END") and len(data) < 200


def test_summary_shape_and_missing_checks_fail():
    records = [
        {"name": "prepare", "ok": True, "seconds": 9.0, "figures": {"device": "H100"}},
        {"name": "rl", "ok": True, "skipped": "no bwrap: y", "seconds": 3.0, "figures": {}},
        {"name": "zero3", "ok": False, "error": "timed out after 50 s (cap)", "seconds": 50},
        {"name": "bench", "ok": True, "seconds": 60, "figures": {
            "best_ratio_vs_padded": 3.2, "targets": {"ratio_vs_padded>=3": True}}},
    ]
    s = ac.make_summary(records, "cuda", 130.0, 470, ["prepare", "rl", "zero3", "bench", "eval"])
    assert set(s) == SUMMARY_KEYS and s["version"] == ac.SUMMARY_VERSION
    assert not s["ok"] and s["passed"] == ["prepare", "bench"] and s["skipped"] == ["rl"]
    assert s["failed"] == ["zero3", "eval"]
    assert s["checks"]["eval"]["error"].startswith("never ran")
    assert s["checks"]["rl"] == {"status": "skipped", "seconds": 3.0, "skipped": "no bwrap: y"}
    assert s["targets"] == {"ratio_vs_padded>=3": True}
    assert s["figures"]["prepare"] == {"device": "H100"}
    json.dumps(s)  # plain JSON
    ok = ac.make_summary(records[:2], "cpu", 1.0, None)
    assert ok["ok"] and ok["failed"] == []


def test_record_and_summary_cli(tmp_path):
    jsonl = tmp_path / "a.jsonl"
    res = tmp_path / "r.json"
    ac.write_json(res, {"name": "prepare", "ok": True, "figures": {"params": 1}})
    assert ac.main(["record", "--check", "prepare", "--rc", "0", "--seconds", "1.5",
                    "--check-result", str(res), "--jsonl", str(jsonl)]) == 0
    assert ac.main(["record", "--check", "eval", "--rc", "124", "--seconds", "30",
                    "--cap", "30", "--check-result", str(tmp_path / "none.json"),
                    "--jsonl", str(jsonl)]) == 0
    lines = [json.loads(x) for x in jsonl.read_text().splitlines()]
    assert [(x["name"], x["ok"]) for x in lines] == [("prepare", True), ("eval", False)]
    out = tmp_path / "s.json"
    assert ac.main(["summary", "--jsonl", str(jsonl), "--out", str(out), "--seconds", "31",
                    "--expected", "prepare,eval"]) == 1
    assert json.loads(out.read_text())["failed"] == ["eval"]


def test_a_crashing_check_writes_a_failed_result(tmp_path):
    res = tmp_path / "r.json"
    rc = ac.main(["--device", "cpu", "--work", str(tmp_path / "w"), "--result", str(res),
                  "--name", "sft_sdpa", "sft", "--attention", "sdpa"])
    data = json.loads(res.read_text())
    assert rc == 1 and not data["ok"] and "the prepare check did not run" in data["error"]


# --- wheels -----------------------------------------------------------------------------------


def test_install_wheels_with_real_pip(tmp_path):
    wheels = tmp_path / "whl"
    build_wheel(wheels)
    site = tmp_path / "site"
    res = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, str(HERE / "acceptance_checks.py"), "--result",
                           str(res), "--name", "wheels", "install-wheels", "--wheels",
                           str(wheels), "--site", str(site), "--modules", "tinycarry,json"],
                          capture_output=True, text=True, timeout=120)
    data = json.loads(res.read_text())
    assert proc.returncode == 0 and data["ok"], (proc.stdout, proc.stderr)
    assert (site / "tinycarry.py").is_file()
    assert data["figures"]["imports"]["tinycarry"] == "0.1"
    assert data["figures"]["wheels"] == ["tinycarry-0.1-py3-none-any.whl"]


def test_install_wheels_fails_when_a_module_does_not_import(tmp_path):
    build_wheel(tmp_path / "whl")
    with pytest.raises(ac.CheckFailed, match="do not import"):
        ac.install_wheels(tmp_path / "whl", tmp_path / "site", ["tinycarry", "no_such_mod_x"],
                          sys.executable)
    with pytest.raises(ac.CheckFailed, match="no \\*.whl"):
        ac.install_wheels(tmp_path / "empty", tmp_path / "site2", ["json"], sys.executable)


def test_wheel_set_matches_carry_script_and_python_tag():
    script = (HERE / "carry_wheels.sh").read_text()
    for dist in ac.CARRIED_WHEELS:
        assert f'"{dist}"' in script or f"{dist}${{" in script or dist in script, dist
    names = ["trl-1.16.0-py3-none-any.whl", "datasets-5.2.0-py3-none-any.whl",
             "dill-0.4.1-py3-none-any.whl", "multiprocess-0.70.19-py312-none-any.whl",
             "hjson-3.1.0-py3-none-any.whl", "pydantic-2.14.4-py3-none-any.whl",
             "pydantic_core-2.50.5-cp312-cp312-manylinux2014_x86_64.manylinux_2_17_x86_64.whl",
             "annotated_types-0.8.0-py3-none-any.whl",
             "typing_inspection-0.4.5-py3-none-any.whl", "deepspeed-0.19.8-py3-none-any.whl"]
    assert ac.wheel_set_problems(names) == []
    bad = ac.wheel_set_problems([n.replace("cp312", "cp311") for n in names[:-1]])
    assert any("not cp312" in p for p in bad) and "missing deepspeed" in bad
    carried = ROOT / ".whl"
    if carried.is_dir() and any(carried.glob("*.whl")):  # made by carry_wheels.sh here
        assert ac.wheel_set_problems(sorted(p.name for p in carried.glob("*.whl"))) == []


def test_scripts_parse():
    for script in ("acceptance.sh", "carry_wheels.sh"):
        proc = subprocess.run(["bash", "-n", str(HERE / script)], capture_output=True,
                              text=True)
        assert proc.returncode == 0, proc.stderr
    assert os.access(DRIVER, os.X_OK) and os.access(HERE / "carry_wheels.sh", os.X_OK)


def test_caps_fit_the_eight_minute_budget():
    text = DRIVER.read_text()
    caps = dict(pair.strip("[ ").split("]=") for pair in
                text.split("declare -A CAP=(")[1].split(")")[0].split())
    assert sum(int(v) for v in caps.values()) <= 480, caps
    order = text.split('ALL="')[1].split('"')[0].split()
    assert set(order) == set(caps)
    # every check in ALL has a `cap NAME` line, in that order
    lines = [ln.split()[1] for ln in text.splitlines() if ln.startswith("cap ")]
    assert lines == [n for n in order if n != "wheels"]


# --- the bash driver --------------------------------------------------------------------------


def test_driver_records_a_check_killed_by_its_cap_and_still_summarises(tmp_path):
    proc, summary, out = driver(tmp_path, "--cpu", "--only", "prepare,loss_equal",
                                ACCEPTANCE_CAPS="prepare=1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert summary is not None and set(summary) == SUMMARY_KEYS
    assert summary["failed"] == ["prepare", "loss_equal"]
    assert "timed out after 1" in summary["checks"]["prepare"]["error"]
    lines = [json.loads(x) for x in (out / "acceptance.jsonl").read_text().splitlines()]
    assert [x["name"] for x in lines] == ["prepare", "loss_equal"]
    assert (out / "logs" / "prepare.log").is_file()


def test_driver_refuses_an_unknown_check(tmp_path):
    proc, summary, _ = driver(tmp_path, "--cpu", "--only", "sft_flexx")
    assert proc.returncode == 2 and "unknown check sft_flexx" in proc.stderr
    assert summary is None


def test_driver_installs_wheels_into_a_site_dir(tmp_path):
    build_wheel(tmp_path / "whl")
    proc, summary, out = driver(tmp_path, "--cpu", "--only", "wheels",
                                ACCEPTANCE_WHEELS=str(tmp_path / "whl"),
                                ACCEPTANCE_WHEEL_MODULES="tinycarry")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary["passed"] == ["wheels"]
    figures = summary["figures"]["wheels"]
    assert figures["imports"] == {"tinycarry": "0.1"}
    assert Path(figures["site"], "tinycarry.py").is_file()


def test_driver_without_wheels_says_so(tmp_path):
    proc, summary, _ = driver(tmp_path, "--cpu", "--only", "wheels")
    assert proc.returncode == 0 and summary["skipped"] == ["wheels"]
    assert "using the installed packages" in summary["checks"]["wheels"]["skipped"]


@pytest.mark.slow
def test_dry_mode_runs_every_check_on_cpu(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("trl")
    pytest.importorskip("deepspeed")
    # Generous caps: a first DeepSpeed run on a fresh CPU machine JIT-builds an op (~90 s).
    proc, summary, out = driver(
        tmp_path, "--cpu", timeout=900, ACCEPTANCE_BUDGET_S="850",
        ACCEPTANCE_CAPS="prepare=120,loss_equal=120,sft_sdpa=120,sft_padded=120,zero2=240,"
                        "zero3=240,rl=120,eval=120,bench=120")
    assert summary is not None, proc.stdout + proc.stderr
    assert summary["ok"] and proc.returncode == 0, json.dumps(summary["checks"], indent=1)
    names = ["wheels", "prepare", "loss_equal", "sft_flex", "sft_sdpa", "sft_padded", "zero2",
             "zero3", "rl", "eval", "bench"]
    assert list(summary["checks"]) == names
    assert summary["device"] == "cpu"
    assert "CUDA-only" in summary["checks"]["sft_flex"]["skipped"]
    for name in ("prepare", "loss_equal", "sft_sdpa", "sft_padded", "zero2", "zero3", "bench"):
        assert summary["checks"][name]["status"] == "ok", name
    for name in ("rl", "eval"):  # the sandbox may be missing here too
        check = summary["checks"][name]
        assert check["status"] == "ok" or check["skipped"].startswith("no bwrap"), check
    f = summary["figures"]
    assert f["sft_sdpa"]["steps"] == ac.PROFILES["cpu"]["sft_steps"]
    assert f["sft_padded"]["padding_frac"] > 0
    assert f["loss_equal"]["abs_diff"]["packed_sdpa"] < 1e-4
    for z in ("zero2", "zero3"):
        assert f[z]["resumed_from"] and f[z]["compared_steps"], f[z]
        assert max(f[z]["abs_diff"].values()) < 1e-5
    if summary["checks"]["rl"]["status"] == "ok":
        assert f["rl"]["steps"] == [1, 2] and not f["rl"]["missing_keys"]
    assert set(f["bench"]["targets"]) == {"ratio_vs_padded>=3", "mfu>=0.30"}
    assert len((out / "acceptance.jsonl").read_text().splitlines()) == len(names)
