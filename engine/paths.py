"""Resolving the data paths a config names: ``resolve_data_path``.

A config path is one of
- ``assets://seeds/seeds.jsonl``: a file in the ``assets/`` folder that ships next to the
  ``engine`` package (in a checkout and in the uploaded engine bundle alike);
- an absolute path;
- a path relative to the current working directory of the stage.

Only resolution happens here: whether the file exists is the caller's question, so its error
can name the config key. Leaves out URLs (the schema refuses them) and ``~`` expansion
(a cluster job's home is not the user's).
"""

from __future__ import annotations

from pathlib import Path

import engine

ASSETS_SCHEME = "assets://"
ASSETS_DIR = Path(engine.__file__).resolve().parent.parent / "assets"


def resolve_data_path(path: str) -> Path:
    """The absolute file path a config's ``path`` string stands for."""
    if path.startswith(ASSETS_SCHEME):
        rel = path[len(ASSETS_SCHEME):].lstrip("/")
        if ".." in Path(rel).parts:
            raise ValueError(f"{path!r} climbs out of the assets folder {ASSETS_DIR}")
        return ASSETS_DIR / rel
    p = Path(path)
    return p if p.is_absolute() else Path.cwd() / p
