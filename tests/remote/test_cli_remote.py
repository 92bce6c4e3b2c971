"""The headless ``synthsmith`` commands (remote/cli.py) on the real sshd and real processes.

Run: .venv/bin/python -m pytest tests/remote/test_cli_remote.py -q
"""

from __future__ import annotations

import builtins
import json
import re
import sys
import time
from pathlib import Path

import pytest

from engine.paths import ASSETS_DIR
from gui import cli

SMOKE = str(ASSETS_DIR / "presets" / "smoke-cpu.yaml")


@pytest.fixture
def desktop(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SYNTHSMITH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return tmp_path


def answer(monkeypatch, *replies):
    """Type these replies at the prompts; a prompt beyond them fails the test."""
    queue = list(replies)

    def fake_input(prompt=""):
        if not queue:
            pytest.fail(f"unexpected prompt: {prompt}")
        return queue.pop(0)

    monkeypatch.setattr(builtins, "input", fake_input)


def add_cluster(ssh_env, tmp_path, name="lab", **extra):
    args = ["cluster", "add", name, "--host", "127.0.0.1", "--port", str(ssh_env.target.port),
            "--user", ssh_env.pair.user, "--identity-file", str(ssh_env.pair.client_key),
            "--no-agent", "--workdir", str(tmp_path / f"remote-{name}"),
            "--python", extra.pop("python", sys.executable)]
    for key, value in extra.items():
        args += [f"--{key.replace('_', '-')}", value]
    assert cli.main(args) == 0


def test_cluster_add_list_remove(desktop, capsys):
    assert cli.main(["cluster", "add", "h200", "--host", "login.example", "--user", "me",
                     "--jump", "bastion.example", "--scheduler", "slurm", "--partition", "gpu",
                     "--gpu-type", "H200"]) == 0
    assert cli.main(["cluster", "list"]) == 0
    out = capsys.readouterr().out
    assert "This computer: this computer, direct" in out
    assert "h200: me@login.example via bastion.example, slurm, H200" in out
    assert cli.main(["cluster", "add", "bad", "--host", "x;rm -rf ~"]) == 1
    assert "profile 'bad': host" in capsys.readouterr().err
    assert cli.main(["cluster", "add", "tok", "--host", "h", "--env",
                     "HF_TOKEN=hf_abcdefghijklmnopqrstuvwxyz012345"]) == 1
    assert "looks like a secret" in capsys.readouterr().err
    assert cli.main(["cluster", "remove", "h200"]) == 0
    assert cli.main(["cluster", "remove", "h200"]) == 1


def test_cluster_test_asks_before_trusting_a_new_host_key(desktop, ssh_env, capsys,
                                                          monkeypatch):
    known = desktop / "new_known_hosts"  # empty: the host is new (not ssh_env's file)
    (desktop / "ssh_config").write_text("")  # not the user's ~/.ssh/config
    base = ["--known-hosts", str(known), "--ssh-config", str(desktop / "ssh_config")]
    add_cluster(ssh_env, desktop)
    answer(monkeypatch, "no")
    assert cli.main([*base, "cluster", "test", "lab"]) == 1
    err = capsys.readouterr().err
    assert "is not known" in err and "SHA256:" in err and not known.exists()
    assert cli.main([*base, "cluster", "test", "lab", "--accept-fingerprint",
                     "SHA256:wrong"]) == 1
    answer(monkeypatch, "yes")
    assert cli.main([*base, "cluster", "test", "lab"]) == 0
    out = capsys.readouterr().out
    assert "connected to lab" in out and "engine bundle" in out
    assert f"python {sys.version.split()[0]}" in out and "ready" in out
    assert f"127.0.0.1]:{ssh_env.target.port}" in known.read_text()
    answer(monkeypatch)  # known now: no prompt
    assert cli.main([*base, "cluster", "test", "lab"]) == 0
    assert "0 files uploaded" in capsys.readouterr().out  # the bundle is there already


def test_cluster_test_names_a_missing_python_and_the_fix(desktop, ssh_env, capsys):
    add_cluster(ssh_env, desktop, python="/opt/nowhere/bin/python3")
    base = ["--known-hosts", str(ssh_env.known_hosts), "--ssh-config", str(ssh_env.ssh_config)]
    assert cli.main([*base, "cluster", "test", "lab"]) == 1
    err = capsys.readouterr().err
    assert "/opt/nowhere/bin/python3" in err and "set the profile's python" in err


def test_cluster_test_of_an_unreachable_host_says_so(desktop, capsys):
    assert cli.main(["cluster", "add", "gone", "--host", "nonexistent.invalid", "--no-agent"]) == 0
    assert cli.main(["cluster", "test", "gone"]) == 1
    assert "no such host" in capsys.readouterr().err


def test_launch_preview_prints_the_sbatch_script_and_sends_nothing(desktop, capsys):
    assert cli.main(["cluster", "add", "gpu", "--host", "gpu.invalid", "--scheduler", "slurm",
                     "--partition", "h200", "--sbatch=--constraint=h200"]) == 0
    assert cli.main(["launch", SMOKE, "--stages", "seeds,features", "--cluster", "gpu",
                     "--preview"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --partition=h200" in out and "#SBATCH --constraint=h200" in out
    assert "--stages seeds" in out and "sbatch --parsable" in out


def test_launch_status_tail_fetch_on_this_computer(desktop, capsys):
    assert cli.main(["launch", SMOKE, "--stages", "seeds", "--run-id", "cli-run"]) == 0
    assert "launched cli-run" in capsys.readouterr().out
    assert cli.main(["tail", "cli-run", "--follow"]) == 0
    captured = capsys.readouterr()
    text = captured.out.splitlines()  # readable lines by default: time, stage, kind, essentials
    assert text and not any(line.startswith("{") for line in text)
    assert re.fullmatch(r"\d\d:\d\d:\d\d  seeds +stage +started", text[0]), text[0]
    assert re.match(r"\d\d:\d\d:\d\d  seeds +stage +completed", text[-1]), text[-1]
    assert any(re.search(r"seeds +progress +\d+/\d+ seeds \(\d+%\)", line) for line in text)
    assert captured.err.strip() == "# cli-run completed"
    assert cli.main(["tail", "cli-run", "--json"]) == 0  # the exact records, one per line
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(lines) == len(text)
    assert {"stage": "seeds", "kind": "stage"} in [{k: e[k] for k in ("stage", "kind")}
                                                    for e in lines]
    assert lines[-1]["data"]["status"] == "completed"
    assert set(lines[-1]) == {"v", "seq", "t", "stage", "rank", "kind", "step", "data"}
    assert [e["seq"] for e in lines] == list(range(len(lines)))  # one file: every seq once
    assert cli.main(["status", "cli-run"]) == 0
    out = capsys.readouterr().out
    assert "cli-run: completed" in out and "seeds: completed" in out
    assert cli.main(["runs"]) == 0
    assert "cli-run" in capsys.readouterr().out
    assert cli.main(["fetch", "cli-run", "--what", "store", "--to", str(desktop / "got")]) == 0
    assert (desktop / "got" / "data" / "store.sqlite").exists()
    assert cli.main(["fetch", "cli-run", "--what", "exports", "--to", str(desktop)]) == 1
    assert "no exports yet" in capsys.readouterr().err
    assert cli.main(["status", "nope"]) == 1
    assert "no run 'nope'" in capsys.readouterr().err


def test_launch_preflight_refuses_what_would_stop_a_stage_and_starts_nothing(desktop, capsys):
    # sft asks for a GPU on This computer (the direct scheduler: the stage runs here), which
    # has none: refused with the fix, before any run folder or job exists
    if __import__("shutil").which("nvidia-smi"):
        pytest.skip("this machine has a GPU")
    argv = ["launch", SMOKE, "sft.resources.gpus_per_node=1", "--stages", "sft",
            "--run-id", "needs-gpu"]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "not launched: the preflight found" in err and "nothing was started" in err
    assert "sft asks for 1 GPU(s) per node but This computer has none" in err, err
    assert "--no-preflight" in err
    assert cli.main(["runs"]) == 0 and "needs-gpu" not in capsys.readouterr().out
    assert not list((desktop / "data").rglob("needs-gpu"))  # no run folder anywhere
    # the preview never runs a preflight
    assert cli.main(["launch", SMOKE, "sft.resources.gpus_per_node=1", "--stages", "sft",
                     "--preview"]) == 0


def test_cancel_then_resume_a_run(desktop, hanging_llm, capsys):
    import yaml

    data = yaml.safe_load(Path(SMOKE).read_text())
    data["llms"]["generator"] = {"backend": "openai", "base_url": hanging_llm,
                                 "model": "m", "timeout_s": 3600}
    cfg = desktop / "hang.yaml"
    cfg.write_text(yaml.safe_dump(data))
    assert cli.main(["launch", str(cfg), "--stages", "seeds,features", "--run-id", "hang"]) == 0
    capsys.readouterr()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # until features is under way
        cli.main(["status", "hang", "--json"])
        state = json.loads(capsys.readouterr().out)["state"]
        if state.get("stages", {}).get("features", {}).get("status") == "running":
            break
        time.sleep(0.3)
    assert cli.main(["cancel", "hang"]) == 0
    assert "hang: cancelled" in capsys.readouterr().out
    cli.main(["status", "hang", "--json"])
    state = json.loads(capsys.readouterr().out)["state"]
    assert state["stages"]["features"]["status"] == "interrupted"  # it saved and exited
    assert cli.main(["resume", "hang"]) == 0
    assert "hang: running" in capsys.readouterr().out
    assert cli.main(["cancel", "hang"]) == 0


def test_llm_test_runs_on_the_cluster_the_endpoint_is_used_from(desktop, ssh_env, capsys,
                                                                 monkeypatch, tmp_path):
    """Issue 16: the check runs where the stage will run. The key's variable is set on this
    computer but not in the cluster's environment: the cluster's answer says so."""
    import yaml
    from openai_stub_server import spawn

    add_cluster(ssh_env, tmp_path)
    capsys.readouterr()
    monkeypatch.setenv("STUB_KEY_FOR_TEST", "not-a-real-key")
    with spawn("--props", "--slots", "2", "--max-model-len", "512",
               "--cut-at-max-tokens") as stub:
        config = yaml.safe_load(SMOKE_TEXT())
        config["llms"]["gen"] = {"backend": "openai", "base_url": stub.url,
                                 "model": "stub-model", "api_key_env": "STUB_KEY_FOR_TEST"}
        config["features"]["llm"] = "gen"
        config["features"]["placement"] = "lab"
        path = tmp_path / "p.yaml"
        path.write_text(yaml.safe_dump(config))
        base = ["--known-hosts", str(ssh_env.known_hosts), "--ssh-config",
                str(ssh_env.ssh_config)]
        rc = cli.main([*base, "llm", "test", "gen", "--config", str(path), "--json"])
        captured = capsys.readouterr()
        assert captured.out.strip(), captured.err
        report = json.loads(captured.out)
        assert rc == 1 and report["tested_from"] == "lab"
        assert report["reachable"] and report["model_listed"] and report["context_length"] == 512
        assert report["key_present"] is False  # the cluster's environment lacks it
        rc = cli.main([*base, "llm", "test", "gen", "--config", str(path), "--cluster",
                       "This computer"])
        out = capsys.readouterr().out
        assert rc == 0 and out.startswith("tested from this computer"), out
    assert not list((tmp_path / "remote-lab" / "tmp").glob("llm-test-*"))  # cleaned up


def SMOKE_TEXT() -> str:
    return Path(SMOKE).read_text()


def test_every_subcommand_has_exactly_one_handler_in_the_command_table():
    import argparse

    from remote.cli import COMMANDS, add_commands

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    add_commands(sub)
    assert set(sub.choices) == set(COMMANDS)
    assert all(fn.__name__ == f"cmd_{name}" for name, fn in COMMANDS.items())
