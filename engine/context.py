"""What a stage gets when it runs: ``StageContext``.

A stage module does ``def run(ctx: StageContext) -> dict`` and returns a small JSON-able
summary that lands in ``state.json``. Everything a stage touches goes through the context:
the resolved config, the run directory, its event writer, its logger, the dataset store and
the stop flag set on SIGTERM (finish the current unit of work, save, return). A stage that
cannot go on for a reason the user can act on raises ``StageError``.

``shard_index`` / ``shard_count`` come from ``python -m engine run --shard I/N``: a stage that
scales out by shards (``engine.schema.SHARDABLE_STAGES``) does only the part of the work that
falls to shard I of N, e.g. the tasks with ``task_id % N == I``. Unsharded: 0 / 1.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.events import EventWriter
    from engine.rundir import RunDir
    from engine.schema import PipelineConfig
    from engine.store import Store


class StageError(Exception):
    """A stage cannot go on; ``str(error)`` is the reason shown to the user.

    Raise it with a message that names the input at fault and what to do (``seed file
    data/taco.jsonl does not exist (resolved to /abs/data/taco.jsonl): fix seeds.sources.0.path``).
    The runner records the stage as failed with exactly that message, without a traceback;
    any other exception is treated as a bug and its traceback goes to the stage's log."""


@dataclass
class StageContext:
    config: PipelineConfig
    run: RunDir
    stage: str
    events: EventWriter
    log: logging.Logger
    rank: int = 0
    world_size: int = 1
    shard_index: int = 0
    shard_count: int = 1
    stop_event: threading.Event = field(default_factory=threading.Event)
    _store: Store | None = field(default=None, repr=False)
    _store_factory: Callable[[], Store] | None = field(default=None, repr=False)

    def stop_requested(self) -> bool:
        """True once SIGTERM (or the runner) asked the stage to wind down."""
        return self.stop_event.is_set()

    def store(self) -> Store:
        """The run's dataset store, opened on first use and closed by the runner."""
        if self._store is None:
            if self._store_factory is not None:
                self._store = self._store_factory()
            else:
                from engine.store import Store

                self._store = Store(self.run.store_path)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None
