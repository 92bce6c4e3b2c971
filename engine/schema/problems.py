"""What a config that does not validate reports: ``ConfigProblem`` (dotted key, what is wrong,
what to set) and ``ConfigError`` (all of them at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic_core import PydanticCustomError

# --- Problems and errors


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config: where, what, and what to set instead."""

    key: str  # dotted path, e.g. "rl.group_size" or "seeds.sources.0.path"; "<yaml>" etc.
    message: str  # what is wrong, with the bad value
    fix: str  # what to do, e.g. "set it to a whole number between 1 and 4096"

    def __str__(self) -> str:
        return f"{self.key}: {self.message} -> {self.fix}"


class ConfigError(Exception):
    """A config that cannot be used; ``problems`` lists everything wrong with it at once."""

    def __init__(self, problems: Sequence[ConfigProblem], source: str = "<string>") -> None:
        super().__init__(list(problems), source)
        self.problems: list[ConfigProblem] = list(problems)
        self.source: str = source

    def __str__(self) -> str:
        n = len(self.problems)
        lines = [f"{self.source}: {n} problem{'' if n == 1 else 's'}"]
        lines += [f"  {p}" for p in self.problems]
        return "\n".join(lines)


def rule_error(problems: Sequence[tuple[str, str, str]]) -> PydanticCustomError:
    """A validation error carrying our own (relative key, message, fix) triples.

    Raised from validators; ``problems_from_error`` expands it back into ConfigProblems,
    so one section rule can report several problems, each on its own key.
    """
    items = [{"key": k, "message": m, "fix": f} for k, m, f in problems]
    summary = "; ".join(f"{k or 'value'}: {m}" for k, m, _ in problems)
    return PydanticCustomError("config_rule", "{summary}", {"summary": summary, "problems": items})


