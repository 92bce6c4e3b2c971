"""Contract: the store's read API: the records a page, a task and its lineage come back as
(engine/store/records.py), ``StoreReader`` for a store on this computer and the request /
answer wire format of ``python -m engine query`` for one on a cluster (engine/store_rpc.py)."""

from __future__ import annotations

from engine.store import (
    LineageEdge,
    NodeKind,
    Solution,
    StoreError,
    TaskDetail,
    TaskPage,
    TaskQuery,
    TaskRow,
    Test,
)
from engine.store_rpc import CUT_KEY, RequestError, RpcError, StoreReader, decode_answer, request

__all__ = ["CUT_KEY", "LineageEdge", "NodeKind", "RequestError", "RpcError", "Solution",
           "StoreError", "StoreReader", "TaskDetail", "TaskPage", "TaskQuery", "TaskRow", "Test",
           "decode_answer", "request"]
