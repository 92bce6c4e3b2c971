"""Browse a run's store on a cluster without downloading it: ``RemoteStore``.

``RemoteStore`` has the read methods of ``engine.store_rpc.StoreReader`` (the ones the Data
panel uses: ``query_tasks``, ``get_task``, ``lineage_of``, ``reject_reasons``,
``golden_solution``, ``rollout_steps``, ``rollout_groups``, ``rollout_group``); each call is
ONE remote command through the cluster's runner, ``python -m engine query STORE`` in the
engine bundle with the request on stdin, answered by a fresh process that opens the store
read-only (engine/store_rpc.py)::

    store = RemoteStore(runner, "/scratch/me/synthsmith/runs/r1/data/store.sqlite",
                        engine_dir="/scratch/me/synthsmith/engine/3f2a...", python="python3",
                        prefix="source ~/venv/bin/activate", lock=session.lock)
    page = store.query_tasks(TaskQuery(status="accepted", limit=100))
    store.last_seconds, store.last_server_seconds   # round trip, and the query's own part

The command is built by ``remote.quoting.command_line`` (the one quoting point) with the
profile's activation ``prefix`` and ``env``, exactly as stage jobs run (remote/schedulers.py).
``lock``: the app's session lock (remote/session.py), taken around every use of the runner, so
these queries never interleave with launches and polls on the same link.

Errors name the cause and the fix: ``RemoteSetupError`` for a missing Python, a missing
engine bundle, an engine that predates ``query`` or lacks a request kind (upload a current
bundle) or one that does not import; ``engine.store.StoreError`` for the store's own problems
(no store yet, a store from a newer engine), the same exception a local store raises; the
runner's own errors (``TransientError``, ``CommandTimeout``...) pass through.

Left out: caching answers (every call asks again: the run may still be writing), batching
several requests into one command, and compression (ssh may compress the channel).
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Any

from engine.contracts.rollouts import GroupSummary, RolloutRecord
from engine.contracts.store import (
    LineageEdge,
    NodeKind,
    RequestError,
    RpcError,
    Solution,
    StoreError,
    TaskDetail,
    TaskPage,
    TaskQuery,
    decode_answer,
    request,
)
from remote.errors import RemoteSetupError
from remote.quoting import absolute_path, command_line
from remote.runner import CommandRunner, run_framed

DEFAULT_TIMEOUT_S = 120.0
ANSWER_MAX_BYTES = 64 << 20  # one page or one task: far below this
DEFAULT_MAX_TEST_CHARS = 8192  # per test input / output in get_task; the panel previews 2000


class RemoteStore:
    """A run's store and rollouts on a cluster, queried through ``runner`` (module docstring)."""

    def __init__(self, runner: CommandRunner, store_path: str, *, engine_dir: str,
                 python: str = "python3", prefix: str | None = None,
                 env: Mapping[str, str] | None = None,
                 lock: AbstractContextManager[Any] | None = None,
                 timeout_s: float = DEFAULT_TIMEOUT_S,
                 max_test_chars: int | None = DEFAULT_MAX_TEST_CHARS) -> None:
        self.runner = runner
        self.store_path = store_path
        self.engine_dir = engine_dir
        self.python = python
        self.prefix = prefix
        self.env = dict(env or {})
        self.lock = lock
        self.timeout_s = timeout_s
        self.max_test_chars = max_test_chars
        self.label = f"{runner.name}:{store_path}"
        self.last_seconds = 0.0  # the last call's round trip (command start to answer)
        self.last_server_seconds = 0.0  # the part the engine spent answering
        self.calls = 0

    def __repr__(self) -> str:
        return f"RemoteStore({self.label!r})"

    # -- the read API (engine.store_rpc.StoreReader's)

    def query_tasks(self, query: TaskQuery) -> TaskPage:
        return self._ask("query_tasks", query=query)

    def get_task(self, task_id: int) -> TaskDetail | None:
        """Tests cut to ``max_test_chars`` (engine.store_rpc.cut_tests); None: whole."""
        return self._ask("get_task", task_id=task_id, max_test_chars=self.max_test_chars)

    def lineage_of(self, node_kind: NodeKind, node_id: int, *,
                   max_edges: int = 2000) -> list[LineageEdge]:
        return self._ask("lineage_of", node_kind=node_kind, node_id=node_id,
                         max_edges=max_edges)

    def reject_reasons(self) -> list[tuple[str, int]]:
        return self._ask("reject_reasons")

    def golden_solution(self, task_id: int) -> Solution | None:
        return self._ask("golden_solution", task_id=task_id)

    def rollout_steps(self) -> list[int]:
        return self._ask("rollout_steps")

    def rollout_groups(self, step: int) -> list[GroupSummary]:
        return self._ask("rollout_groups", step=step)

    def rollout_group(self, step: int, rank: int, group: int) -> list[RolloutRecord]:
        return self._ask("rollout_group", step=step, rank=rank, group=group)

    def close(self) -> None:
        """Nothing to close: the runner belongs to whoever gave it (the app's launcher)."""

    # -- one request = one remote command

    def command(self) -> str:
        """The shell command every request runs (the request itself goes on stdin)."""
        return command_line([self.python, "-m", "engine", "query", self._expand(self.store_path)],
                            cwd=self._expand(self.engine_dir), env=self.env,
                            prefix=self.prefix)

    def _expand(self, path: str) -> str:
        return absolute_path(self.runner.home(), path)

    def _ask(self, kind: str, **args: Any) -> Any:
        payload = json.dumps(request(kind, **args), ensure_ascii=True)
        with self.lock if self.lock is not None else contextlib.nullcontext():
            # Framed and capped: a login banner never reads as the answer, and a cluster
            # cannot make the desktop read without end.
            result = run_framed(self.runner, self.command(), timeout=self.timeout_s,
                                input=payload, max_bytes=ANSWER_MAX_BYTES,
                                what="the store query")
        self.calls += 1
        self.last_seconds = result.duration_s
        answer = self._parse(result)
        self.last_server_seconds = float(answer.get("seconds") or 0.0)
        try:
            return decode_answer(kind, answer)
        except RequestError as exc:
            if "does not answer" in str(exc) or "newer than this engine" in str(exc):
                raise RemoteSetupError(f"{self.runner.name}: the engine at {self.engine_dir} "
                                       f"is older than this app: {exc}") from None
            raise

    def _parse(self, result: Any) -> dict[str, Any]:
        where = self.runner.name
        stdout = result.stdout.strip()
        if stdout.startswith("{"):
            try:
                answer = json.loads(stdout.splitlines()[-1])
            except ValueError:
                answer = None
            if isinstance(answer, dict) and "ok" in answer:
                return answer
        err = (result.stderr or "").strip()
        tail = err[-600:]
        if "invalid choice: 'query'" in err:
            raise RemoteSetupError(
                f"{where}: the engine at {self.engine_dir} predates remote browsing (it has no "
                "`query` command): upload a current engine bundle (resume the run from this "
                "app, or launch once) and browse again")
        if result.returncode == 127 or ("No such file or directory" in err
                                        and self.python in err):
            raise RemoteSetupError(
                f"{where}: the Python `{self.python}` was not found ({tail[-200:]}); set the "
                "profile's python or its activate line")
        if "can't cd" in err or ("cd:" in err and self.engine_dir in err):
            raise RemoteSetupError(f"{where}: no engine bundle at {self.engine_dir} "
                                   f"({tail[-200:]}); launch or resume the run to upload it")
        if "No module named" in err:
            mod = err.rsplit("No module named", 1)[-1].strip(" '\"\n")
            raise RemoteSetupError(f"{where}: the engine there does not import (no module "
                                   f"{mod}): {tail}")
        raise RpcError(f"{where}: `{result.command}` exited {result.returncode} without an "
                       f"answer: {tail or stdout[:300] or '(no output)'}")


__all__ = ["DEFAULT_MAX_TEST_CHARS", "RemoteStore"]


class StoreSession:
    """An open store (a local ``StoreReader`` or a ``RemoteStore``) and the lock that keeps it
    to one thread at a time: the Data and rollout views call it from their worker."""

    def __init__(self, source: Any) -> None:
        self.source = source
        self.lock = threading.Lock()
        self.closed = False

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        with self.lock:
            if self.closed:
                raise StoreError("the store was closed")
            return fn(self.source, *args)

    def close(self) -> None:
        with self.lock:  # waits for a query in flight
            if not self.closed:
                self.closed = True
                self.source.close()
