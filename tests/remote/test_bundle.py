"""remote/bundle.py: the content-addressed engine upload, on "This computer" and over real SSH.

Run: .venv/bin/python -m pytest tests/remote/test_bundle.py -q

Every test runs twice: with ``LocalRunner`` and with ``SSHRunner`` against the loopback sshd
of fixtures_ssh.py (the "cluster" is this machine, so the tests inspect its files directly).
The work dir holds a space, a quote and a ``$`` so any quoting slip shows. The remote Python
is this test's interpreter: it has pydantic and PyYAML, which the bundle does not carry.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from pathlib import Path

import pytest

from remote.bundle import (
    MANIFEST_NAME,
    OBJECTS_DIR,
    REPO_ROOT,
    Manifest,
    build_manifest,
    sync_bundle,
)
from remote.errors import RemoteSetupError
from remote.runner import LocalRunner


@pytest.fixture(params=["local", "ssh"])
def runner(request):
    if request.param == "local":
        yield LocalRunner()
        return
    from remote.ssh import SSHRunner

    env = request.getfixturevalue("ssh_env")
    r = SSHRunner("target", ssh_config=env.ssh_config, known_hosts=env.known_hosts,
                  use_agent=False)
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def workdir(tmp_path) -> str:
    return str(tmp_path / "work dir's $HOME")


@pytest.fixture
def repo(tmp_path) -> Path:
    """A private copy of the checkout's engine and assets, free to edit."""
    root = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO_ROOT / "engine", root / "engine", ignore=ignore)
    shutil.copytree(REPO_ROOT / "assets", root / "assets", ignore=ignore)
    return root


def snapshot(folder: Path) -> dict[str, tuple[str, int, int]]:
    """Every file under ``folder``: content hash, inode and mtime (any rewrite shows)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            st = p.stat()
            out[p.relative_to(folder).as_posix()] = (
                hashlib.sha256(p.read_bytes()).hexdigest(), st.st_ino, st.st_mtime_ns)
    return out


# --- the manifest ----------------------------------------------------------------------------


def test_every_assets_path_a_preset_names_travels_in_the_bundle():
    """A preset run on a cluster reads its assets:// files from the bundle (the eval set once
    was left out, and the smoke run's last stage failed there)."""
    import re

    root = Path(__file__).resolve().parents[2]
    files = set(build_manifest(root).files)
    named = {m for p in (root / "assets" / "presets").glob("*.yaml")
             for m in re.findall(r"assets://([\w./-]+)", p.read_text())}
    assert named, "the presets name no assets:// file any more: update this test"
    assert {f"assets/{rel}" for rel in named} <= files


def test_manifest_holds_the_engine_sources_and_runtime_assets_only(repo):
    (repo / "engine" / "__pycache__").mkdir(exist_ok=True)
    (repo / "engine" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\0")
    (repo / "pyproject.toml").write_text("[project]\n")
    m = build_manifest(repo)
    assert "engine/__main__.py" in m.files and "engine/events.py" in m.files
    assert "assets/presets/smoke-cpu.yaml" in m.files
    assert "assets/seeds/seeds.jsonl" in m.files
    assert any(p.startswith("assets/prompts/") for p in m.files)
    assert not [p for p in m.files if "__pycache__" in p or p.endswith(".pyc")]
    assert "pyproject.toml" not in m.files
    data = (repo / "engine" / "events.py").read_bytes()
    assert m.files["engine/events.py"] == hashlib.sha256(data).hexdigest()


def test_manifest_digest_depends_on_every_byte_and_survives_json(repo):
    m = build_manifest(repo)
    assert Manifest.from_json(m.to_json()) == m
    assert build_manifest(repo).digest == m.digest  # deterministic
    with open(repo / "engine" / "doctor.py", "a") as fh:
        fh.write("\n")
    assert build_manifest(repo).digest != m.digest
    forged = json.loads(m.to_json())
    forged["files"]["engine/doctor.py"] = "0" * 64
    with pytest.raises(ValueError, match="does not match"):
        Manifest.from_json(json.dumps(forged))


# --- syncing ---------------------------------------------------------------------------------


def test_first_sync_uploads_everything_and_the_second_nothing(runner, workdir, repo):
    m = build_manifest(repo)
    first = sync_bundle(runner, workdir, repo)
    distinct = set(m.files.values())
    assert (first.uploaded, first.reused, first.already_complete) == (len(distinct), 0, False)
    assert first.bytes == sum((repo / p).stat().st_size for p in
                              {h: p for p, h in m.files.items()}.values())
    bundle = Path(first.bundle_dir)
    assert bundle == Path(workdir) / "engine" / m.digest
    assert Manifest.from_json((bundle / MANIFEST_NAME).read_text()) == m
    for rel, h in m.files.items():
        assert hashlib.sha256((bundle / rel).read_bytes()).hexdigest() == h
    assert sorted(os.listdir(bundle.parent / OBJECTS_DIR)) == sorted(distinct)
    # nothing of the transfer is left behind
    assert sorted(os.listdir(bundle.parent)) == sorted([OBJECTS_DIR, m.digest])

    before = snapshot(bundle)
    second = sync_bundle(runner, workdir, repo)
    assert (second.uploaded, second.bytes, second.already_complete) == (0, 0, True)
    assert second.bundle_dir == first.bundle_dir
    assert snapshot(bundle) == before


def test_the_bundle_runs_the_engine_by_itself(runner, workdir, repo):
    report = sync_bundle(runner, workdir, repo)
    where = runner.run([sys.executable, "-c", "import engine; print(engine.__file__)"],
                       cwd=report.bundle_dir, timeout=60).check()
    assert where.stdout.strip() == str(Path(report.bundle_dir) / "engine" / "__init__.py")
    result = runner.run([sys.executable, "-m", "engine", "validate",
                         "assets/presets/smoke-cpu.yaml", "--json"],
                        cwd=report.bundle_dir, timeout=120)
    assert result.ok, result.stderr
    # and the assets resolve inside the bundle, not in the checkout
    probe = runner.run([sys.executable, "-c",
                        "from engine.paths import ASSETS_DIR; print(ASSETS_DIR)"],
                       cwd=report.bundle_dir, timeout=60).check()
    assert probe.stdout.strip() == str(Path(report.bundle_dir) / "assets")


def test_changing_one_file_sends_only_it_and_leaves_the_old_bundle_alone(runner, workdir,
                                                                          repo):
    old = sync_bundle(runner, workdir, repo)
    runner.run([sys.executable, "-m", "engine", "validate", "assets/presets/smoke-cpu.yaml"],
               cwd=old.bundle_dir, timeout=120).check()  # a "running job" used it (__pycache__)
    before = snapshot(Path(old.bundle_dir))

    edited = repo / "engine" / "doctor.py"
    edited.write_text(edited.read_text() + "\n# a newer engine\n")
    new = sync_bundle(runner, workdir, repo)
    assert new.digest != old.digest and new.bundle_dir != old.bundle_dir
    assert (new.uploaded, new.bytes) == (1, edited.stat().st_size)
    assert new.reused == len(build_manifest(repo).files) - 1
    assert Path(new.bundle_dir, "engine", "doctor.py").read_bytes() == edited.read_bytes()
    assert snapshot(Path(old.bundle_dir)) == before  # byte for byte, not even rewritten
    assert Path(old.bundle_dir, MANIFEST_NAME).exists()
    runner.run([sys.executable, "-m", "engine", "validate", "assets/presets/smoke-cpu.yaml"],
               cwd=new.bundle_dir, timeout=120).check()


def test_an_interrupted_sync_is_completed_by_the_next(runner, workdir, repo):
    first = sync_bundle(runner, workdir, repo)
    m = build_manifest(repo)
    bundle = Path(first.bundle_dir)
    # The crash: no manifest yet, one object never arrived, one bundle file half-written,
    # one never copied.
    (bundle / MANIFEST_NAME).unlink()
    lost = m.files["engine/events.py"]
    (bundle.parent / OBJECTS_DIR / lost).unlink()
    (bundle / "engine" / "schema.py").write_bytes(b"half a fi")
    (bundle / "assets" / "presets" / "smoke-cpu.yaml").unlink()

    report = sync_bundle(runner, workdir, repo)
    assert (report.uploaded, report.already_complete) == (1, False)
    assert report.bytes == (repo / "engine" / "events.py").stat().st_size
    assert Manifest.from_json((bundle / MANIFEST_NAME).read_text()) == m
    for rel, h in m.files.items():
        assert hashlib.sha256((bundle / rel).read_bytes()).hexdigest() == h, rel
    assert (bundle.parent / OBJECTS_DIR / lost).exists()
    assert sync_bundle(runner, workdir, repo).already_complete


def test_a_corrupt_store_object_is_sent_again(runner, workdir, repo):
    m = build_manifest(repo)
    first = sync_bundle(runner, workdir, repo)
    bundle = Path(first.bundle_dir)
    (bundle / MANIFEST_NAME).unlink()
    (bundle / "engine" / "runner.py").unlink()
    (bundle.parent / OBJECTS_DIR / m.files["engine/runner.py"]).write_bytes(b"bit rot")
    report = sync_bundle(runner, workdir, repo)
    assert report.uploaded == 1
    assert (bundle / "engine" / "runner.py").read_bytes() == (
        repo / "engine" / "runner.py").read_bytes()


def test_a_bundle_modified_on_the_cluster_is_refused_and_left_alone(runner, workdir, repo):
    first = sync_bundle(runner, workdir, repo)
    manifest = Path(first.bundle_dir) / MANIFEST_NAME
    raw = json.loads(manifest.read_text())
    raw["files"]["engine/doctor.py"] = "f" * 64
    manifest.write_text(json.dumps(raw))
    before = snapshot(Path(first.bundle_dir))
    with pytest.raises(RemoteSetupError, match="was modified on the cluster"):
        sync_bundle(runner, workdir, repo)
    assert snapshot(Path(first.bundle_dir)) == before


class _CorruptingRunner(LocalRunner):
    """Damages one bundle file between the copy and the verification (a full disk, say)."""

    def __init__(self, victim: str) -> None:
        super().__init__()
        self.victim = victim

    def run_shell(self, command, *, timeout=None, input=None, max_bytes=None):
        if input and "#verify" in input:
            input = input.replace("echo '#verify'",
                                  f"printf x >> {self.victim!r}\necho '#verify'")
        return super().run_shell(command, timeout=timeout, input=input, max_bytes=max_bytes)


def test_a_verification_mismatch_is_an_error_that_names_the_file(tmp_path, repo):
    workdir = str(tmp_path / "wd")
    digest = build_manifest(repo).digest
    victim = f"{workdir}/engine/{digest}/engine/stages/seeds.py"
    with pytest.raises(RemoteSetupError, match=r"verification failed.*engine/stages/seeds\.py"):
        sync_bundle(_CorruptingRunner(victim), workdir, repo)
    assert not Path(workdir, "engine", digest, MANIFEST_NAME).exists()  # never marked complete
    # the next sync repairs it
    assert not sync_bundle(LocalRunner(), workdir, repo).already_complete
    assert Path(victim).read_bytes() == (repo / "engine" / "stages" / "seeds.py").read_bytes()


def test_a_workdir_under_home_is_made_absolute(monkeypatch, tmp_path, repo):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    report = sync_bundle(LocalRunner(), "~/synth smith", repo)
    assert report.bundle_dir.startswith(str(tmp_path / "home" / "synth smith" / "engine") + "/")
    assert Path(report.bundle_dir, MANIFEST_NAME).exists()
