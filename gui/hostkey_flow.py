"""Connect to clusters from the GUI, asking the user about unknown host keys.

    ensure_connected(panel, session, ["gpu-a", "gpu-b"], on_ready=launch, on_failed=show)

Each cluster is connected in the worker (``remote.session.connect_step``). An unknown host key
comes back to the GUI thread and is shown with its fingerprint (``confirm_host_key``; tests
pass their own ``confirm``); only an accepted key is written to known_hosts (in the worker),
then the connection is tried again. A refused key stops the flow and nothing is trusted or
sent. Never auto-accepts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from PySide6.QtWidgets import QMessageBox, QWidget

from gui.worker import WorkerError, run_in_worker
from remote.errors import HostKeyUnknown
from remote.session import AppSession, UnknownHostKey, connect_step

MAX_KEY_PROMPTS = 4  # the target and up to three jump hosts may each be new


def confirm_host_key(parent: QWidget | None, error: HostKeyUnknown) -> bool:
    """Ask whether to trust a host key never seen before; No is the default."""
    box = QMessageBox(QMessageBox.Icon.Question, "Unknown host key",
                      f"The host key of {error.host}:{error.port} is not known.",
                      QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, parent)
    box.setObjectName("host_key_dialog")
    box.setInformativeText(
        f"{error.key_type} {error.fingerprint}\n\nCompare it with the fingerprint the "
        "cluster's admins publish. Trust this key and connect?")
    box.setDefaultButton(QMessageBox.StandardButton.No)
    return box.exec() == QMessageBox.StandardButton.Yes


def ensure_connected(owner: QWidget, session: AppSession, clusters: Sequence[str], *,
                     on_ready: Callable[[], None], on_failed: Callable[[str, str], None],
                     confirm: Callable[[QWidget, HostKeyUnknown], bool] | None = None) -> None:
    """Connect every cluster in turn; ``on_ready()`` when all are, else
    ``on_failed(message, details)``."""
    todo = list(dict.fromkeys(clusters))
    asked = {"n": 0}
    ask = confirm or confirm_host_key

    def next_cluster() -> None:
        if not todo:
            on_ready()
            return
        run_in_worker(session.call, connect_step, todo[0], owner=owner,
                      on_done=connected, on_failed=failed)

    def failed(error: WorkerError) -> None:
        on_failed(f"Could not connect to {todo[0]}: {error}", error.traceback)

    def connected(outcome: UnknownHostKey | None) -> None:
        if outcome is None:
            todo.pop(0)
            next_cluster()
            return
        key = outcome.error
        asked["n"] += 1
        if asked["n"] > MAX_KEY_PROMPTS:
            on_failed(f"{todo[0]}: host keys keep being unknown after {MAX_KEY_PROMPTS} were "
                      "accepted; check known_hosts", str(key))
            return
        if not ask(owner, key):
            on_failed(f"{todo[0]}: the host key of {key.host}:{key.port} ({key.key_type} "
                      f"{key.fingerprint}) was not accepted, so nothing was trusted or sent",
                      "Compare the fingerprint with the one the cluster's admins publish, "
                      "then try again.")
            return
        from remote.hostkeys import accept_host_key

        run_in_worker(accept_host_key, outcome.known_hosts_file, key.host, key.port, key.key,
                      owner=owner, on_done=lambda _: next_cluster(), on_failed=failed)

    next_cluster()
