"""Where a shardable stage reads and writes: ``shard_stores(ctx, stage)``.

Unsharded, both are the run's store. As shard I of N (``python -m engine run --shard I/N``),
the stage reads the run's store read-only and writes its own file
``data/shards/<stage>.<I>of<N>.sqlite`` (``engine.store.ShardOutbox``), which the runner merges
into the store after the last shard (engine/runner.py). Shared by tests, verify, features,
tasks and solutions.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

from engine.context import StageError
from engine.store import ShardOutbox, StageWriter, Store, shard_file

if TYPE_CHECKING:
    from engine.context import StageContext


@contextlib.contextmanager
def shard_stores(ctx: StageContext, stage: str) -> Iterator[tuple[Store, StageWriter]]:
    """(where to read, where to write) for a shardable stage, closed afterwards: the run's
    store twice when unsharded; with N > 1 shards the run's store read-only and this shard's
    own file ``ShardOutbox`` (``data/shards/<stage>.<I>of<N>.sqlite``), merged by the runner
    after the last shard. Refuses a multi-rank launch without ``--shard``, where every rank
    would redo every task."""
    if ctx.world_size > 1 and ctx.shard_count == 1:
        raise StageError(
            f"{stage} was started as rank {ctx.rank} of {ctx.world_size} without --shard, so "
            f"every rank would redo every task: pass --shard $SLURM_PROCID/$SLURM_NTASKS "
            "(or RANK/WORLD_SIZE), one shard per process")
    if ctx.shard_count == 1:
        store = ctx.store()  # closed by the runner with the context
        yield store, store
        return
    with contextlib.closing(Store(ctx.run.store_path, readonly=True)) as store, \
            contextlib.closing(ShardOutbox(shard_file(ctx.run.data_dir, stage, ctx.shard_index,
                                                      ctx.shard_count))) as out:
        yield store, out
