"""Helpers of the curate stage (``engine/stages/curate.py``), one job per module.

- ``word_ngrams``: statement text -> words -> 64-bit word n-gram hashes (shared by both filters)
- ``near_duplicates``: MinHash-LSH filter of near-duplicate statements (datasketch)
- ``decontaminate``: benchmark problems file -> an n-gram index that flags leaked tasks
- ``accepted_tasks``: bulk reads of accepted tasks, solutions and tests from the store
- ``seed_problems``: bulk reads of the seed problems (``curate.include_seed_problems``)
- ``exports``: the SFT and RL row formats and their atomic JSONL / Parquet writers

numpy and datasketch are needed here (the stage checks for them and says how to install them);
nothing in this package is imported by the rest of the engine.
"""
