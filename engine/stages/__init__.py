"""Pipeline stages: one module each, with ``run(ctx)`` and ``main(argv)``.

``IMPLEMENTED`` maps a stage name to the module that implements it. ``python -m engine run``
refuses a config that enables a stage missing here, with a message that says how to proceed;
a stage is never faked.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from types import ModuleType

IMPLEMENTED: dict[str, str] = {
    "seeds": "engine.stages.seeds",
    "features": "engine.stages.features",
    "evolve": "engine.stages.evolve",
    "tasks": "engine.stages.tasks",
    "solutions": "engine.stages.solutions",
    "tests": "engine.stages.tests",
    "verify": "engine.stages.verify",
    "curate": "engine.stages.curate",
    "sft": "engine.stages.sft",
    "rl": "engine.stages.rl",
    "eval": "engine.stages.eval",
}


def run_stage_alone(stage: str, argv: Sequence[str] | None = None) -> int:
    """``python -m engine.stages.<stage> ARGS`` = ``python -m engine run ARGS --stages <stage>``."""
    from engine.__main__ import main as engine_main

    args = list(sys.argv[1:] if argv is None else argv)
    if "--stages" not in args and not any(a.startswith("--stages=") for a in args):
        args += ["--stages", stage]
    return engine_main(["run", *args])


def load_stage(name: str) -> ModuleType:
    """Import the module of an implemented stage (KeyError for one that is not)."""
    return importlib.import_module(IMPLEMENTED[name])
