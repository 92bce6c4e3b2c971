"""``synthsmith tail --follow`` through a link that keeps dropping (issue 17, item 6).

Run: .venv/bin/python -m pytest tests/remote/test_tail_follow.py -q

Everything is real: the CLI runs as its own process (``python -m gui.cli``), talks to the
loopback sshd of fixtures_ssh.py through a ``LinkProxy`` (link_proxy.py) that the test
severs, and follows a run launched by ``synthsmith launch`` on that "cluster": the smoke
preset's ``seeds`` stage, whose job first feeds events at a known rate from an
``EventWriter`` in a process of its own (the profile's python is a wrapper that does this
before it runs the real engine). The link is cut at least 10 times: idle, on a request, on an
answer (a status probe or a poll that already ran), during re-authentication, and again
after the job ended (the last status check and the final poll). At the end the CLI's JSON
lines must hold every event the cluster's files hold, each once (by file and seq), and it
must exit 0 having never spoken of keys.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from link_proxy import LinkProxy

from engine.paths import ASSETS_DIR
from gui import cli

SMOKE = str(ASSETS_DIR / "presets" / "smoke-cpu.yaml")
FEED_RATE, FEED_MAX_S = 30.0, 50.0  # events/s; the feed stops when the test says, or then

FEEDER = """
import os, sys, time
from engine.events import EventWriter
events_dir, stop, rate, most = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
start = time.monotonic()
with EventWriter.for_run(events_dir, "feed", 0) as w:
    i = 0
    while not os.path.exists(stop) and time.monotonic() - start < most:
        kind = i % 3
        if kind == 0:
            w.metric(i, {"feed/loss": 1.0 / (i + 1), "feed/lr": 1e-5})
        elif kind == 1:
            w.progress(i + 1, unit="items")
        else:
            w.log(f"item {i}")
        i += 1
        time.sleep(max(0.0, start + i / rate - time.monotonic()))
"""

# The cluster's python for this run: a stage job (`python -m engine run ... --run-dir D`)
# first feeds events into D/events, then runs the real engine; anything else passes through.
WRAPPER = """#!/bin/sh
rd=""; prev=""
for a in "$@"; do [ "$prev" = "--run-dir" ] && rd="$a"; prev="$a"; done
if [ "$1 $2 $3" = "-m engine run" ] && [ -n "$rd" ]; then
    PYTHONPATH="$PWD" {python} {feeder} "$rd/events" {stop} {rate} {most} || exit 99
fi
exec {python} "$@"
"""


def test_readable_lines_hold_time_stage_kind_and_the_essentials(tmp_path):
    """What `tail` prints by default, for every kind the engine writes (EventWriter)."""
    from engine.events import EventWriter, parse_lines
    from remote.cli import _event_line, _event_text

    path = tmp_path / "sft.1.jsonl"
    with EventWriter(path, "sft", 1) as w:
        w.stage("started")
        w.metric(30, {"sft/loss": 0.912, "sft/lr": 1e-5, "sft/tokens": 123456.0})
        w.progress(5, 8, unit="seeds", ok=3, rejected=2)
        w.progress(7, unit="requests")
        w.log("loading \x1b[2Jmodel\nsecond line", level="warning")
        w.alert("loss is NaN", level="error", code="nan_loss")
        w.artifact("final", "checkpoints/sft/final", kind="checkpoint")
        w.sample("task", {"id": "t1", "title": "Two sums", "statement": "x" * 200})
        w.stage("failed", reason="CUDA out of memory", summary={"steps": 30})
    events, _, _, bad = parse_lines(path.read_bytes())
    assert bad == 0 and len(events) == 9
    lines = [_event_text(e) for e in events]
    when = time.strftime("%H:%M:%S", time.localtime(events[0].t))
    assert lines[0] == f"{when}  sft[1]     stage     started"
    essentials = [line.split("  ", 2)[2].split(None, 1)[1].strip() for line in lines]
    assert essentials == [
        "started",
        "step 30  sft/loss=0.912 sft/lr=1e-05 sft/tokens=123456",
        "5/8 seeds (62%)  ok 3, rejected 2",
        "7 requests",
        r"warning: loading \x1b[2Jmodel\x0asecond line",
        "ERROR [nan_loss]: loss is NaN",
        "checkpoint final: checkpoints/sft/final",
        "task  id=t1 title=Two sums statement=" + "x" * 59 + "…",
        "failed: CUDA out of memory  (steps=30)",
    ]
    assert [line.split()[2] for line in lines] == [e.kind for e in events]
    # --json: the record exactly as the engine wrote it
    assert [json.loads(_event_line(e)) for e in events] == [
        json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def desktop(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SYNTHSMITH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return tmp_path


class Cutter(threading.Thread):
    """Cuts the link once per action of ``plan``, ~``gap_s`` apart, each action waiting until
    it really severed what it aimed at; then calls ``plan_done`` (the feed stops, the job
    goes on to the real stage) and, once the job has ended, cuts the next answers (the
    status check that sees the end, the final poll: up to three).

    Actions: "now" (an idle or busy link), "client" (a request), "server" (an answer to a
    command that ran), "auth" (the live link, then the login that replaces it), "outage"
    (the live link, then 8 logins in a row: more than the runner's retries of one command,
    so the poll and the status check give up and ``tail`` itself must wait and go on)."""

    def __init__(self, proxy: LinkProxy, plan: list[str], plan_done, job_ended,
                 gap_s: float = 0.5):
        super().__init__(daemon=True)
        self.proxy, self.plan, self.gap_s = proxy, plan, gap_s
        self.plan_done, self.job_ended = plan_done, job_ended
        self.done: list[str] = []
        self.after_end = 0  # cuts after the job ended
        self.stop = threading.Event()

    def _taken(self, cuts: int, auth_cuts: int = 0, timeout: float = 10) -> bool:
        """Whether the proxy reached these counts with nothing left armed, and the tail is
        back at work on a new connection, in time: so each action is a drop of its own, not
        one more failure inside the runner's retries of the last one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not self.stop.is_set():
            if (self.proxy.cuts >= cuts and self.proxy.auth_cuts >= auth_cuts
                    and not self.proxy.pending() and self.proxy.recovered()):
                return True
            time.sleep(0.01)
        return False

    def _cut_live(self) -> None:
        while not self.proxy.cut(logged_in=True) and not self.stop.wait(0.02):
            pass  # between reconnects: wait for a logged-in link to cut

    def run(self) -> None:
        for action in self.plan:
            if self.stop.wait(self.gap_s):
                return
            cuts, logins = self.proxy.cuts + 1, self.proxy.auth_cuts
            if action == "now":
                self._cut_live()
            elif action in ("auth", "outage"):
                self._cut_live()
                # armed at once: the runner waits >= backoff_s (0.5 s) before it logs in again
                logins += 1 if action == "auth" else 8
                self.proxy.cut_during_auth(times=logins - self.proxy.auth_cuts)
            else:
                self.proxy.cut_on(action)
            if self._taken(cuts, logins, timeout=30 if action == "outage" else 10):
                self.done.append(action)
        self.plan_done()
        while not self.job_ended() and not self.stop.wait(0.02):
            pass
        # The answers that follow the job's end: the last polls, the status check that sees
        # it, the final poll. Up to three in a row; the tail may be done sooner.
        for _ in range(3):
            cuts = self.proxy.cuts + 1
            self.proxy.cut_on("server")
            deadline = time.monotonic() + 5
            while self.proxy.cuts < cuts and time.monotonic() < deadline:
                time.sleep(0.01)
            if self.proxy.cuts < cuts:
                return  # the tail was done
            self.after_end += 1


def test_follow_survives_ten_cuts_and_loses_nothing(desktop, ssh_env, capsys):
    proxy = LinkProxy(ssh_env.target.port)
    known = desktop / "known_hosts"
    known.write_text(f"[127.0.0.1]:{proxy.port} {ssh_env.target.host_pub}\n")
    ssh_config = desktop / "ssh_config"
    ssh_config.write_text("")
    feeder = desktop / "feeder.py"
    feeder.write_text(FEEDER)
    stop_feed = desktop / "stop-feed"
    wrapper = desktop / "python-wrapper"
    wrapper.write_text(WRAPPER.format(python=sys.executable, feeder=feeder, stop=stop_feed,
                                      rate=FEED_RATE, most=FEED_MAX_S))
    wrapper.chmod(0o755)
    workdir = desktop / "cluster"
    base = ["--known-hosts", str(known), "--ssh-config", str(ssh_config)]
    try:
        assert cli.main(["cluster", "add", "lab", "--host", "127.0.0.1", "--port",
                         str(proxy.port), "--user", ssh_env.pair.user, "--identity-file",
                         str(ssh_env.pair.client_key), "--no-agent", "--workdir", str(workdir),
                         "--python", str(wrapper)]) == 0
        assert cli.main([*base, "launch", SMOKE, "--stages", "seeds", "--cluster", "lab",
                         "--run-id", "cut"]) == 0, capsys.readouterr().err
        run_dir = workdir / "runs" / "cut"
        plan = ["now", "server", "client", "auth", "server", "outage", "now", "server",
                "client", "auth"]
        cutter = Cutter(proxy, plan, stop_feed.touch,
                        lambda: any((run_dir / "jobs").glob("*.exit")))
        started = time.monotonic()
        tail = subprocess.Popen(
            [sys.executable, "-m", "gui.cli", *base, "tail", "cut", "--follow", "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=Path(__file__).resolve().parents[2])
        cutter.start()
        try:
            out, err = tail.communicate(timeout=100)
        finally:
            cutter.stop.set()
            stop_feed.touch()
            if tail.poll() is None:
                tail.kill()
            cutter.join(timeout=5)
        took = time.monotonic() - started
    finally:
        proxy.close()

    # What the cluster holds: every line of every events file, by (file, seq).
    expected = set()
    for path in sorted((run_dir / "events").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            expected.add((path.name, json.loads(line)["seq"]))
    got = []
    for line in out.splitlines():
        e = json.loads(line)
        got.append((f"{e['stage']}.{e['rank']}.jsonl", e["seq"]))
    lost, duplicated = expected - set(got), len(got) - len(set(got))
    print(f"cuts={proxy.cuts} auth_cuts={proxy.auth_cuts} actions={cutter.done} "
          f"after_end={cutter.after_end} "
          f"connections={proxy.connections} events={len(got)} lost={len(lost)} "
          f"duplicated={duplicated} exit={tail.returncode} took={took:.1f}s\n{err}\n"
          + "\n".join(proxy.events))
    assert tail.returncode == 0, err
    assert len(lost) == 0 and duplicated == 0
    assert set(got) == expected
    assert sum(name == "feed.0.jsonl" for name, _ in got) > 100  # the feed ran all along
    assert ("seeds.0.jsonl", 0) in expected  # the real stage wrote its events too
    assert cutter.done == plan and cutter.after_end >= 1, (cutter.done, cutter.after_end)
    assert proxy.cuts >= 10 and proxy.auth_cuts >= 10  # 1 + 8 + 1 logins cut
    assert "# link lost" in err and "# link back" in err  # the outage outlasted the retries
    # never a key problem: not the refusal text, not its fixes
    assert "refused every key" not in err and "authorized_keys" not in err
    assert "IdentityFile" not in err and "no key was refused" in err
    assert err.rstrip().endswith("# cut completed")
