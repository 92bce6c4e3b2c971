"""Fixtures shared by every test folder. Keep each owner's fixtures in its own marked block."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# --- LLM layer: the scripted OpenAI-compatible server (tests/openai_stub_server.py) ---------


@pytest.fixture
def openai_stub() -> Iterator[object]:
    """A fresh ``StubServer`` on a free loopback port; ``.url`` is its /v1 base URL."""
    from openai_stub_server import StubServer

    server = StubServer().start()
    try:
        yield server
    finally:
        server.stop()


# --- end of the LLM layer block ------------------------------------------------------------
