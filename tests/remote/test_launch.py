"""remote/launch.py and the headless CLI: plan, preview, launch, follow, hand over, fetch.

Run: .venv/bin/python -m pytest tests/remote/test_launch.py -q

Real processes everywhere: "This computer" runs the engine as a detached process; the two
"clusters" of the placement test are the two real sshd servers of fixtures_ssh.py (they are
this machine, reached over SSH, each with its own work dir); the end-to-end test submits the
smoke preset through SSH to the real Slurm of fixtures_slurm.py and streams its events back.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from engine.paths import ASSETS_DIR
from engine.schema import load_config
from remote.errors import LaunchError
from remote.launch import Launcher, plan_segments, selected_stages
from remote.profiles import LOCAL, ClusterProfile, ProfileStore, runner_for
from remote.run_registry import RunRegistry

SMOKE = ASSETS_DIR / "presets" / "smoke-cpu.yaml"


@pytest.fixture
def desktop(tmp_path, monkeypatch):
    """Config and data dirs of a fresh desktop."""
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SYNTHSMITH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return tmp_path


def wait_for(launcher, run_id, *, timeout=120.0, until=("completed", "failed", "cancelled")):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = launcher.refresh(run_id)
        if record.status in until:
            return record
        time.sleep(0.5)
    raise AssertionError(f"{run_id} still {launcher.refresh(run_id).status} after {timeout} s")


def ssh_profile(ssh_env, name, server, tmp_path, **kw) -> ClusterProfile:
    return ClusterProfile(name=name, host="127.0.0.1", port=server.port, user=ssh_env.pair.user,
                          identity_file=str(ssh_env.pair.client_key), use_agent=False,
                          workdir=str(tmp_path / f"cluster-{name}"), python=sys.executable, **kw)


def stub_config(tmp_path, stub) -> Path:
    """The smoke preset with its LLMs on the scripted server (real answers, not noise)."""
    import yaml

    data = yaml.safe_load(SMOKE.read_text())
    data["llms"] = {name: {"backend": "openai", "base_url": stub.url, "model": "stub-model",
                           "timeout_s": 10.0} for name in ("generator", "solver")}
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def ssh_launcher(ssh_env, store):
    options = {"ssh_config": ssh_env.ssh_config, "known_hosts": ssh_env.known_hosts}
    return Launcher(store, RunRegistry(), runner_factory=lambda p: runner_for(p, **options))


# ---------------------------------------------------------------------------------------------
# Planning (no cluster)


def test_stages_are_cut_into_segments_by_placement(desktop):
    store = ProfileStore()
    store.add(ClusterProfile(name="cpu", host="cpu.example"))
    store.add(ClusterProfile(name="h20", host="h20.example", scheduler="slurm"))
    config = load_config(SMOKE, ["features.placement=cpu", "evolve.placement=cpu",
                                 "verify.placement=h20"])
    stages = ["seeds", "features", "evolve", "tasks", "verify", "curate"]
    segs = plan_segments(config, stages, None, store)
    assert [(s.cluster, s.stages) for s in segs] == [
        (LOCAL, ["seeds"]), ("cpu", ["features", "evolve"]), (LOCAL, ["tasks"]),
        ("h20", ["verify"]), (LOCAL, ["curate"])]
    assert [s.cluster for s in plan_segments(config, stages, "cpu", store)] == ["cpu"]
    with pytest.raises(LaunchError, match=r"tasks.placement is 'nowhere'.*cluster add"):
        plan_segments(load_config(SMOKE, ["tasks.placement=nowhere"]), stages, None, store)
    assert selected_stages(config, None)[-3:] == ["sft", "rl", "eval"]


def test_preview_shows_the_exact_commands_and_sends_nothing(desktop):
    store = ProfileStore()
    store.add(ClusterProfile(name="gpu", host="gpu.example", scheduler="slurm",
                             slurm={"partition": "h200"}))
    launcher = Launcher(store, RunRegistry(), runner_factory=lambda p: pytest.fail("no runner"))
    text = launcher.preview(load_config(SMOKE, ["verify.placement=gpu", "verify.resources.nodes=3"]),
                            stages=["seeds", "verify"])
    assert "# This computer (direct): seeds" in text and "# gpu (slurm): verify" in text
    assert "#SBATCH --partition=h200" in text and "--array=0-2" in text
    assert "sbatch" in text


# ---------------------------------------------------------------------------------------------
# This computer


def test_a_local_launch_runs_detached_and_is_followed_to_the_end(desktop):
    launcher = Launcher(ProfileStore(), RunRegistry())
    record = launcher.launch(load_config(SMOKE), stages=["seeds"], run_id="local-1")
    assert record.segments[0].jobs and record.clusters[LOCAL]["run_dir"].endswith("runs/local-1")
    done = wait_for(launcher, "local-1")
    assert done.status == "completed", done.segments[0].reason
    assert launcher.remote_state("local-1")["stages"]["seeds"]["status"] == "completed"
    got = launcher.fetch("local-1", "store", desktop / "out")
    assert got == [desktop / "out" / "data" / "store.sqlite"] and got[0].stat().st_size > 0
    assert [r.run_id for r in RunRegistry().list()] == ["local-1"]
    with pytest.raises(LaunchError, match="exists already"):
        launcher.launch(load_config(SMOKE), stages=["seeds"], run_id="local-1")


# ---------------------------------------------------------------------------------------------
# Two clusters: stages placed on different sshd servers, artifacts relayed


@pytest.mark.slow
@pytest.mark.parametrize("how", ["relay", "direct"])
def test_stages_on_two_clusters_hand_over_their_artifacts(desktop, ssh_env, openai_stub, how):
    """relay: beta cannot reach alpha by itself (no key there), the desktop relays; direct:
    beta's own ssh config reaches alpha, so it pulls the files itself."""
    from synth_responder import SynthResponder

    openai_stub.rule = SynthResponder(seed=1)
    store = ProfileStore()
    store.add(ssh_profile(ssh_env, "alpha", ssh_env.target, desktop))
    env = {}
    if how == "direct":
        reach = desktop / "beta_ssh_config"
        reach.write_text(f"Host 127.0.0.1\n  IdentityFile {ssh_env.pair.client_key}\n"
                         f"  UserKnownHostsFile {ssh_env.known_hosts}\n")
        env = {"SYNTHSMITH_SSH_CONFIG": str(reach)}
    store.add(ssh_profile(ssh_env, "beta", ssh_env.jump, desktop, env=env))
    cfg = stub_config(desktop, openai_stub)
    overrides = ["seeds.placement=alpha", "features.placement=beta"]
    launcher = ssh_launcher(ssh_env, store)
    try:
        record = launcher.launch(load_config(cfg, overrides), stages=["seeds", "features"],
                                 run_id="two-clusters")
        assert [s.cluster for s in record.segments] == ["alpha", "beta"]
        done = wait_for(launcher, "two-clusters", timeout=180)
        assert done.status == "completed", [s.reason for s in done.segments]
        beta_dir = Path(done.clusters["beta"]["run_dir"])
        alpha_dir = Path(done.clusters["alpha"]["run_dir"])
        assert alpha_dir.parent.parent.name == "cluster-alpha"
        state = json.loads((beta_dir / "state.json").read_text())
        assert state["stages"]["features"]["status"] == "completed"
        assert state["stages"]["features"]["summary"]["ok"] == 8  # the seeds came over
        assert not (alpha_dir / "events" / "features.0.jsonl").exists()
        moved = {m["file"]: m["how"] for m in done.handovers}
        assert moved.get("data/store.sqlite") == how and set(moved.values()) == {how}
    finally:
        launcher.close()


# ---------------------------------------------------------------------------------------------
# End to end: the smoke preset over SSH onto Slurm, its events streamed back


@pytest.mark.slow
def test_the_smoke_preset_runs_over_ssh_on_slurm_and_streams_its_events_back(
        desktop, ssh_env, slurm_cluster):
    from remote.stream import EventTail

    store = ProfileStore()
    store.add(ssh_profile(ssh_env, "slurm-box", ssh_env.target, desktop, scheduler="slurm",
                          env=dict(slurm_cluster.env),
                          slurm={"partition": slurm_cluster.partition}))
    stages = ["seeds", "features", "evolve", "tasks", "solutions"]
    launcher = ssh_launcher(ssh_env, store)
    try:
        config = load_config(SMOKE, ["seeds.max_seeds=3", "features.json_retries=0"])
        record = launcher.launch(config, stages=stages, cluster="slurm-box",
                                 run_id="smoke-on-slurm")
        assert len(record.segments[0].jobs) == len(stages)  # one job per stage, chained
        run_dir = record.clusters["slurm-box"]["run_dir"]
        tail = EventTail(launcher.runner("slurm-box"), run_dir, desktop / "event-cache")
        received = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            received += tail.poll()
            if launcher.refresh("smoke-on-slurm").status != "running":
                break
            time.sleep(0.5)
        received += tail.poll()
        done = launcher.refresh("smoke-on-slurm")
        assert done.status == "completed", done.segments[0].reason
    finally:
        launcher.close()
    # What arrived is exactly what the engine wrote on the cluster.
    written = set()
    for path in Path(run_dir, "events").glob("*.jsonl"):
        for line in path.read_text().splitlines():
            written.add((path.stem, json.loads(line)["seq"]))
    got = [(f"{e.stage}.{e.rank}", e.seq) for e in received]
    assert len(got) == len(set(got)) and set(got) == written
    finished = {e.stage for e in received if e.kind == "stage" and e.data.status == "completed"}
    assert finished == set(stages)
    assert any(e.kind == "metric" and "synth/json_fail_rate" in e.data for e in received)
    # A reopened window shows the history at once, from the local cache.
    again = EventTail(launcher.runner("slurm-box"), run_dir, desktop / "event-cache")
    assert len(again.history()) == len(received)


def test_a_relayed_download_resumes_and_refuses_a_corrupt_copy(tmp_path):
    import os

    from remote.artifact_copy import relay_download
    from remote.runner import LocalRunner

    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(3 << 20))
    local = tmp_path / "got" / "src.bin"
    local.parent.mkdir()
    part = local.with_name("src.bin.part")
    part.write_bytes(src.read_bytes()[: 1 << 20])  # a download cut off at 1 MiB
    reads = []
    runner = LocalRunner()
    original = runner.read_bytes
    runner.read_bytes = lambda p, offset=0, length=None: (reads.append(offset),
                                                          original(p, offset, length))[1]
    relay_download(runner, str(src), local)
    assert local.read_bytes() == src.read_bytes() and not part.exists()
    assert reads[0] == 1 << 20  # it went on from where it stopped
    part.write_bytes(b"x" * (1 << 20))  # a partial copy that does not match the source
    with pytest.raises(LaunchError, match="arrived corrupted"):
        relay_download(runner, str(src), local)
    assert not part.exists()
