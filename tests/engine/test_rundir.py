"""RunDir: layout, atomic state, config written once, corrupted state, one process at a time."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

import pytest

from engine.rundir import RunDir, RunDirError


def test_create_makes_the_documented_layout(tmp_path):
    run = RunDir(tmp_path / "r1")
    run.create()
    for sub in ("events", "logs", "data/cache", "exports", "checkpoints"):
        assert (run.root / sub).is_dir(), sub
    assert run.store_path == run.root / "data" / "store.sqlite"
    assert run.event_file("sft", 3).name == "sft.3.jsonl"
    assert run.log_file("verify", 0) == run.root / "logs" / "verify.0.log"


def test_state_round_trips_and_leaves_no_temp_files(tmp_path):
    run = RunDir(tmp_path)
    run.create()
    run.update_stage("seeds", status="running", attempts=1, pid=123)
    run.update_stage("seeds", status="completed", summary={"imported": 12})
    state = run.read_state()
    assert state.stage("seeds").status == "completed"
    assert state.stage("seeds").summary == {"imported": 12}
    assert state.stage("seeds").attempts == 1
    assert state.stage("sft").status == "pending"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_update_stage_rejects_an_unknown_status(tmp_path):
    run = RunDir(tmp_path)
    with pytest.raises(ValueError):
        run.update_stage("seeds", status="done-ish")
    assert not run.state_path.exists()


@pytest.mark.parametrize("garbage", ['{"stages": {"seeds": {"status": "compl', "[1, 2]",
                                     '{"stages": {"seeds": {"status": "weird"}}}'])
def test_corrupted_state_is_a_clear_error_and_is_left_untouched(tmp_path, garbage):
    run = RunDir(tmp_path)
    run.state_path.write_text(garbage)
    with pytest.raises(RunDirError) as err:
        run.read_state()
    msg = str(err.value)
    assert str(run.state_path) in msg and "corrupted" in msg and "mv " in msg
    assert run.state_path.read_text() == garbage


def test_state_from_a_newer_engine_is_refused(tmp_path):
    run = RunDir(tmp_path)
    run.state_path.write_text(json.dumps({"version": 99, "stages": {}}))
    with pytest.raises(RunDirError, match="newer engine"):
        run.read_state()


def test_config_is_written_once_and_a_change_is_refused_with_a_diff(tmp_path):
    run = RunDir(tmp_path)
    run.write_config("a: 1\nb: 2\n")
    run.write_config("a: 1\nb: 2\n")  # same config: a resume
    with pytest.raises(RunDirError) as err:
        run.write_config("a: 1\nb: 3\n")
    assert "-b: 2" in str(err.value) and "+b: 3" in str(err.value)
    assert "--update-config" in str(err.value)
    assert run.config_path.read_text() == "a: 1\nb: 2\n"


def test_an_accepted_config_change_keeps_the_old_file(tmp_path):
    run = RunDir(tmp_path)
    run.write_config("a: 1\n")
    run.write_config("a: 2\n", allow_change=True)
    assert run.config_path.read_text() == "a: 2\n"
    kept = list(tmp_path.glob("config.prev-*.yaml"))
    assert len(kept) == 1 and kept[0].read_text() == "a: 1\n"


def test_a_config_from_an_older_engine_resumes_when_only_new_defaults_differ(tmp_path):
    # An engine upgrade adds fields with defaults (run.metrics here): the launched file lacks
    # them, the config now has them. That is no change of experiment, so a resume goes on.
    from engine.schema import PipelineConfig, dump_config

    now = dump_config(PipelineConfig())
    block = ("  metrics:\n    tensorboard: true\n    wandb:\n      enabled: false\n"
             "      project: synthsmith\n      entity: null\n      mode: offline\n")
    assert block in now
    older = now.replace(block, "", 1)
    run = RunDir(tmp_path)
    run.write_config(older)
    run.write_config(now)  # a resume by today's engine: accepted, the file brought up to date
    assert run.config_path.read_text() == now
    assert not list(tmp_path.glob("config.prev-*.yaml"))
    with pytest.raises(RunDirError, match="--update-config"):  # a real change is still refused
        run.write_config(now.replace("seed: 42", "seed: 43", 1))


def test_a_second_process_cannot_take_the_run_dir_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from engine.rundir import RunDir
        with RunDir({str(tmp_path)!r}).lock():
            print("locked", flush=True)
            time.sleep(30)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunDirError, match=f"pid {holder.pid}"), RunDir(tmp_path).lock():
            pass
    finally:
        holder.kill()
        holder.wait()
    # Once the holder is gone (even killed), the lock is free again.
    deadline = time.time() + 5
    while True:
        try:
            with RunDir(tmp_path).lock():
                break
        except RunDirError:
            assert time.time() < deadline
            time.sleep(0.05)
