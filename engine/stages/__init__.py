"""Pipeline stages: one module each, with ``run(ctx)`` and ``main(argv)``.

``IMPLEMENTED`` maps a stage name to the module that implements it. ``python -m engine run``
refuses a config that enables a stage missing here, with a message that says how to proceed;
a stage is never faked.
"""

from __future__ import annotations

import importlib
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


def load_stage(name: str) -> ModuleType:
    """Import the module of an implemented stage (KeyError for one that is not)."""
    return importlib.import_module(IMPLEMENTED[name])
