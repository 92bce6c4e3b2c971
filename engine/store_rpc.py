"""The data browser's read API as JSON requests and answers, for stores on a cluster.

The desktop never downloads a run's store to browse it: each page, task or rollout group is
one small request, answered on the cluster by a fresh engine process that opens the store
read-only, runs the query and prints one JSON answer::

    echo '{"v": 1, "kind": "query_tasks", "args": {"query": {"status": "accepted"}}}' \\
        | python -m engine query runs/<id>/data/store.sqlite

``StoreReader(store_path)`` is that read API over local files (the store, opened read-only on
first use, and the run's rollout files, engine/rollouts.py); the Data panel uses it for a
store on this computer and ``remote.store_client.RemoteStore`` offers the same methods over a
cluster's link. ``answer(reader, request)`` runs one request; ``request(kind, **args)`` and
``decode_answer(kind, answer)`` are the client's half. The methods of ``StoreReader`` ARE the
protocol: a request's ``kind`` is a method name, its ``args`` the keyword arguments (decoded
by the method's type hints) and the answer's ``result`` the encoded return value.

Kinds: ``query_tasks(query)`` -> TaskPage, ``get_task(task_id, max_test_chars)`` ->
TaskDetail | None, ``lineage_of(node_kind, node_id, max_edges)``, ``reject_reasons()``,
``golden_solution(task_id)`` -> Solution | None (only the golden code crosses the link, not
the task's tests), ``rollout_steps()``, ``rollout_groups(step)``, ``rollout_group(step,
rank, group)`` (rollouts of ``<run>/rollouts/``, the run dir being the store's
``<run>/data/store.sqlite`` grandparent).

Answers: ``{"v": 1, "ok": true, "result": ..., "seconds": 0.004}`` or ``{"v": 1, "ok":
false, "error": {"type": "StoreError" | "RequestError" | "InternalError", "message": ...}}``.
Dataclasses travel as objects of their fields, tuples as lists; a decoder ignores fields it
does not know (an answer from a newer engine still decodes) and gives a field the answer
lacks its default (an older engine's TaskDetail has no ``verify_meta``: ``{}``). The command prints ASCII only
(``\\u`` escapes), so the cluster's locale cannot garble it, and exits 0 for an ``ok``
answer, 1 otherwise (the answer says why).

Start-up cost is what a page costs: the ``query`` command is dispatched before the engine's
CLI imports pydantic and the config schema, so it loads only the standard library (~0.1 s).
``get_task(max_test_chars=N)`` cuts each test's input and expected output to N characters and
records the full lengths in the test's ``meta[CUT_KEY]`` (a stress test can be megabytes).

Left out: writes of any kind, streaming answers (every answer is one JSON document), and
compression (ssh can compress the channel).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sqlite3
import sys
import time
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from engine import rollouts as rollout_files
from engine.rollouts import GroupSummary, RolloutRecord
from engine.store import (
    LineageEdge,
    NodeKind,
    Solution,
    Store,
    StoreError,
    TaskDetail,
    TaskPage,
    TaskQuery,
)

PROTOCOL_VERSION = 1
CUT_KEY = "cut_from_chars"  # in Test.meta of a cut test: {"input": n, "expected_output": m}


class RpcError(Exception):
    """An answer that reports a failure other than the store's own (StoreError)."""


class RequestError(RpcError, ValueError):
    """A request this engine cannot answer (unknown kind, bad arguments, newer protocol)."""


# ---------------------------------------------------------------------------------------------
# The read API over local files


class StoreReader:
    """The data browser's read API over a store file and its run's rollout files.

    The store is opened read-only on first use, so rollout requests work for a run without a
    store. Use one reader from one thread at a time (like ``Store``).
    """

    def __init__(self, store_path: str | Path, *, run_dir: str | Path | None = None) -> None:
        self.path = Path(store_path)
        if run_dir is None and self.path.parent.name == "data":
            run_dir = self.path.parent.parent  # <run>/data/store.sqlite
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.label = str(self.path)
        self._store: Store | None = None

    def _db(self) -> Store:
        if self._store is None:
            self._store = Store(self.path, readonly=True)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the store (Store's own methods)

    def query_tasks(self, query: TaskQuery) -> TaskPage:
        return self._db().query_tasks(query)

    def get_task(self, task_id: int, max_test_chars: int | None = None) -> TaskDetail | None:
        detail = self._db().get_task(task_id)
        if detail is None or max_test_chars is None:
            return detail
        return cut_tests(detail, max_test_chars)

    def lineage_of(self, node_kind: NodeKind, node_id: int,
                   max_edges: int = 2000) -> list[LineageEdge]:
        return self._db().lineage_of(node_kind, node_id, max_edges=max_edges)

    def reject_reasons(self) -> list[tuple[str, int]]:
        return [tuple(r) for r in self._db().reject_reasons()]  # type: ignore[misc]

    def golden_solution(self, task_id: int) -> Solution | None:
        """The task's golden solution (None when the task or its golden one is missing). A
        negative id is a seed problem in the RL set (minus its seed id, engine/train/rl_data.py):
        its first reference solution, as a Solution with id 0."""
        if task_id < 0:
            seed = next(self._db().iter_seeds(after_id=-task_id - 1, batch=1), None)
            if seed is None or seed.id != -task_id or not seed.solutions:
                return None
            return Solution(id=0, task_id=task_id, idx=0, language="python",
                            code=seed.solutions[0], reasoning=None, status="ok",
                            reject_reason=None)
        detail = self._db().get_task(task_id)
        if detail is None or detail.golden_solution_id is None:
            return None
        return next((s for s in detail.solutions if s.id == detail.golden_solution_id), None)

    # -- rollouts (engine/rollouts.py)

    def _rollouts(self) -> Path | None:
        return rollout_files.rollouts_dir(self.run_dir) if self.run_dir is not None else None

    def rollout_steps(self) -> list[int]:
        folder = self._rollouts()
        return rollout_files.rollout_steps(folder) if folder is not None else []

    def rollout_groups(self, step: int) -> list[GroupSummary]:
        folder = self._rollouts()
        if folder is None:
            return []
        return rollout_files.groups(rollout_files.read_rollouts(folder, step=step))

    def rollout_group(self, step: int, rank: int, group: int) -> list[RolloutRecord]:
        folder = self._rollouts()
        if folder is None:
            return []
        return rollout_files.group_records(
            rollout_files.read_rollouts(folder, step=step, rank=rank), rank, group)


KINDS = ("query_tasks", "get_task", "lineage_of", "reject_reasons", "golden_solution",
         "rollout_steps", "rollout_groups", "rollout_group")


def cut_tests(detail: TaskDetail, limit: int) -> TaskDetail:
    """``detail`` with test inputs / expected outputs over ``limit`` chars cut to ``limit``;
    a cut test's ``meta[CUT_KEY]`` holds the full lengths."""
    tests = []
    for t in detail.tests:
        out = t.expected_output
        if len(t.input) <= limit and (out is None or len(out) <= limit):
            tests.append(t)
            continue
        full = {"input": len(t.input), "expected_output": None if out is None else len(out)}
        tests.append(dataclasses.replace(
            t, input=t.input[:limit], expected_output=None if out is None else out[:limit],
            meta={**t.meta, CUT_KEY: full}))
    return dataclasses.replace(detail, tests=tests)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(obj: Any) -> Any:
    """A JSON-able form: dataclasses -> dicts of their fields, tuples -> lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: encode(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [encode(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): encode(v) for k, v in obj.items()}
    return obj


def decode(tp: Any, data: Any) -> Any:
    """``data`` (from ``encode`` and JSON) back into the type ``tp`` (a type hint)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        if data is None:
            return None
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        for m in members:
            if dataclasses.is_dataclass(m) and isinstance(data, dict):
                return decode(m, data)
        return decode(members[0], data) if len(members) == 1 else data
    if origin is list:
        (item,) = typing.get_args(tp) or (Any,)
        return [decode(item, x) for x in _as_list(data)]
    if origin is tuple:
        args = typing.get_args(tp)
        items = _as_list(data)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(decode(args[0], x) for x in items)
        if args and len(args) != len(items):
            raise ValueError(f"expected {len(args)} items, got {len(items)}")
        return tuple(decode(a, x) for a, x in zip(args or [Any] * len(items), items, strict=True))
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(data, dict):
            raise ValueError(f"{tp.__name__}: expected an object, got {type(data).__name__}")
        hints = typing.get_type_hints(tp)
        known = {f.name for f in dataclasses.fields(tp)}
        return tp(**{k: decode(hints[k], v) for k, v in data.items() if k in known})
    if tp is int and (not isinstance(data, int) or isinstance(data, bool)):
        raise ValueError(f"expected an integer, got {data!r}")
    if tp is float and isinstance(data, int) and not isinstance(data, bool):
        return float(data)
    if tp is str and not isinstance(data, str):
        raise ValueError(f"expected a string, got {data!r}")
    return data


def _as_list(data: Any) -> list:
    if not isinstance(data, list):
        raise ValueError(f"expected a list, got {type(data).__name__}")
    return data


def _hints(kind: str) -> dict[str, Any]:
    return typing.get_type_hints(getattr(StoreReader, kind))


# ---------------------------------------------------------------------------------------------
# Requests and answers


def request(kind: str, **args: Any) -> dict[str, Any]:
    """The request for ``StoreReader.<kind>(**args)``."""
    if kind not in KINDS:
        raise RequestError(f"unknown request kind {kind!r}; kinds: {', '.join(KINDS)}")
    return {"v": PROTOCOL_VERSION, "kind": kind, "args": encode(args)}


def _failure(kind: str, message: str) -> dict[str, Any]:
    return {"v": PROTOCOL_VERSION, "ok": False, "error": {"type": kind, "message": message}}


def answer(reader: StoreReader, req: Mapping[str, Any]) -> dict[str, Any]:
    """Run one request against ``reader``; failures become error answers, never exceptions."""
    t0 = time.perf_counter()
    try:
        kind, args = _check(req)
        hints = _hints(kind)
        try:
            decoded = {name: decode(hints[name], value) for name, value in args.items()}
            result = getattr(reader, kind)(**decoded)
        except (TypeError, ValueError) as exc:  # wrong or missing argument, bad TaskQuery
            raise RequestError(f"{kind}: {exc}") from None
    except RequestError as exc:
        return _failure("RequestError", str(exc))
    except StoreError as exc:
        return _failure("StoreError", str(exc))
    except sqlite3.Error as exc:  # "file is not a database", a locked or corrupt file
        return _failure("StoreError", f"{reader.label}: {type(exc).__name__}: {exc}")
    except Exception as exc:  # a bug: say what, keep the answer well-formed
        return _failure("InternalError", f"{type(exc).__name__}: {exc}")
    return {"v": PROTOCOL_VERSION, "ok": True, "result": encode(result),
            "seconds": round(time.perf_counter() - t0, 6)}


def _check(req: Any) -> tuple[str, dict[str, Any]]:
    if not isinstance(req, Mapping):
        raise RequestError("a request is a JSON object with kind and args")
    v = req.get("v", PROTOCOL_VERSION)
    if not isinstance(v, int) or v > PROTOCOL_VERSION:
        raise RequestError(f"request version {v!r} is newer than this engine's "
                           f"{PROTOCOL_VERSION}: update the engine bundle on this cluster")
    kind = req.get("kind")
    if kind not in KINDS:
        raise RequestError(f"this engine does not answer {kind!r} requests (it answers "
                           f"{', '.join(KINDS)}): update the engine bundle on this cluster")
    args = req.get("args") or {}
    if not isinstance(args, Mapping):
        raise RequestError(f"{kind}: args must be an object")
    unknown = set(args) - set(_hints(kind)) - {"return"}
    if unknown:
        raise RequestError(f"{kind}: unknown argument(s) {', '.join(sorted(unknown))}")
    return kind, dict(args)


def decode_answer(kind: str, ans: Any) -> Any:
    """The result of an answer to a ``kind`` request, decoded; raises the error it reports
    (``StoreError`` for the store's own, ``RequestError``, else ``RpcError``)."""
    if not isinstance(ans, Mapping) or "ok" not in ans:
        raise RpcError(f"not an answer: {str(ans)[:200]}")
    if not ans["ok"]:
        err = ans.get("error") or {}
        message = str(err.get("message") or "no message")
        raise {"StoreError": StoreError, "RequestError": RequestError}.get(
            err.get("type"), RpcError)(message)
    try:
        return decode(_hints(kind)["return"], ans.get("result"))
    except (TypeError, ValueError) as exc:
        raise RpcError(f"a {kind} answer that does not decode ({exc}): is the engine there "
                       "from another SynthSmith version?") from None


# ---------------------------------------------------------------------------------------------
# The command: python -m engine query STORE


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("store", help="the run's data/store.sqlite (opened read-only)")
    p.add_argument("--request", metavar="JSON", help="the request (default: read from stdin)")
    p.add_argument("--run-dir", help="the run dir whose rollouts/ to read (default: the "
                   "store's <run>/data/store.sqlite grandparent)")


def run_from_args(args: argparse.Namespace) -> int:
    text = args.request if args.request is not None else sys.stdin.buffer.read().decode(
        "utf-8", errors="replace")
    try:
        req = json.loads(text) if text.strip() else None
    except ValueError as exc:
        ans = _failure("RequestError", f"the request is not JSON: {exc}")
    else:
        if req is None:
            ans = _failure("RequestError", "no request: give --request JSON or one on stdin")
        else:
            with StoreReader(args.store, run_dir=args.run_dir) as reader:
                ans = answer(reader, req)
    sys.stdout.write(json.dumps(ans, ensure_ascii=True, separators=(",", ":")) + "\n")
    sys.stdout.flush()
    return 0 if ans["ok"] else 1


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m engine query",
                                description="answer one data-browser request (JSON) about a "
                                "store and its run's rollouts; see engine/store_rpc.py")
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


__all__ = ["CUT_KEY", "KINDS", "PROTOCOL_VERSION", "RequestError", "RpcError", "StoreReader",
           "answer", "cut_tests", "decode", "decode_answer", "encode", "main", "request"]
