"""The engine's contracts: everything of the engine the desktop (gui/, remote/) may import.

    from engine.contracts.config import PipelineConfig, load_config   # the pipeline config
    from engine.contracts.events import EventReader, parse_lines       # the event stream
    from engine.contracts.rundir import RunDir, STORE                  # the run dir's layout
    from engine.contracts.store import StoreReader, TaskQuery          # the store's read API
    from engine.contracts.rollouts import RolloutRecord                # RL rollout records
    from engine.contracts.llm_check import check_endpoint              # an endpoint, tested here

Each module names the public surface of one contract (``__all__``) and re-exports it from
where the engine keeps it, so the engine's own modules stay free to change behind it. The
rule is checked by import-linter in CI (pyproject.toml, tests/test_layering.py): gui/ and
remote/ import from the engine only this package (and ``engine`` itself, for its version);
a new engine module is forbidden to them until it is added to a contract here.

``llm_check`` is the one engine function the desktop runs in its own process: testing an LLM
endpoint from this computer (the cluster runs the same code as ``python -m engine check-llm``).
"""
