"""gui/notify.py (the notification area), remote/session.py (one launcher behind one lock) and
gui/hostkey_flow.py (connect from the GUI, asking about unknown host keys) against a real sshd
(tests/remote/fixtures_ssh.py; those tests skip where /usr/sbin/sshd is missing).
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from PySide6.QtCore import QThreadPool

from gui.hostkey_flow import ensure_connected
from gui.notify import Notice, NotificationArea
from gui.worker import WorkerError, run_in_worker
from remote.profiles import LOCAL, ClusterProfile, ProfileStore
from remote.session import AppSession, connect_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remote"))
import fixtures_ssh  # noqa: E402

sshd_pair = fixtures_ssh.sshd_pair
ssh_env = fixtures_ssh.ssh_env
keygen_fingerprint = fixtures_ssh.keygen_fingerprint


def test_notices_are_listed_newest_first_with_details_on_click(qtbot):
    area = NotificationArea()
    qtbot.addWidget(area)
    area.post(Notice("info", "first"))
    err = WorkerError("LaunchError", "no cluster 'gpu'", "Traceback (most recent call last):\n x")
    area.post(Notice.from_error("Launch failed", err, source="Pipeline"))
    assert [n.text for n in area.notices()] == ["first", "Launch failed: LaunchError: no "
                                                "cluster 'gpu'"]
    assert "[Pipeline] Launch failed" in area.list.item(0).text()  # newest on top
    area.list.setCurrentRow(0)
    assert "Traceback (most recent call last)" in area.details.toPlainText()
    assert area.counts() == {"info": 1, "warning": 0, "error": 1}
    assert "1 errors" in area.title.text()
    area.clear()
    assert area.notices() == [] and area.list.count() == 0


def test_a_notice_quoting_a_cluster_shows_its_control_characters_visibly(qtbot):
    area = NotificationArea()
    qtbot.addWidget(area)
    area.post(Notice("error", "stage failed: \x1b[2J\u202eexe.txt",
                     details="line 1\n\x1b]0;title\x07\nline 3"))
    assert "\\x1b[2J\\u202eexe.txt" in area.list.item(0).text()
    area.list.setCurrentRow(0)
    details = area.details.toPlainText()
    assert "\x1b" not in details and "\\x1b]0;title\\x07" in details
    assert details.splitlines()[-1] == "line 3"  # line structure kept


def test_a_notice_with_an_unknown_level_is_refused():
    with pytest.raises(ValueError, match="use one of info, warning, error"):
        Notice("fatal", "x")


def test_session_calls_are_serialised_and_refused_after_close(tmp_path):
    session = AppSession(ProfileStore(tmp_path / "cfg"))
    inside, overlaps = [0], []

    def slow(launcher, tag):
        inside[0] += 1
        overlaps.append(inside[0])
        time.sleep(0.05)
        inside[0] -= 1
        return tag

    threads = [threading.Thread(target=session.call, args=(slow, i)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [1, 1, 1, 1]
    assert session.call(connect_step, LOCAL) is None  # this computer: nothing to connect
    session.close()
    with pytest.raises(RuntimeError, match="closing"):
        session.call(slow, 5)


def _loop_session(ssh_env, known: Path, tmp_path: Path) -> AppSession:
    store = ProfileStore(tmp_path / "cfg")
    store.add(ClusterProfile(name="loop", host="127.0.0.1", port=ssh_env.target.port,
                             user=ssh_env.pair.user, identity_file=str(ssh_env.pair.client_key),
                             use_agent=False, workdir=str(tmp_path / "remote-work"),
                             python=sys.executable))
    return AppSession(store, ssh_options={"known_hosts": str(known),
                                          "ssh_config": str(ssh_env.ssh_config)})


def _run_flow(qtbot, session, answer):
    owner = NotificationArea()  # any widget: the flow's owner
    qtbot.addWidget(owner)
    asked, outcome = [], {}
    ensure_connected(owner, session, ["loop", LOCAL],
                     on_ready=lambda: outcome.setdefault("ready", True),
                     on_failed=lambda msg, details: outcome.setdefault("failed", msg),
                     confirm=lambda parent, key: asked.append(key) or answer)
    qtbot.waitUntil(lambda: bool(outcome), timeout=20_000)
    QThreadPool.globalInstance().waitForDone(5000)
    return asked, outcome


def test_unknown_host_key_is_asked_once_then_trusted(qtbot, ssh_env, tmp_path):
    known = tmp_path / "known_hosts_empty"
    known.write_text("")
    session = _loop_session(ssh_env, known, tmp_path)
    try:
        asked, outcome = _run_flow(qtbot, session, True)
        assert outcome == {"ready": True}
        expected = keygen_fingerprint(ssh_env.target.dir / "hostkey.pub")
        assert [(k.host, k.port, k.fingerprint) for k in asked] == [
            ("127.0.0.1", ssh_env.target.port, expected)]
        assert known.read_text().split()[1:] == ssh_env.target.host_pub.split()
        # connected now: a remote command runs on the session's link
        out = session.call(lambda launcher: launcher.runner("loop").run(["echo", "hi"]).stdout)
        assert out.strip() == "hi"
    finally:
        session.close()


def test_refused_host_key_trusts_and_sends_nothing(qtbot, ssh_env, tmp_path):
    known = tmp_path / "known_hosts_empty"
    known.write_text("")
    session = _loop_session(ssh_env, known, tmp_path)
    try:
        asked, outcome = _run_flow(qtbot, session, False)
        assert len(asked) == 1
        assert "was not accepted, so nothing was trusted or sent" in outcome["failed"]
        assert known.read_text() == ""
        assert not (tmp_path / "remote-work").exists()
    finally:
        session.close()


def test_a_failed_worker_call_is_reported_not_lost(qtbot):
    got = []

    def boom():
        raise OSError("disk full")

    owner = NotificationArea()
    qtbot.addWidget(owner)
    run_in_worker(boom, owner=owner,
                  on_failed=lambda e: owner.post(Notice.from_error("Saving", e)) or got.append(e))
    qtbot.waitUntil(lambda: bool(got), timeout=5000)
    assert owner.notices()[0].text == "Saving: OSError: disk full"
    assert "raise OSError" in owner.notices()[0].details
