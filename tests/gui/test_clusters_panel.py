"""gui/panels/clusters.py: profiles through the form, and Test against this computer and a real
sshd (tests/remote/fixtures_ssh.py), the unknown-host-key dialog included.

The sshd tests skip where /usr/sbin/sshd is missing. Every store write and every test runs in
the worker, so each test waits for what the panel shows, then for the thread pool to drain
(the conftest fails a test that leaves a pooled task running).
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest
import yaml
from PySide6.QtCore import QThreadPool, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from gui.panels.clusters import ClustersPanel
from remote.errors import HostKeyUnknown
from remote.profiles import LOCAL, ProfileStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remote"))
import fixtures_ssh  # noqa: E402

# The sshd fixtures, imported here (pytest_plugins is for the root conftest only).
sshd_pair = fixtures_ssh.sshd_pair
ssh_env = fixtures_ssh.ssh_env
keygen_fingerprint = fixtures_ssh.keygen_fingerprint

TIMEOUT = 20_000  # ms; a first bundle upload plus `python -m engine doctor`


@pytest.fixture
def store(tmp_path, monkeypatch) -> ProfileStore:
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # "This computer"'s workdir
    return ProfileStore()


@pytest.fixture(autouse=True)
def _drain():
    """Let the panel's last worker task (a reload after a save, say) finish before the conftest
    checks for leftovers."""
    yield
    _settle()


def _panel(qtbot, store: ProfileStore, **kwargs) -> ClustersPanel:
    panel = ClustersPanel(store, **kwargs)
    qtbot.addWidget(panel)
    qtbot.waitUntil(lambda: bool(panel.profiles), timeout=5000)
    return panel


def _settle() -> None:
    assert QThreadPool.globalInstance().waitForDone(10_000)
    QApplication.processEvents()


def _stored(store: ProfileStore) -> dict[str, dict]:
    if not store.path.exists():
        return {}
    return {c["name"]: c for c in yaml.safe_load(store.path.read_text())["clusters"]}


def _type(panel: ClustersPanel, **values: str) -> None:
    for key, value in values.items():
        if key == "env":
            panel.editors["env"].setPlainText(value)
        elif key == "scheduler":
            panel.editors["scheduler"].setCurrentText(value)
        else:
            panel.editors[key].setText(value)


def test_this_computer_is_first_and_read_only(qtbot, store):
    panel = _panel(qtbot, store)
    assert panel.profile_names() == [LOCAL]
    assert panel.list.item(0).text().startswith(f"{LOCAL}: this computer")
    assert not panel.editors["host"].isEnabled() and not panel.save_button.isEnabled()
    assert not panel.remove_button.isEnabled() and panel.test_button.isEnabled()


def test_add_edit_remove_round_trip(qtbot, store):
    panel = _panel(qtbot, store)
    panel.add_button.click()
    _type(panel, name="h200", host="login.h200.example", port="2222", user="me",
          jump="bastion.example, inner.example", workdir="~/ss", scheduler="slurm",
          slurm_partition="gpu", slurm_account="llm", gpu_type="H200",
          env="SLURM_CONF=/etc/slurm/slurm.conf\n")
    panel.save_button.click()
    qtbot.waitUntil(lambda: "h200" in panel.profile_names(), timeout=5000)
    saved = _stored(store)["h200"]
    assert saved["host"] == "login.h200.example" and saved["port"] == 2222
    assert saved["jump"] == ["bastion.example", "inner.example"]
    assert saved["slurm"] == {"partition": "gpu", "account": "llm"}
    assert saved["env"] == {"SLURM_CONF": "/etc/slurm/slurm.conf"}
    assert panel.selected_profile().name == "h200"
    text = panel.list.item(1).text()
    assert "me@login.h200.example:2222 via bastion.example -> inner.example" in text
    assert "GPU: H200" in text

    # edit, then rename: the old entry goes, the new one keeps the rest
    _type(panel, gpu_type="H20", name="h20")
    panel.save_button.click()
    qtbot.waitUntil(lambda: "h20" in panel.profile_names(), timeout=5000)
    assert set(_stored(store)) == {"h20"} and _stored(store)["h20"]["gpu_type"] == "H20"
    assert _stored(store)["h20"]["slurm"]["partition"] == "gpu"

    panel.remove_button.click()
    qtbot.waitUntil(lambda: panel.profile_names() == [LOCAL], timeout=5000)
    assert _stored(store) == {}
    _settle()


def test_invalid_host_shows_the_field_error_and_keeps_the_text(qtbot, store):
    panel = _panel(qtbot, store)
    panel.add_button.click()
    _type(panel, name="bad", host="a;b", user="me", env="TOKEN")
    assert panel.save() is None
    errors = panel.field_errors()
    assert set(errors) == {"env"}  # the env line is checked first, before pydantic
    _type(panel, env="")
    assert panel.save() is None
    errors = panel.field_errors()
    assert set(errors) == {"host"} and "shell characters" in errors["host"]
    assert panel.errors["host"].isVisibleTo(panel)
    assert panel.editors["host"].text() == "a;b" and panel.editors["name"].text() == "bad"
    assert not store.path.exists()
    # fixing it clears the error and saves
    _type(panel, host="ok.example")
    panel.save_button.click()
    qtbot.waitUntil(lambda: "bad" in panel.profile_names(), timeout=5000)
    assert panel.field_errors() == {}
    _settle()


def test_a_duplicate_name_shows_the_store_message(qtbot, store):
    panel = _panel(qtbot, store)
    panel.add_button.click()
    _type(panel, name="dup", host="x.example")
    panel.save_button.click()
    qtbot.waitUntil(lambda: "dup" in panel.profile_names(), timeout=5000)
    panel.add_button.click()
    _type(panel, name="dup", host="y.example")
    panel.save_button.click()
    qtbot.waitUntil(lambda: bool(panel.form_error.text()), timeout=5000)
    assert "exists already" in panel.form_error.text()
    _settle()


def test_test_on_this_computer_shows_the_facts(qtbot, store, tmp_path):
    panel = _panel(qtbot, store)
    panel.test_button.click()
    qtbot.waitUntil(lambda: "python " in panel.result.toPlainText(), timeout=TIMEOUT)
    text = panel.result.toPlainText()
    assert f"python {platform.python_version()} at {sys.executable}" in text
    assert "torch " in text and "slurm " in text and "free disk" in text
    assert (tmp_path / "data" / "synthsmith" / "engine").is_dir()  # the bundle went there
    assert "ready" in panel.status.text() and panel.test_button.isEnabled()
    _settle()


def _sshd_panel(qtbot, store, ssh_env, known_hosts: Path, tmp_path: Path) -> ClustersPanel:
    from remote.profiles import ClusterProfile

    store.add(ClusterProfile(name="loop", host="127.0.0.1", port=ssh_env.target.port,
                             user=ssh_env.pair.user, identity_file=str(ssh_env.pair.client_key),
                             use_agent=False, workdir=str(tmp_path / "remote-work"),
                             python=sys.executable))
    panel = _panel(qtbot, store, ssh_options={"known_hosts": str(known_hosts),
                                              "ssh_config": str(ssh_env.ssh_config)})
    panel.select("loop")
    return panel


def test_unknown_host_key_accepted_then_facts(qtbot, store, ssh_env, tmp_path, monkeypatch,
                                              screenshot_dir):
    known = tmp_path / "empty_known_hosts"
    known.write_text("")
    panel = _sshd_panel(qtbot, store, ssh_env, known, tmp_path)
    asked: list[HostKeyUnknown] = []
    monkeypatch.setattr(panel, "confirm_host_key", lambda e: asked.append(e) or True)
    panel.test_button.click()
    qtbot.waitUntil(lambda: "python " in panel.result.toPlainText(), timeout=TIMEOUT)
    expected = keygen_fingerprint(ssh_env.target.dir / "hostkey.pub")
    assert [(e.host, e.port, e.fingerprint) for e in asked] == [
        ("127.0.0.1", ssh_env.target.port, expected)]
    assert f"python {platform.python_version()}" in panel.result.toPlainText()
    assert known.read_text().split() == [f"[127.0.0.1]:{ssh_env.target.port}",
                                         *ssh_env.target.host_pub.split()]
    _settle()
    panel.resize(1200, 640)
    panel.grab().save(str(screenshot_dir / "clusters.png"))

    # known now: a second test asks nothing
    panel.test_button.click()
    qtbot.waitUntil(lambda: panel.test_button.isEnabled(), timeout=TIMEOUT)
    assert len(asked) == 1 and "python " in panel.result.toPlainText()
    _settle()


def test_skipped_known_hosts_lines_are_shown_with_the_facts(qtbot, store, ssh_env, tmp_path):
    known = tmp_path / "known_hosts_with_odd_lines"
    known.write_text("@cert-authority *.example ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI\n"
                     "garbage line\n"
                     f"[127.0.0.1]:{ssh_env.target.port} {ssh_env.target.host_pub}\n")
    panel = _sshd_panel(qtbot, store, ssh_env, known, tmp_path)
    panel.test_button.click()
    qtbot.waitUntil(lambda: panel.test_button.isEnabled(), timeout=TIMEOUT)
    text = panel.result.toPlainText()
    assert "python " in text and "Warnings:" in text, text
    assert text.count("known_hosts line skipped") == 2
    assert f"{known}:1:" in text and f"{known}:2:" in text
    assert "2 known_hosts lines skipped" in panel.status.text()
    _settle()


def test_unknown_host_key_refused_trusts_nothing(qtbot, store, ssh_env, tmp_path, monkeypatch):
    known = tmp_path / "empty_known_hosts"
    known.write_text("")
    panel = _sshd_panel(qtbot, store, ssh_env, known, tmp_path)
    monkeypatch.setattr(panel, "confirm_host_key", lambda e: False)
    panel.test_button.click()
    qtbot.waitUntil(lambda: panel.test_button.isEnabled() and bool(panel.result.toPlainText()),
                    timeout=TIMEOUT)
    assert "nothing was trusted" in panel.result.toPlainText()
    assert "nothing was trusted" in panel.status.text()
    assert known.read_text() == ""
    assert not (tmp_path / "remote-work").exists()  # nothing was sent either
    _settle()


def test_the_dialog_shows_host_type_and_fingerprint(qtbot, store):
    panel = _panel(qtbot, store)
    error = HostKeyUnknown("login.example", 2222, "ssh-ed25519", "SHA256:abc123", key=None)
    seen: list[str] = []

    def answer() -> None:
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, answer)
            return
        seen.append(box.text() + "\n" + box.informativeText())
        box.button(QMessageBox.StandardButton.Yes).click()

    QTimer.singleShot(0, answer)
    assert panel.confirm_host_key(error) is True
    assert "login.example:2222" in seen[0] and "ssh-ed25519 SHA256:abc123" in seen[0]


def test_auth_and_unreachable_errors_show_their_message(qtbot, store, ssh_env, tmp_path):
    from remote.profiles import ClusterProfile

    store.add(ClusterProfile(name="nokey", host="127.0.0.1", port=ssh_env.target.port,
                             user=ssh_env.pair.user, identity_file=str(tmp_path / "missing"),
                             use_agent=False))
    panel = _panel(qtbot, store, ssh_options={"known_hosts": str(ssh_env.known_hosts),
                                              "ssh_config": str(ssh_env.ssh_config)})
    panel.select("nokey")
    panel.test_button.click()
    qtbot.waitUntil(lambda: bool(panel.result.toPlainText()), timeout=TIMEOUT)
    assert "identity file" in panel.result.toPlainText()
    assert "the login was refused" in panel.status.text()  # words, not "AuthError"
    _settle()


def test_a_test_result_from_a_cluster_shows_control_characters_visibly(qtbot, store):
    panel = _panel(qtbot, store)
    panel._finish_test("gpu: \x1b[2Jready", "python 3.11\n\x1b]0;owned\x07torch \u202e2.13\n")
    assert panel.status.text() == "gpu: \\x1b[2Jready"
    lines = panel.result.toPlainText().splitlines()
    assert lines == ["python 3.11", "\\x1b]0;owned\\x07torch \\u202e2.13"]


def test_test_takes_the_unsaved_form_and_a_new_selection_clears_the_last_answer(
        qtbot, store, ssh_env, tmp_path):
    panel = _panel(qtbot, store, ssh_options={"known_hosts": str(ssh_env.known_hosts),
                                              "ssh_config": str(ssh_env.ssh_config)})
    panel.new_profile()
    panel.test_button.click()  # an empty form: its errors, no test
    assert not panel.is_testing() and "Fix the fields" in panel.status.text()
    assert "name" in panel.field_errors() or "host" in panel.field_errors()
    _type(panel, name="unsaved", host="127.0.0.1", port=str(ssh_env.target.port),
          user=ssh_env.pair.user, identity_file=str(ssh_env.pair.client_key),
          workdir=str(tmp_path / "unsaved-work"), python=sys.executable)
    panel.editors["use_agent"].setChecked(False)
    panel.test_button.click()
    assert panel.is_testing()
    qtbot.waitUntil(lambda: not panel.is_testing(), timeout=TIMEOUT)
    assert "python " in panel.result.toPlainText(), panel.result.toPlainText()
    assert panel.status.text().startswith("unsaved: ready")
    assert "unsaved" not in [p.name for p in store.list()]  # tested, not saved
    panel.select("This computer")  # another profile: the answer about "unsaved" goes
    assert panel.result.toPlainText() == "" and panel.status.text() == ""
    _settle()


def test_a_failed_test_says_what_failed_in_words(qtbot, store):
    from gui.panels.clusters import failure_words

    assert failure_words("TransientError") == "the test failed: the connection failed"
    assert "TransientError" not in failure_words("TransientError")
    assert "unexpected" in failure_words("KeyError")
