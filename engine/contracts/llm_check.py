"""Contract: testing an LLM endpoint from this computer (engine/llm/endpoint_check.py), and
the report it gives; the same code runs on a cluster as ``python -m engine check-llm``."""

from __future__ import annotations

from engine.llm import LLMError
from engine.llm.endpoint_check import EndpointCheck, check_endpoint

__all__ = ["EndpointCheck", "LLMError", "check_endpoint"]
