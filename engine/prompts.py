"""Prompt templates: ``assets/prompts/<name>.md``, editable files with ``{{field}}`` slots.

    from engine.prompts import render_prompt
    text = render_prompt("solutions", statement=task.statement, language="Python 3", fence="python")

Every slot in a template must be given (a missing one raises ``ValueError`` naming it, so an
edited template cannot silently send ``{{statement}}`` to the model); extra fields are an
error too. Values are inserted as they are, so text that itself contains ``{{...}}`` is safe.
Left out: conditionals and loops (a template engine would be one more thing to learn for a
prompt edit; the stages build lists and JSON themselves).
"""

from __future__ import annotations

import re
from typing import Any

from engine.paths import ASSETS_DIR

PROMPTS_DIR = ASSETS_DIR / "prompts"
_SLOT = re.compile(r"\{\{(\w+)\}\}")


def render_prompt(name: str, **fields: Any) -> str:
    """assets/prompts/<name>.md with each ``{{field}}`` replaced by ``str(value)``."""
    path = PROMPTS_DIR / f"{name}.md"
    try:
        template = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ValueError(f"no prompt template {path}: restore it from the repository") from None
    slots = set(_SLOT.findall(template))
    missing, extra = slots - fields.keys(), fields.keys() - slots
    if missing or extra:
        raise ValueError(f"prompt {path.name}: slots {sorted(slots)}; missing {sorted(missing)}, "
                         f"not in the template {sorted(extra)}")
    return _SLOT.sub(lambda m: str(fields[m.group(1)]), template)
