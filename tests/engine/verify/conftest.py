"""Shared by the sandbox test modules: one sandbox and one pool per module, both modes.

``sandbox`` is bwrap where it works, else rlimits-only with an interpreter uid 65534 can
run (a test needing bwrap skips itself); ``pool`` has two workers; ``runner`` is a test's
run function in both modes. A module overrides ``sandbox`` or ``pool`` when it needs
something around them (test_sandbox.py: a secret in the environment; the clean-run tests:
a pool of one worker, so run B follows run A).
"""

from __future__ import annotations

import os

import pytest

from engine.verify.sandbox import Sandbox, SandboxPool, SandboxUnavailable


def world_python() -> str | None:
    """An interpreter uid 65534 can run (rlimits-only as root)."""
    return "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else None


def start_sandbox(cpp_cache) -> Sandbox:
    try:
        return Sandbox(cpp_cache_dir=cpp_cache)
    except SandboxUnavailable:  # no bwrap: run what can run, skip what needs it
        try:
            return Sandbox(cpp_cache_dir=cpp_cache, allow_unsandboxed=True,
                           python=world_python())
        except SandboxUnavailable as exc:
            pytest.skip(f"no sandbox can run here: {exc}")


@pytest.fixture(scope="module")
def cpp_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cpp-cache")


@pytest.fixture(scope="module")
def sandbox(cpp_cache):
    return start_sandbox(cpp_cache)


@pytest.fixture(scope="module")
def pool(sandbox):
    with SandboxPool(2, sandbox=sandbox) as started:
        yield started


@pytest.fixture(params=["one-shot", "pool"])
def runner(request):
    if request.param == "pool":
        return request.getfixturevalue("pool").run
    return request.getfixturevalue("sandbox").run
