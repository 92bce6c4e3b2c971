"""Resumable training checkpoints: ``<stage dir>/step-<N>/`` written whole or not at all.

Layout of one checkpoint::

    step-<N>/
      trainer_state.json     step, epoch, position in the epoch's order, ... (written last)
      model.pt optimizer.pt scheduler.pt   plain torch (zero_stage 0; rank 0 writes them)
      deepspeed/             DeepSpeed's own sharded files (zero_stage >= 1; every rank)
      rng-<rank>.pt          each rank's RNG states (torch, CUDA, python, numpy)

Every rank writes into ``step-<N>.tmp/``; after a barrier rank 0 writes ``trainer_state.json``
and renames the folder, so ``latest()`` (the highest ``step-<N>`` holding that file) never sees
half a checkpoint. Older step checkpoints beyond ``keep`` are deleted by rank 0: a full-model
checkpoint with optimizer state is ~16 bytes per parameter.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path
from typing import Any

STATE_FILE = "trainer_state.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step}"


def latest(root: Path) -> Path | None:
    """The newest complete ``step-<N>`` checkpoint under ``root``, or None."""
    found = []
    for p in root.glob("step-*") if root.is_dir() else ():
        m = _STEP_DIR.match(p.name)
        if m and (p / STATE_FILE).is_file():
            found.append((int(m.group(1)), p))
    return max(found)[1] if found else None


def read_state(path: Path) -> dict[str, Any]:
    return json.loads((path / STATE_FILE).read_text(encoding="utf-8"))


def rng_state() -> dict[str, Any]:
    import torch

    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:
        pass
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    import torch

    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])


def begin(root: Path, step: int) -> Path:
    """The temporary folder every rank writes its part of checkpoint ``step`` into."""
    tmp = root / f"step-{step}.tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    return tmp


def commit(root: Path, step: int, state: dict[str, Any], keep: int = 2) -> Path:
    """Rank 0, after every rank wrote its part: mark complete, rename, prune old ones."""
    tmp = root / f"step-{step}.tmp"
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
    final = step_dir(root, step)
    if final.exists():  # a rerun that saved the same step again
        shutil.rmtree(final)
    tmp.rename(final)
    done = sorted((int(m.group(1)), p) for p in root.glob("step-*")
                  if (m := _STEP_DIR.match(p.name)))
    for _, old in done[:-keep] if keep > 0 else ():
        shutil.rmtree(old, ignore_errors=True)
    return final


def clean_partial(root: Path) -> None:
    """Rank 0 at start: remove ``step-<N>.tmp`` folders a killed save left behind."""
    for p in root.glob("step-*.tmp") if root.is_dir() else ():
        shutil.rmtree(p, ignore_errors=True)
