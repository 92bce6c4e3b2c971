"""Shared by the sandbox test modules: ``runner`` is a test's run function in both modes.

Each module defines its own ``sandbox`` and ``pool`` fixtures (they differ in what they set
up around them); ``runner`` picks one of the two per parametrised test.
"""

from __future__ import annotations

import pytest


@pytest.fixture(params=["one-shot", "pool"])
def runner(request):
    if request.param == "pool":
        return request.getfixturevalue("pool").run
    return request.getfixturevalue("sandbox").run
