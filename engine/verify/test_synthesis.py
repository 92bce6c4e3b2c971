"""Test synthesis: LLM answers -> test inputs (SYNTHSMITH.md §5). Used by engine/stages/tests.py.

Two sources of inputs, plus the statement's own samples:

- direct: the LLM writes inputs out, each in a fenced block whose info string names its kind
  (```` ```input edge ```` or ```` ```input random ````; a bare ```` ```input ```` is random);
- generators: the LLM writes a Python program per requested kind (random / edge / stress); the
  sandbox runs it ``seeds_per_generator`` times with stdin ``"<SEED> <KIND>\\n"``, and each
  clean run's stdout is one input;
- samples: "Sample Input" / "Sample Output" blocks of the statement become kind "sample" tests
  with their known output (``engine.verify.samples.statement_samples``).

An optional validator program (exit 0 = valid) drops inputs it rejects; samples are never
dropped. Inputs are de-duplicated by their tokens (``input_key``: spacing does not make a new
test), inputs over the size cap are dropped, and the cap on tests per task keeps samples
first, then takes the other groups (direct random, direct edge, each generator kind) in turn,
so a cap keeps every kind that was made.

Prompts are editable files: assets/prompts/tests_direct.md, tests_generator.md and
tests_validator.md, with ``{{statement}}``, ``{{n}}``, ``{{kind}}`` and
``{{kind_description}}`` filled in by plain replacement (statements may hold braces).

Leaves out: generators in C++, checking that a generator is deterministic per seed, and
inputs for interactive problems.
"""

from __future__ import annotations

import ast
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.prompts import render_prompt
from engine.synth.code_extract import split_think
from engine.verify.samples import statement_samples
from engine.verify.sandbox import Limits, Program, SandboxPool

__all__ = [
    "GENERATOR_KINDS", "KIND_DESCRIPTIONS", "Generator", "Selection", "TestInput",
    "direct_messages", "generator_messages", "input_key", "normalize_input", "parse_direct_inputs",
    "parse_program", "render_prompt", "run_generators", "sample_tests", "select_tests",
    "validate_inputs", "validator_messages",
]

GENERATOR_KINDS = ("random", "edge", "stress")
KIND_DESCRIPTIONS = {
    "random": "typical cases of moderate to large size with random values",
    "edge": "boundary cases: the smallest and largest allowed sizes and values, equal "
            "elements, ties and other degenerate shapes",
    "stress": "the largest inputs the constraints allow, to catch solutions that are too slow",
}
_FENCE = re.compile(r"^```[ \t]*([^\n`]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_PYTHON_TAGS = {"python", "python3", "py"}


# ---------------------------------------------------------------------------------------------
# Prompts


def direct_messages(statement: str, n: int) -> list[dict[str, str]]:
    return [{"role": "user", "content": render_prompt("tests_direct", statement=statement, n=n)}]


def generator_messages(statement: str, kind: str) -> list[dict[str, str]]:
    text = render_prompt("tests_generator", statement=statement, kind=kind,
                         kind_description=KIND_DESCRIPTIONS[kind])
    return [{"role": "user", "content": text}]


def validator_messages(statement: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": render_prompt("tests_validator", statement=statement)}]


# ---------------------------------------------------------------------------------------------
# Parsing answers


def normalize_input(text: str) -> str:
    """Blank lines at either end and trailing spaces dropped; one final newline."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[0]:
        lines.pop(0)
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def input_key(text: str) -> str:
    """What two inputs that are the same test have in common: their tokens."""
    return " ".join(text.split())


def parse_direct_inputs(text: str) -> list[tuple[str, str]]:
    """(kind, input) for each ```input [kind]``` block of an answer, in order (blocks in its
    ``<think>`` sections are drafts, not the answer)."""
    found = []
    for info, body in _FENCE.findall(split_think(text)[1]):
        words = info.strip().lower().split()
        if not words or words[0] != "input":
            continue
        kind = words[1] if len(words) > 1 and words[1] in ("random", "edge") else "random"
        data = normalize_input(body)
        if data:
            found.append((kind, data))
    return found


def parse_program(text: str) -> str | None:
    """The last ```python block of an answer that parses (``ast.parse``), or None; blocks in
    its ``<think>`` sections are drafts, not the answer."""
    for info, body in reversed(_FENCE.findall(split_think(text)[1])):
        if info.strip().lower() not in _PYTHON_TAGS:
            continue
        try:
            ast.parse(body)
        except SyntaxError:
            continue
        return body
    return None


# ---------------------------------------------------------------------------------------------
# Inputs and their selection


@dataclass(frozen=True)
class TestInput:
    __test__ = False  # not a pytest class, whatever its name

    input: str
    kind: str  # sample, edge, random, stress
    source: str  # direct, generator (samples: direct, with meta["from"] = "statement")
    expected_output: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return "sample" if self.kind == "sample" else f"{self.source}/{self.kind}"


def sample_tests(statement: str) -> list[TestInput]:
    """The statement's samples as kind "sample" tests with their known output."""
    return [TestInput(normalize_input(i), "sample", "direct", normalize_input(o),
                      {"from": "statement"})
            for i, o in statement_samples(statement) if normalize_input(i)]


@dataclass
class Selection:
    kept: list[TestInput]
    duplicates: int = 0
    too_large: int = 0
    over_cap: int = 0


def select_tests(candidates: Iterable[TestInput], cap: int, max_bytes: int,
                 seen: Iterable[str] = ()) -> Selection:
    """De-duplicate, drop oversized inputs, and keep at most ``cap`` (module docstring)."""
    seen_keys = set(seen)
    groups: dict[str, list[TestInput]] = {}
    out = Selection([])
    for cand in candidates:
        if len(cand.input.encode()) > max_bytes:
            out.too_large += 1
            continue
        key = input_key(cand.input)
        if not key or key in seen_keys:
            out.duplicates += 1
            continue
        seen_keys.add(key)
        groups.setdefault(cand.group, []).append(cand)
    order = groups.pop("sample", [])
    queues = list(groups.values())
    while any(queues):  # one of each group in turn
        for q in queues:
            if q:
                order.append(q.pop(0))
    out.kept, rest = order[:cap], order[cap:]
    out.over_cap = len(rest)
    return out


# ---------------------------------------------------------------------------------------------
# Running generators and the validator in the sandbox


@dataclass(frozen=True)
class Generator:
    source: str
    kind: str
    index: int  # which generator of the task


def run_generators(pool: SandboxPool, generators: Sequence[Generator], seeds: int,
                   limits: Limits) -> tuple[list[TestInput], Counter]:
    """Each generator with seeds 1..seeds; -> the inputs of clean runs, and run statuses."""
    jobs = [(g, seed) for g in generators for seed in range(1, seeds + 1)]
    results = pool.run_many([(Program.python(g.source), f"{seed} {g.kind}\n")
                             for g, seed in jobs], limits)
    statuses: Counter = Counter()
    inputs = []
    for (g, seed), res in zip(jobs, results, strict=True):
        statuses[res.status] += 1
        if res.status != "ok" or res.stdout_truncated:
            continue
        data = normalize_input(res.text)
        if data:
            inputs.append(TestInput(data, g.kind, "generator", None,
                                    {"generator": g.index, "seed": seed}))
    return inputs, statuses


def validate_inputs(pool: SandboxPool, validator: str, candidates: Sequence[TestInput],
                    limits: Limits) -> tuple[list[TestInput], int]:
    """Keep the inputs the validator accepts (exit 0); samples always stay. -> (kept, dropped)."""
    checked = [c for c in candidates if c.kind != "sample"]
    results = pool.run_many([(Program.python(validator), c.input) for c in checked], limits)
    rejected = {id(c) for c, r in zip(checked, results, strict=True) if r.status != "ok"}
    kept = [c for c in candidates if id(c) not in rejected]
    return kept, len(rejected)
