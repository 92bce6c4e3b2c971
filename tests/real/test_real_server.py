"""The real-server check (synth_real_server.py) as a test; skipped without a server URL.

    SYNTHSMITH_REAL_URL=http://127.0.0.1:8765/v1 SYNTHSMITH_REAL_MODEL=smollm2 \\
        SYNTHSMITH_REAL_SLOTS=1 .venv/bin/python -m pytest tests/real -s

Not collected by the normal run (pyproject ``norecursedirs``) and never part of CI: it needs
a model server. It asserts what must hold whatever the model writes: the endpoint passes its
check, every stage ran and completed (no transport failure left items behind), and every
item the LLM stages considered ended accepted or rejected with a reason code.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

URL = os.environ.get("SYNTHSMITH_REAL_URL")


@pytest.mark.skipif(not URL, reason="set SYNTHSMITH_REAL_URL (and SYNTHSMITH_REAL_MODEL) to a "
                    "running OpenAI-compatible server")
def test_the_synthesis_stages_run_against_a_real_server(tmp_path):
    from synth_real_server import parser, print_table, run_check

    argv = ["--url", URL, "--model", os.environ.get("SYNTHSMITH_REAL_MODEL", "default"),
            "--run-dir", str(tmp_path / "run"), "--bootstrap"]
    if os.environ.get("SYNTHSMITH_REAL_SLOTS"):
        argv += ["--parallel-slots", os.environ["SYNTHSMITH_REAL_SLOTS"]]
    rows, info = run_check(parser().parse_args(argv))
    print_table(rows)
    assert info["endpoint"]["ok"], info["endpoint"]["problems"]
    assert [r["status"] for r in rows] == ["completed"] * len(rows), rows
    for r in rows:
        if r["stage"] in ("features", "tasks", "solutions") and r["items"]:
            assert r["accepted"] + sum(r["reasons"].values()) == r["items"], r
