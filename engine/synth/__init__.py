"""Synthesis building blocks (SYNTHSMITH.md §1–4), pure functions with no I/O of their own.

- ``feature_tree`` — the feature tree: normalising an extraction, merging, sampling subtrees
  for evolution and feature configs for tasks.
- ``json_repair`` — reading the JSON an LLM wrote, with only repairs that invent nothing.
- ``hints`` — algorithm names and complexity hints that leak into a statement.
- ``code_extract`` — the one complete, parsing code block of a candidate solution.

The stages that call them are engine/stages/{features,evolve,tasks,solutions}.py.
"""
