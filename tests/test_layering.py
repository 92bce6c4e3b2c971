"""The dependency rule of ARCHITECTURE.md §2, checked by import-linter's contracts."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> str:
    exe = Path(sys.executable).with_name("lint-imports")
    found = str(exe) if exe.exists() else shutil.which("lint-imports")
    if found is None:
        pytest.fail("lint-imports is missing: install the test extra (pip install -e '.[test]')")
    return found


def test_engine_and_remote_keep_to_the_layering_contracts():
    out = subprocess.run([_lint_imports(), "--no-cache"], cwd=REPO, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "4 kept, 0 broken" in out.stdout


def test_the_contracts_catch_a_forbidden_import(tmp_path):
    # Copy the packages, plant a violation, and lint the copy: the contract must break.
    for pkg in ("engine", "remote", "gui"):
        shutil.copytree(REPO / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "engine" / "planted.py").write_text("import paramiko\n")
    out = subprocess.run([_lint_imports(), "--no-cache"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(tmp_path),
                                                      "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert "engine.planted -> paramiko" in out.stdout


def test_gui_importing_an_engine_module_outside_the_contracts_breaks_the_build(tmp_path):
    for pkg in ("engine", "remote", "gui"):
        shutil.copytree(REPO / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "gui" / "planted.py").write_text("from engine.store import Store\n")
    (tmp_path / "remote" / "planted.py").write_text("from engine.contracts.store import TaskQuery\n")
    out = subprocess.run([_lint_imports(), "--no-cache"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(tmp_path),
                                                      "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert "gui.planted -> engine.store" in out.stdout
    assert "remote.planted" not in out.stdout  # the contracts are allowed


def test_every_engine_module_but_the_contracts_is_forbidden_to_the_desktop():
    # A new engine module must be added to the contract's list (or to engine.contracts).
    import tomllib

    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    contract = next(c for c in config["tool"]["importlinter"]["contracts"]
                    if c["source_modules"] == ["gui", "remote"])
    forbidden = set(contract["forbidden_modules"])
    modules = {f"engine.{p.stem if p.is_file() else p.name}" for p in (REPO / "engine").iterdir()
               if (p.suffix == ".py" and p.name != "__init__.py")
               or (p.is_dir() and (p / "__init__.py").exists())}
    assert modules - forbidden == {"engine.contracts"}, sorted(modules - forbidden)
    assert forbidden <= modules, sorted(forbidden - modules)


def test_an_import_cycle_between_sibling_modules_breaks_the_build(tmp_path):
    for pkg in ("engine", "remote", "gui"):
        shutil.copytree(REPO / pkg, tmp_path / pkg,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    events = tmp_path / "engine" / "events.py"  # engine.llm imports engine.events already
    events.write_text(events.read_text() + "\nimport engine.llm  # planted\n")
    out = subprocess.run([_lint_imports(), "--no-cache"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120, env={"PYTHONPATH": str(tmp_path),
                                                      "PATH": "/usr/bin:/bin"})
    assert out.returncode != 0
    assert "No cycles are allowed in engine" in out.stdout
