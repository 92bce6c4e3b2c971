"""Verification: the code sandbox that runs generated programs, and what builds on it.

``sandbox.py`` is the entry point (``Sandbox``, ``SandboxPool``, ``RunResult``); the worker
that runs inside the sandbox is ``forkserver.py``; ``isolation.py`` builds the bwrap command;
``cgroups.py`` and ``cpp_cache.py`` are its helpers. On top: ``voting.py`` (dual verification
of a run matrix), ``samples.py`` (a statement's sample tests), ``outputs.py`` (big outputs on
disk), ``task_folder.py`` and ``folder.py`` (``verify-folder``), ``test_synthesis.py``.
"""

from engine.verify.sandbox import (
    Limits,
    Program,
    RunResult,
    Sandbox,
    SandboxError,
    SandboxPool,
    SandboxUnavailable,
    check_output,
    normalize_output,
    outputs_match,
)

__all__ = [
    "Limits", "Program", "RunResult", "Sandbox", "SandboxError", "SandboxPool",
    "SandboxUnavailable", "check_output", "normalize_output", "outputs_match",
]
