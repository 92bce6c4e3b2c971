"""A chatty or compromised cluster never breaks `synthsmith` with a traceback (issue 15,
items 1-3 still open there): login banners on stdout, dash or bash, a 300 MB state.json, a
status probe that answers ``s|abc|1|``, Slurm commands that answer garbage.

Run: .venv/bin/python -m pytest tests/remote/test_compromised_cluster.py -q

The cluster is a real sshd of its own whose ``ForceCommand`` wrapper (written here) prints a
multi-line banner to stdout (lines starting ``@``, ``{``, ``s|``, ``pid``, ``#``, a bare job id)
before every command, runs the command with dash, bash, fish or tcsh as the login shell, puts a folder of fake tools first on
PATH (Slurm's squeue/scontrol/sacct/sbatch) and can rewrite the status probe's answer with sed.
A ``flood`` mode follows every command's answer with endless output (``yes``).
SFTP goes to the real sftp-server, without a banner.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from fixtures_ssh import start_compromised_sshd, stop_sshd

from engine.paths import ASSETS_DIR
from gui import cli
from remote.doctor import _parse_facts
from remote.launch import STATE_MAX_BYTES
from remote.run_registry import RunRecord, RunRegistry, Segment
from remote.runner import LocalRunner, run_framed
from remote.schedulers import JobHandle, SlurmScheduler, _parse_probe_line, parse_squeue

REPO = Path(__file__).resolve().parents[2]
SMOKE = str(ASSETS_DIR / "presets" / "smoke-cpu.yaml")

BANNER = """\
Welcome to the compromised cluster!
@gpu\tbanner-host\t7, FAKE GPU FROM THE BANNER, 1, 1, 1
@begin
@off 0 5 evil.log
@end
{"python": {"version": "0", "executable": "/evil"}, "work_dir": {"free_gb": 0, "path": "/"}}
s|abc|1|
s|1|1|0
pid 1
12345
#objects
#bundle
#verify
#end
@@synthsmith-list
"""

WRAPPER = """#!/bin/sh
D={dir}
case "$SSH_ORIGINAL_COMMAND" in
  sftp|*sftp-server*) exec {sftp} ;;
esac
cat "$D/banner" 2>/dev/null
SH=$(cat "$D/shell" 2>/dev/null || echo /bin/sh)
SHELL="$SH"; export SHELL
PATH="$D/bin:$PATH"; export PATH
if [ -f "$D/flood" ]; then
  "$SH" -c "$SSH_ORIGINAL_COMMAND"; exec yes "@gpu	flood	0, FLOOD, 1, 1, 1"
fi
if [ -f "$D/probe.sed" ]; then
  case "$SSH_ORIGINAL_COMMAND" in
    *"kill -0"*) "$SH" -c "$SSH_ORIGINAL_COMMAND" | sed -f "$D/probe.sed"; exit 0 ;;
  esac
fi
exec "$SH" -c "$SSH_ORIGINAL_COMMAND"
"""


@pytest.fixture(scope="module")
def evil_sshd(sshd_pair, tmp_path_factory):
    d = tmp_path_factory.mktemp("compromised-sshd")
    server = start_compromised_sshd(d, sshd_pair.client_key, WRAPPER)
    try:
        yield {"dir": d, "port": server.port, "host_pub": server.host_pub,
               "key": sshd_pair.client_key, "user": sshd_pair.user}
    finally:
        stop_sshd(server)


@pytest.fixture
def evil(evil_sshd, tmp_path, monkeypatch):
    """The desktop (config and data in tmp_path) with a profile ``evil`` for the cluster, and
    the CLI's base arguments; the cluster's modes reset to: banner on, /bin/sh (dash)."""
    d = evil_sshd["dir"]
    for name in ("probe.sed", "shell", "flood"):
        (d / name).unlink(missing_ok=True)
    for tool in (d / "bin").iterdir():
        tool.unlink()
    (d / "banner").write_text(BANNER)
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SYNTHSMITH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{evil_sshd['port']} {evil_sshd['host_pub']}\n")
    (tmp_path / "ssh_config").write_text("")
    assert cli.main(["cluster", "add", "evil", "--host", "127.0.0.1", "--port",
                     str(evil_sshd["port"]), "--user", evil_sshd["user"], "--identity-file",
                     str(evil_sshd["key"]), "--no-agent", "--workdir",
                     str(tmp_path / "cluster"), "--python", sys.executable]) == 0
    base = ["--known-hosts", str(known), "--ssh-config", str(tmp_path / "ssh_config")]
    return d, base


def _runner(evil_sshd, tmp_path):
    from remote.ssh import SSHRunner

    known = tmp_path / "runner_known_hosts"
    known.write_text(f"[127.0.0.1]:{evil_sshd['port']} {evil_sshd['host_pub']}\n")
    return SSHRunner("127.0.0.1", port=evil_sshd["port"], user=evil_sshd["user"],
                     identity_file=evil_sshd["key"], ssh_config=None, known_hosts=known,
                     use_agent=False, name="evil", connect_timeout=10)


def _tool(d: Path, name: str, body: str) -> None:
    path = d / "bin" / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)


# --- every command through a banner, with dash and with bash --------------------------------


@pytest.mark.parametrize("shell", ["/bin/dash", "/bin/bash", "/usr/bin/fish", "/usr/bin/tcsh"])
def test_every_command_works_through_a_login_banner(evil, tmp_path, capsys, shell):
    if not Path(shell).exists():
        pytest.skip(f"needs {shell}")
    d, base = evil
    (d / "shell").write_text(shell)
    # cluster test: bundle sync (hash probe, verification) and the doctor's JSON
    assert cli.main([*base, "cluster", "test", "evil"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "engine bundle" in out and f"python {sys.version.split()[0]}" in out
    assert "/evil" not in out and "ready" in out
    # launch (the direct scheduler's pid answer), tail (the poll), status (the probe), fetch
    assert cli.main([*base, "launch", SMOKE, "--stages", "seeds", "--cluster", "evil",
                     "--run-id", "through-banner"]) == 0, capsys.readouterr().err
    assert "launched through-banner" in capsys.readouterr().out
    assert cli.main([*base, "tail", "through-banner", "--follow", "--json"]) == 0, (
        capsys.readouterr().err)
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert events and events[-1]["data"]["status"] == "completed"
    assert cli.main([*base, "status", "through-banner"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "through-banner: completed" in out and "seeds: completed" in out
    assert cli.main([*base, "fetch", "through-banner", "--what", "store", "--to",
                     str(tmp_path / "got")]) == 0, capsys.readouterr().err
    assert (tmp_path / "got" / "data" / "store.sqlite").stat().st_size > 0


def test_remote_data_browsing_answers_through_a_banner(evil, evil_sshd, tmp_path):
    from sample_run import build_sample_run

    from engine.store import Store, TaskQuery
    from remote.store_client import RemoteStore

    run = build_sample_run(tmp_path / "browse")
    runner = _runner(evil_sshd, tmp_path)
    try:
        remote = RemoteStore(runner, str(run.store_path), engine_dir=str(REPO),
                             python=sys.executable, max_test_chars=None)
        page = remote.query_tasks(TaskQuery(limit=3))
        with Store(run.store_path, readonly=True) as local:
            assert page == local.query_tasks(TaskQuery(limit=3))
    finally:
        runner.close()


def test_slurm_answers_through_a_banner_and_garbage_lines(evil, evil_sshd, tmp_path):
    d, _ = evil
    runner = _runner(evil_sshd, tmp_path)
    try:
        # sbatch: the job id is sbatch's, not the banner's last line "@@synthsmith-list"/12345
        _tool(d, "sbatch", "echo '4242;cluster'\n")
        from remote.schedulers import StageJob

        run_dir = str(tmp_path / "cluster" / "runs" / "s1")
        job = StageJob(run_dir=run_dir, stage="seeds", config_path=run_dir + "/config.yaml",
                       engine_dir=str(tmp_path))
        sched = SlurmScheduler(runner)
        handle = sched.launch(job)
        assert handle.job_id == "4242"
        # squeue: a garbage line and a good one; the good one wins
        _tool(d, "squeue", "echo 's|abc|1|'\necho '4242|RUNNING|None|node1'\n")
        _tool(d, "scontrol", "exit 0\n")
        _tool(d, "sacct", "echo 'garbage'\n")
        st = sched.status(handle)
        assert st.state == "running" and st.detail["nodes"] == "node1"
        # only garbage from every Slurm command: unknown, with the reason in words
        _tool(d, "squeue", "echo 's|abc|1|'\necho 'x|y'\n")
        st = sched.status(handle)
        assert st.state == "unknown" and "answered" in st.reason, st
    finally:
        runner.close()


# --- a status probe that answers s|abc|1| ----------------------------------------------------


def test_a_bad_pid_in_the_status_probe_is_an_unknown_task_not_a_crash(evil, tmp_path, capsys):
    d, base = evil
    run_dir = tmp_path / "cluster" / "runs" / "bad-pid"
    (run_dir / "jobs").mkdir(parents=True)
    # shard 1 of 2 finished cleanly; shard 0 has no files, and the sed turns its probe line
    # ("s||0|") into "s|abc|1|"
    (run_dir / "jobs" / "seeds.x.1of2.pid").write_text("999999\n")
    (run_dir / "jobs" / "seeds.x.1of2.exit").write_text("0\n")
    (d / "probe.sed").write_text("s/^s||0|$/s|abc|1|/\n")
    handle = JobHandle("direct", "seeds.x", "seeds", str(run_dir), 0.0, 2)
    record = RunRecord(run_id="bad-pid", config_path="x.yaml", config_text="", created_at=0.0,
                       segments=[Segment("evil", ["seeds"], status="running",
                                         jobs=[asdict(handle)])],
                       clusters={"evil": {"run_dir": str(run_dir)}})
    RunRegistry().save(record)
    assert cli.main([*base, "status", "bad-pid"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "bad-pid: running" in out
    assert "1 of 2 tasks unknown" in out and "pid that is not a number ('abc')" in out
    assert cli.main([*base, "status", "bad-pid", "--json"]) == 0
    tasks = json.loads(capsys.readouterr().out)["run"]["segments"][0]
    assert "unknown" in tasks["reason"]


def test_probe_and_squeue_lines_parse_field_by_field():
    assert _parse_probe_line("s|123|1|") == ("123", True, "")
    assert _parse_probe_line("s|123|0|143") == ("123", False, "143")
    for bad, why in [("s|abc|1|", "pid that is not a number"), ("s|1|yes|", "liveness"),
                     ("s|1|0|zz", "exit code that is not a number"), ("s|1|0", "fields"),
                     ("s|1|0|0|9", "fields"), ("s|-5|1|", "pid that is not a number")]:
        pid, alive, code = _parse_probe_line(bad)
        assert pid == "?" and not alive and why in code, (bad, code)
    rows = parse_squeue("s|abc|1|\n12|RUNNING|None|n1\n12|run ning|x|y\nonly|two\n"
                        "12_3|PENDING|Priority|\n")
    good = [r for r in rows if "error" not in r]
    assert [r["id"] for r in good] == ["12", "12_3"]
    assert len([r for r in rows if "error" in r]) == 3


# --- state.json: huge, broken, not an object ---------------------------------------------------


def _completed_run(tmp_path, run_id: str) -> Path:
    run_dir = tmp_path / "cluster" / "runs" / run_id
    run_dir.mkdir(parents=True)
    RunRegistry().save(RunRecord(run_id=run_id, config_path="x.yaml", config_text="",
                                 created_at=0.0,
                                 segments=[Segment("evil", ["seeds"], status="completed")],
                                 clusters={"evil": {"run_dir": str(run_dir)}}))
    return run_dir


def test_a_300_mb_state_json_is_a_clear_error_and_status_still_works(evil, tmp_path, capsys):
    _, base = evil
    run_dir = _completed_run(tmp_path, "huge")
    state = run_dir / "state.json"
    with open(state, "wb") as f:  # sparse: nothing big on disk
        f.write(b'{"stages": {"seeds": {"status": "completed", "reason": "')
        f.truncate(300 * 1024 * 1024)
    started = time.monotonic()
    assert cli.main([*base, "status", "huge"]) == 0, capsys.readouterr().err
    assert time.monotonic() - started < 60
    assert "huge: completed" in capsys.readouterr().out
    assert cli.main([*base, "status", "huge", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)["state"]
    assert f"larger than {STATE_MAX_BYTES >> 20} MiB" in answer["error"]


@pytest.mark.parametrize("content, why", [
    (b'{"stages": {', "not valid JSON"),
    (b"[" * 200_000, "not valid JSON"),
    (b"\xff\xfe{}", "not valid JSON"),
    (b'["a list"]', "not an object"),
])
def test_a_broken_state_json_is_a_clear_error(evil, tmp_path, capsys, content, why):
    _, base = evil
    run_dir = _completed_run(tmp_path, "broken")
    (run_dir / "state.json").write_bytes(content)
    assert cli.main([*base, "status", "broken", "--json"]) == 0, capsys.readouterr().err
    assert why in json.loads(capsys.readouterr().out)["state"]["error"]
    assert cli.main([*base, "status", "broken"]) == 0
    assert "broken: completed" in capsys.readouterr().out


def test_a_good_state_json_through_the_banner_reads_whole(evil, tmp_path, capsys):
    _, base = evil
    run_dir = _completed_run(tmp_path, "good")
    state = {"stages": {"seeds": {"status": "completed", "reason": "s|abc|1|\n@end"}}}
    (run_dir / "state.json").write_text(json.dumps(state))
    assert cli.main([*base, "status", "good", "--json"]) == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["state"] == state


# --- framing, and the doctor's answer -----------------------------------------------------------


def test_run_framed_keeps_only_our_output_and_the_exit_code():
    r = LocalRunner()
    res = run_framed(r, "echo banner-is-not-here; printf 'a\\n\\nb'; exit 3")
    assert res.returncode == 3 and res.stdout == "banner-is-not-here\na\n\nb"
    res = run_framed(r, "printf '@@synthsmith-end-x\\n'")
    assert res.stdout == "@@synthsmith-end-x\n"


def test_the_doctor_answer_is_the_last_json_object_with_the_facts_shape():
    facts = {"python": {"version": "3", "executable": "/p"}, "work_dir": {"free_gb": 9,
                                                                          "path": "/w"},
             "stages": {"seeds": {"ok": True, "missing": []}}, "packages": {}}
    text = "activate says hi\n{not json\n" + BANNER + json.dumps(facts, indent=2) + "\n"
    assert _parse_facts(text) == facts
    assert _parse_facts(BANNER) is None  # its look-alike is not the last thing printed
    assert _parse_facts("") is None


# --- GPU sampling, the bundle sync's cap, known_hosts warnings, hostile text ---------------------


NVIDIA_SMI = "echo '0, NVIDIA H200, 35, 1024, 143771'\necho '1, NVIDIA H200, 0, 0, 143771'\n"


def test_gpu_samples_through_a_banner_are_only_the_real_gpus(evil, evil_sshd, tmp_path):
    from remote.gpus import sample_gpus

    d, _ = evil
    _tool(d, "nvidia-smi", NVIDIA_SMI)
    # a Slurm job: squeue says RUNNING on 1 node, srun runs the script after its options
    _tool(d, "squeue", "echo '@gpu|x'\necho 'RUNNING|1'\n")
    _tool(d, "srun", 'while [ $# -gt 0 ]; do case "$1" in -*) shift ;; *) break ;; esac; done\n'
                     'exec "$@"\n')
    runner = _runner(evil_sshd, tmp_path)
    try:
        for job in (None, "77"):
            report = sample_gpus(runner, slurm_job=job)
            assert [(s.index, s.name, s.util_pct) for s in report.samples] == [
                (0, "NVIDIA H200", 35.0), (1, "NVIDIA H200", 0.0)], (job, report)
            assert "banner-host" not in report.hosts and not report.problems, report
    finally:
        runner.close()


def test_an_endless_answer_stops_at_its_cap_gpu_probe_and_bundle_sync(evil, evil_sshd, tmp_path,
                                                                       capsys):
    import resource

    from remote.errors import RemoteError
    from remote.gpus import sample_gpus

    d, base = evil
    _tool(d, "nvidia-smi", NVIDIA_SMI)
    (d / "flood").write_text("on")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runner = _runner(evil_sshd, tmp_path)
    try:
        started = time.monotonic()
        with pytest.raises(RemoteError, match="more than"):
            sample_gpus(runner)
        assert time.monotonic() - started < 30
    finally:
        runner.close()
    # cluster test: the bundle sync's first script meets the flood; a clear error, exit 1
    started = time.monotonic()
    assert cli.main([*base, "cluster", "test", "evil"]) == 1
    assert time.monotonic() - started < 60
    err = capsys.readouterr().err
    assert "more than" in err and "Traceback" not in err, err
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 400, grown_mib  # both caps (1 MiB, 16 MiB) hold; no endless buffer


def test_cluster_test_names_the_known_hosts_lines_it_skipped(evil, tmp_path, capsys):
    _, base = evil
    known = tmp_path / "known_hosts"
    good = known.read_text()
    known.write_text("@cert-authority *.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n"
                     "this line is garbage\n" + good)
    assert cli.main([*base, "cluster", "test", "evil"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    skipped = [line for line in out.splitlines() if "known_hosts line skipped" in line]
    assert len(skipped) == 2 and ":1:" in skipped[0] and ":2:" in skipped[1], out
    assert "ready" in out


def test_hostile_log_and_state_text_reaches_the_terminal_made_visible(evil, tmp_path, capsys):
    from test_display_text import assert_clean

    _, base = evil
    assert cli.main([*base, "launch", SMOKE, "--stages", "seeds", "--cluster", "evil",
                     "--run-id", "hostile-text"]) == 0, capsys.readouterr().err
    assert cli.main([*base, "tail", "hostile-text", "--follow"]) == 0
    capsys.readouterr()
    run_dir = tmp_path / "cluster" / "runs" / "hostile-text"
    esc = "\x1b"
    # a name that is no plain file name is refused (remote.safe_paths); its text never shows
    (run_dir / "logs" / f"seeds{esc}]0;pwned\x07.log").write_text(f"{esc}[2J named\n")
    (run_dir / "logs" / "hostile.log").write_text(
        f"title {esc}]0;pwned\x07 clear {esc}[2J csi \x9b31m bidi \u202eabc\n")
    state = json.loads((run_dir / "state.json").read_text())
    state["stages"]["seeds"]["reason"] = f"{esc}[31mred\u202e"
    (run_dir / "state.json").write_text(json.dumps(state))
    assert cli.main([*base, "tail", "hostile-text", "--logs"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert_clean(out, newlines=True)
    assert r"title \x1b]0;pwned\x07 clear \x1b[2J csi \x9b31m bidi \u202eabc" in out
    assert "named" not in out
    assert cli.main([*base, "status", "hostile-text"]) == 0
    out = capsys.readouterr().out
    assert_clean(out, newlines=True)
    assert r"\x1b[31mred\u202e" in out
    assert cli.main([*base, "status", "hostile-text", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"]["stages"]["seeds"]["reason"] == (
        f"{esc}[31mred\u202e")
