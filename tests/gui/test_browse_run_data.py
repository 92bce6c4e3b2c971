"""The main window's "Browse data" of a run: its store on This computer opens as a file; on
a cluster it is queried page by page over the session's SSH link (real sshd, the engine bundle
uploaded by the app), never downloaded; the run's RL rollouts come the same way.

The sshd test skips where /usr/sbin/sshd is missing (tests/remote/fixtures_ssh.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gui.main_window import PANELS, MainWindow, store_source_for
from remote.pipeline_edit import load_pipeline
from remote.profiles import LOCAL, ClusterProfile, ProfileStore
from remote.run_registry import RunRecord, RunRegistry, Segment
from remote.session import AppSession

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "remote"))
import fixtures_ssh  # noqa: E402
from sample_run import build_sample_run  # noqa: E402

sshd_pair = fixtures_ssh.sshd_pair
ssh_env = fixtures_ssh.ssh_env


def _record(registry: RunRegistry, run_id: str, cluster: str, run_dir: Path) -> None:
    registry.save(RunRecord(run_id=run_id, config_path="smoke.yaml", config_text="{}\n",
                            created_at=time.time(),
                            segments=[Segment(cluster, ["seeds", "verify", "rl"],
                                              status="completed")],
                            clusters={cluster: {"run_dir": str(run_dir),
                                                "bundle": "/nonexistent/old-bundle"}}))


def _browse(qtbot, window: MainWindow, run_id: str) -> None:
    window.browse_run_data(run_id)
    panel = window.data_panel
    qtbot.waitUntil(lambda: window.sidebar.currentRow() == PANELS.index("Data"),
                    timeout=30_000)
    qtbot.waitUntil(lambda: panel.page is not None and not panel.busy(), timeout=30_000)


def test_a_run_on_this_computer_opens_its_store_file(qtbot, tmp_path):
    session = AppSession(ProfileStore(tmp_path / "cfg"), RunRegistry(tmp_path / "runs"))
    run = build_sample_run(tmp_path / "run")
    _record(session.registry, "local-run", LOCAL, run.root)
    assert store_source_for(session, "local-run") == ("local", str(run.store_path))
    window = MainWindow(load_pipeline(), session=session)
    qtbot.addWidget(window)
    _browse(qtbot, window, "local-run")
    assert window.data_panel.path == run.store_path
    assert window.data_panel.model.rowCount() == 8


def test_a_run_on_a_cluster_is_browsed_over_ssh_without_downloading_the_store(
        qtbot, ssh_env, tmp_path):
    profiles = ProfileStore(tmp_path / "cfg")
    remote_work = tmp_path / "remote-work"
    profiles.add(ClusterProfile(name="loop", host="127.0.0.1", port=ssh_env.target.port,
                                user=ssh_env.pair.user,
                                identity_file=str(ssh_env.pair.client_key), use_agent=False,
                                workdir=str(remote_work), python=sys.executable))
    session = AppSession(profiles, RunRegistry(tmp_path / "desktop" / "runs"),
                         ssh_options={"known_hosts": str(ssh_env.known_hosts),
                                      "ssh_config": str(ssh_env.ssh_config)})
    run = build_sample_run(remote_work / "runs" / "r1")  # "on the cluster"
    _record(session.registry, "r1", "loop", run.root)
    window = MainWindow(load_pipeline(), session=session)
    qtbot.addWidget(window)
    _browse(qtbot, window, "r1")
    panel = window.data_panel
    assert panel.path is None and "loop" in panel.message.text()  # remote, not a file
    assert panel.model.rowCount() == 8
    panel.table.selectRow(0)
    qtbot.waitUntil(lambda: panel.detail is not None and not panel.busy(), timeout=30_000)
    assert panel.statement_view.toPlainText().strip()
    # the app uploaded its engine (the run's recorded bundle was gone) and kept no copy
    assert list((remote_work / "engine").iterdir())
    assert not list((tmp_path / "desktop").rglob("*.sqlite"))
    # the run's RL rollouts come over the same link
    panel.show_rollouts()
    view = panel.rollouts
    qtbot.waitUntil(lambda: view.steps == [1, 2] and not view.busy(), timeout=30_000)
    qtbot.waitUntil(lambda: not panel.busy() and not view.busy(), timeout=30_000)
    assert view.step_combo.currentData() == 2
