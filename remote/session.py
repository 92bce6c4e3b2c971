"""What every panel shares: the cluster profiles, the run registry and ONE launcher.

The launcher holds the open links (one SSH connection per cluster, reused by launches, polls,
log tails and remote store queries). A paramiko transport is not ours to share between
threads without care, so every use of the launcher goes through ``AppSession.call`` (worker
side only), which takes one lock: remote work is serialised, the GUI thread never waits::

    session = AppSession()                       # ~/.config/synthsmith profiles, data dir runs
    run_in_worker(session.call, Launcher.refresh, run_id, on_done=..., on_failed=...)

``connect_step(session, cluster)`` is the worker half of the host-key flow: it returns an
``UnknownHostKey`` (host, port, key type, fingerprint and where to save it) instead of raising,
so a panel can ask the user (``gui.hostkey_flow``) and only an accepted key is written.

Qt-free on purpose (tests and the headless CLI can use it). Left out: a connection per
thread (one lock is simpler and the polls are small), cancelling a remote call in flight.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from remote.errors import HostKeyUnknown
from remote.launch import Launcher
from remote.profiles import ProfileStore, runner_for
from remote.run_registry import RunRegistry

T = TypeVar("T")


@dataclass(frozen=True)
class UnknownHostKey:
    """A host key the user has not trusted yet, and the file an accepted one goes to."""

    error: HostKeyUnknown
    known_hosts_file: str


class AppSession:
    def __init__(self, profiles: ProfileStore | None = None,
                 registry: RunRegistry | None = None, *,
                 ssh_options: dict[str, Any] | None = None,
                 runner_factory: Callable[[Any], Any] | None = None) -> None:
        self.profiles = profiles or ProfileStore()
        self.registry = registry or RunRegistry()
        self.ssh_options = dict(ssh_options or {})
        factory = runner_factory or (lambda p: runner_for(p, **self.ssh_options))
        self.launcher = Launcher(self.profiles, self.registry, runner_factory=factory)
        self.lock = threading.RLock()
        self.closed = False

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(launcher, *args, **kwargs)`` under the session lock (call it in a worker)."""
        with self.lock:
            if self.closed:
                raise RuntimeError("the app is closing; nothing more is sent to the clusters")
            return fn(self.launcher, *args, **kwargs)

    def close(self) -> None:
        """Close every link (waits for a remote call in flight)."""
        with self.lock:
            self.closed = True
            self.launcher.close()


def connect_step(launcher: Launcher, cluster: str) -> UnknownHostKey | None:
    """Connect to ``cluster`` (use through ``AppSession.call``): None once connected, or the
    unknown host key that stopped it. This computer has nothing to connect."""
    runner = launcher.runner(cluster)
    if not hasattr(runner, "connect"):
        return None
    try:
        runner.connect()
    except HostKeyUnknown as e:
        return UnknownHostKey(e, runner.known_hosts_file)
    return None
