"""A scripted, realistic "model" for the OpenAI stub server: a TEST DOUBLE (tests/ only).

Set an instance as ``StubServer.rule``. It answers the engine's synthesis prompts
(assets/prompts/features_extract.md, evolve.md, tasks_select.md, tasks_statement.md,
solutions.md, tests_direct.md, tests_generator.md, tests_validator.md), recognised by the fixed
heading (or opening words) of the last user message, and returns None for anything else, so
the stub falls through to its canned answers.

As a process of its own, the way a real server runs (``spawn_synth``, or by hand)::

    python tests/synth_responder.py --port 8000 --fault code_only=1 --fault-kinds evolve

Every answer is a function of the request (messages, temperature, top_p, seed) and of the
responder's own ``seed``, through sha256: the same request always gets the same answer,
different samples (a different ``seed`` in the body) get different ones.

- features: a JSON features object (10 categories + summary) built from keywords of the
  problem and solution text, bare or in prose + a ```json fence.
- evolve: the given subtree expanded in breadth (``min_new_siblings`` new siblings at each
  level, except next to the fixed top-level categories) and depth (2 children per leaf).
- select: feature roles, about half the leaves selected, an integration strategy.
- statement: one of a bank of simple problems (``BANK``), in the asked style, with 2 samples
  whose outputs are correct.
- solution: an R1-like ``<think>...</think>`` answer with one ```python block (or ```cpp when
  C++ is asked) that solves the bank problem the statement describes; variable names and
  layout vary by sample; about 1 sample in 6 (``wrong_rate``) is subtly wrong.
- direct / generator / validator (the tests stage): ```input random|edge blocks, a seeded
  generator program, a validator, all within the bank problem's bounds.

Faults (probability per answer, drawn from the request hash): ``malformed_json`` (a key's
closing quote missing: not repairable), ``trailing_comma`` (repairable), ``prose_json``
(unfenced JSON between prose: repairable), ``truncated`` (text cut at half, finish_reason
"length"), ``hint_leak`` (the statement names a technique or a complexity), ``no_code``,
``two_blocks``, ``syntax_error`` (solutions). What a small real model did (issue #16):
``code_json`` (a ```python sketch holding ``tree = {}``, ``people = []``, ``data[i]`` before
the unfenced JSON answer), ``code_only`` (a ```python program instead of the JSON: one of
those three lines comes first), ``empty_expansion`` (evolve: ``{}`` or the subtree sent back
unchanged); and ``drop`` (the connection closed without a reply; the client's retries of the
same request are dropped too). ``fault_kinds`` limits faults to some prompt kinds (e.g. only
the tests stage's). Each fault applied adds one to ``counts``.
"""

from __future__ import annotations

import ast
import collections
import hashlib
import json
import math
import random
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from openai_stub_server import Reply, _last_user

HEADINGS = {
    "# Extract competitive-programming features": "features",
    "# Evolve a feature tree": "evolve",
    "# Select compatible features for one problem": "select",
    "# Write a competitive-programming problem statement": "statement",
    "# Solve a competitive-programming problem": "solution",
}
# Prompts without a heading line, by their opening words (the tests stage's).
OPENINGS = {
    "You write test inputs for a competitive-programming problem.": "direct",
    "You write an input generator program": "generator",
    "You write an input validator": "validator",
}
KINDS = (*HEADINGS.values(), *OPENINGS.values())
JSON_FAULTS = ("malformed_json", "trailing_comma", "prose_json", "code_json", "code_only")
CODE_FAULTS = ("no_code", "two_blocks", "syntax_error")
FAULTS = (*JSON_FAULTS, "truncated", "hint_leak", *CODE_FAULTS, "empty_expansion", "drop")
# Lines a real model wrote in Python blocks that a JSON scan over the whole answer misread.
CODE_SKETCHES = (
    "tree = {}\nfor name in names:\n    tree[name] = []\n",
    "people = []\nfor line in data:\n    people.append(line.split())\n",
    "for i in range(len(data)):\n    print(data[i])\n",
)
CATEGORIES = ("programming_language", "problem_domain", "algorithmic_paradigm", "algorithms",
              "mathematics", "problem_solving_strategies", "data_structures",
              "coding_techniques", "complexity_analysis", "optimization_techniques")


# --- small helpers ------------------------------------------------------------------------

def _h(*parts: Any) -> int:
    raw = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big")


def _unit(*parts: Any) -> float:
    return _h(*parts) / 2.0**64


def find_json_objects(text: str) -> list[Any]:
    """Every balanced, parseable JSON object in ``text``, in order of appearance."""
    out: list[Any] = []
    dec = json.JSONDecoder()
    i = 0
    while True:
        i = text.find("{", i)
        if i < 0:
            return out
        try:
            obj, end = dec.raw_decode(text, i)
        except ValueError:
            i += 1
            continue
        out.append(obj)
        i = end


def last_json_block(text: str) -> Any:
    """The object in the last ```json fence of ``text``, else the last balanced object."""
    for m in reversed(list(re.finditer(r"^```json[ \t]*\n(.*?)^```[ \t]*$", text,
                                       re.S | re.M))):
        try:
            return json.loads(m.group(1))
        except ValueError:
            found = find_json_objects(m.group(1))
            if found:
                return found[0]
    found = find_json_objects(text)
    return found[-1] if found else {}


SAMPLE_LABEL_IN = re.compile(r"^(?:#+\s*|\*\*)?(?:sample\s+)?input(?:\s*\d+)?:?(?:\*\*)?:?$",
                             re.I)
SAMPLE_LABEL_OUT = re.compile(r"^(?:#+\s*|\*\*)?(?:sample\s+)?output(?:\s*\d+)?:?(?:\*\*)?:?$",
                              re.I)


def sample_pairs(statement: str) -> list[tuple[str, str]]:
    """(input, output) of each sample: a fenced block under an "Input" / "Sample Input k"
    line, followed by a block under an "Output" / "Sample Output k" line."""
    blocks = []  # (label line, content)
    lines = statement.split("\n")
    i = 0
    prev = ""
    while i < len(lines):
        line = lines[i]
        if line.strip().startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith("```"):
                j += 1
            blocks.append((prev, "\n".join(lines[i + 1:j]) + "\n"))
            i = j + 1
            prev = ""
            continue
        if line.strip():
            prev = line.strip()
        i += 1
    pairs = []
    for (la, a), (lb, b) in zip(blocks, blocks[1:], strict=False):
        if SAMPLE_LABEL_IN.match(la) and SAMPLE_LABEL_OUT.match(lb):
            pairs.append((a, b))
    return pairs


# --- the problem bank ---------------------------------------------------------------------

@dataclass(frozen=True)
class BankProblem:
    key: str
    phrase: str  # appears in every statement of this problem: how solutions recognise it
    titles: tuple[str, ...]
    stories: tuple[str, ...]  # Codeforces openings, {name} is a character
    task: str  # one sentence, contains ``phrase``
    func: str  # LeetCode-like function name
    lo: int
    hi: int
    solve: Callable[[list[int]], int]
    note: Callable[[list[int], int], str]
    make: Callable[[random.Random, int], list[int]]  # (rng, sample index) -> values
    cores: tuple[tuple[str, tuple[str, ...]], ...]  # (python core, imports), correct
    wrong: tuple[str, tuple[str, ...]]  # a subtly wrong core
    cpp: str


def _kadane(a: list[int]) -> int:
    best, cur = a[0], 0
    for x in a:
        cur = max(x, cur + x)
        best = max(best, cur)
    return best


def _best_segment(a: list[int]) -> tuple[int, int]:
    best, pos = None, (0, 0)
    for i in range(len(a)):
        for j in range(i, len(a)):
            s = sum(a[i:j + 1])
            if best is None or s > best:
                best, pos = s, (i, j)
    return pos


def _fmt_frac(f: Fraction) -> str:
    return str(f.numerator) if f.denominator == 1 else f"{f.numerator}/{f.denominator}"


def _mean_note(a: list[int], ans: int) -> str:
    mean = Fraction(sum(a), len(a))
    above = [x for x in a if x > mean]
    listed = ", ".join(map(str, above)) if above else "none of them"
    return f"The average is {_fmt_frac(mean)}; the numbers above it are {listed}, so the answer is {ans}."


def _seg_note(a: list[int], ans: int) -> str:
    i, j = _best_segment(a)
    return (f"The best choice is positions {i + 1} to {j + 1}: "
            f"{' + '.join(map(str, a[i:j + 1]))} = {ans}.".replace("+ -", "- "))


def _rand_list(rng: random.Random, n: tuple[int, int], lo: int, hi: int) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(*n))]


def _make_gcd(rng: random.Random, k: int) -> list[int]:
    g = rng.randint(2, 12) if k == 0 else rng.randint(1, 6)
    return [g * rng.randint(1, 10) for _ in range(rng.randint(3, 6))]


def _make_mean(rng: random.Random, k: int) -> list[int]:
    if k == 0:
        return _rand_list(rng, (3, 7), 1, 10)
    m, d = rng.randint(3, 8), rng.randint(1, 3)
    a = [m - d, m, m + d, m]
    rng.shuffle(a)
    return a


def _make_seg(rng: random.Random, k: int) -> list[int]:
    if k == 1 and rng.random() < 0.5:
        return _rand_list(rng, (2, 5), -9, -1)
    return _rand_list(rng, (4, 8), -10, 10)


CPP_HEAD = ("#include <bits/stdc++.h>\nusing namespace std;\n\nint main() {\n"
            "    ios::sync_with_stdio(false);\n    cin.tie(nullptr);\n    int n;\n"
            "    if (!(cin >> n)) return 0;\n    vector<long long> {A}(n);\n"
            "    for (auto &x : {A}) cin >> x;\n")
CPP_TAIL = "    cout << ans << \"\\n\";\n    return 0;\n}\n"

BANK: tuple[BankProblem, ...] = (
    BankProblem(
        key="sum", phrase="the total of all the numbers",
        titles=("Receipt Total", "Counting the Harvest", "Ledger Balance"),
        stories=("{name} spent the whole week collecting receipts, some of them refunds "
                 "written as negative amounts, and now wants to know where the week ended up.",
                 "After the harvest festival {name} has a list of baskets, each with a "
                 "recorded weight change, and must report one number to the village."),
        task="Given n integers, find the total of all the numbers.",
        func="totalOf", lo=-10**9, hi=10**9, solve=sum,
        note=lambda a, ans: f"{' + '.join(map(str, a))} = {ans}.".replace("+ -", "- "),
        make=lambda rng, k: _rand_list(rng, (1, 4) if k == 1 else (3, 7), -20, 50),
        cores=(("{R} = sum({A})", ()),
               ("{R} = 0\nfor {X} in {A}:\n    {R} += {X}", ())),
        wrong=("{R} = sum({A}[:-1]) + {A}[-1] if {N} > 1 else 0", ()),
        cpp="    long long ans = 0;\n    for (long long x : {A}) ans += x;\n"),
    BankProblem(
        key="above_mean", phrase="strictly greater than the average",
        titles=("Above Average", "The Proud Half", "Better Than Usual"),
        stories=("{name} coaches a team and, after the last training session, wants to "
                 "praise everyone whose score beat the team's typical result.",
                 "The shop owned by {name} recorded its daily sales; the good days are the "
                 "ones that beat the average day."),
        task=("Given n integers, count how many of them are strictly greater than the "
              "average (the sum of all n numbers divided by n, computed exactly)."),
        func="countAboveAverage", lo=-10**9, hi=10**9,
        solve=lambda a: sum(1 for x in a if x * len(a) > sum(a)),
        note=_mean_note,
        make=_make_mean,
        cores=(("{T} = sum({A})\n{R} = sum(1 for {X} in {A} if {X} * {N} > {T})", ()),
               ("{T} = sum({A})\n{R} = 0\nfor {X} in {A}:\n    if {X} * {N} > {T}:\n"
                "        {R} += 1", ())),
        wrong=("{T} = sum({A})\n{R} = sum(1 for {X} in {A} if {X} * {N} >= {T})", ()),
        cpp=("    long long total = 0, ans = 0;\n    for (long long x : {A}) total += x;\n"
             "    for (long long x : {A}) if (x * n > total) ans++;\n")),
    BankProblem(
        key="max_segment", phrase="non-empty contiguous segment",
        titles=("Best Stretch", "The Lucky Streak", "Mountain Road"),
        stories=("{name} drives along a road split into stretches; each stretch either "
                 "gains or loses some height, and the postcard must show the steepest climb.",
                 "{name} looks back at a season of daily profits and losses and wants to "
                 "brag about the best run of consecutive days."),
        task=("Given n integers, choose a non-empty contiguous segment of them with the "
              "largest possible sum, and print that sum."),
        func="bestSegmentSum", lo=-10**9, hi=10**9, solve=_kadane, note=_seg_note,
        make=_make_seg,
        cores=(("{R} = {A}[0]\n{T} = 0\nfor {X} in {A}:\n    {T} = max({X}, {T} + {X})\n"
                "    {R} = max({R}, {T})", ()),
               ("{R} = {A}[0]\nrun = 0\nlow = 0\nfor {X} in {A}:\n    run += {X}\n"
                "    {R} = max({R}, run - low)\n    low = min(low, run)", ())),
        wrong=("{R} = 0\n{T} = 0\nfor {X} in {A}:\n    {T} = max(0, {T} + {X})\n"
               "    {R} = max({R}, {T})", ()),
        cpp=("    long long ans = {A}[0], cur = 0;\n    for (long long x : {A}) {\n"
             "        cur = max(x, cur + x);\n        ans = max(ans, cur);\n    }\n")),
    BankProblem(
        key="distinct", phrase="how many different values",
        titles=("Sticker Album", "Different Colours", "Unique Stamps"),
        stories=("{name} pours a bag of stickers on the table; many of them repeat, and "
                 "the album only needs one of each kind.",
                 "{name} paints fence boards one by one and wonders, at the end, how many "
                 "paint pots were really opened."),
        task="Given n integers, find how many different values appear among them.",
        func="countDifferent", lo=1, hi=10**9, solve=lambda a: len(set(a)),
        note=lambda a, ans: (f"The different values are {', '.join(map(str, sorted(set(a))))}"
                             f", that is {ans} of them."),
        make=lambda rng, k: _rand_list(rng, (4, 9), 1, 6),
        cores=(("{R} = len(set({A}))", ()),
               ("{A}.sort()\n{R} = 1\nfor {X} in range(1, {N}):\n"
                "    if {A}[{X}] != {A}[{X} - 1]:\n        {R} += 1", ())),
        wrong=("{T} = Counter({A})\n{R} = sum(1 for c in {T}.values() if c == 1)",
               ("from collections import Counter",)),
        cpp=("    sort({A}.begin(), {A}.end());\n"
             "    long long ans = unique({A}.begin(), {A}.end()) - {A}.begin();\n")),
    BankProblem(
        key="gcd", phrase="largest positive integer that divides every",
        titles=("Equal Shares", "Tiles for Everyone", "The Common Measure"),
        stories=("{name} wants to cut several ribbons into pieces of one common length, "
                 "with nothing left over, and the pieces as long as possible.",
                 "{name} must pack several piles of apples into identical crates, every pile "
                 "filling a whole number of crates, using the biggest crates possible."),
        task=("Given n positive integers, find the largest positive integer that divides "
              "every one of them."),
        func="commonMeasure", lo=1, hi=10**9, solve=lambda a: math.gcd(*a),
        note=lambda a, ans: (f"Each of {', '.join(map(str, a))} is a multiple of {ans}, "
                             "and no larger integer divides all of them."),
        make=_make_gcd,
        cores=(("{R} = 0\nfor {X} in {A}:\n    {R} = math.gcd({R}, {X})", ("import math",)),
               ("{R} = functools.reduce(math.gcd, {A})", ("import functools", "import math"))),
        wrong=("{R} = {A}[0]\nfor {X} in {A}[1:{N} - 1]:\n    {R} = math.gcd({R}, {X})",
               ("import math",)),
        cpp="    long long ans = 0;\n    for (long long x : {A}) ans = gcd(ans, x);\n"),
    BankProblem(
        key="spread", phrase="difference between the largest and the smallest",
        titles=("Temperature Swing", "Height Gap", "Spread of Scores"),
        stories=("{name} keeps a notebook of the readings of an old thermometer and wants "
                 "to know how wild the weather has been.",
                 "{name} lines up the players for the team photo and is curious how far "
                 "apart the tallest and the shortest are."),
        task=("Given n integers, find the difference between the largest and the smallest "
              "of them."),
        func="spreadOf", lo=-10**9, hi=10**9, solve=lambda a: max(a) - min(a),
        note=lambda a, ans: (f"The largest is {max(a)} and the smallest is {min(a)}, so the "
                             f"answer is {ans}."),
        make=lambda rng, k: _rand_list(rng, (3, 7), -30, 30),
        cores=(("{R} = max({A}) - min({A})", ()),
               ("{T} = sorted({A})\n{R} = {T}[-1] - {T}[0]", ())),
        wrong=("{R} = max({A}) - min({A}[1:] or {A})", ()),
        cpp=("    long long ans = *max_element({A}.begin(), {A}.end())"
             " - *min_element({A}.begin(), {A}.end());\n")),
)
BANK_BY_KEY = {p.key: p for p in BANK}
NAMES = ("Alice", "Bogdan", "Chiara", "Daichi", "Elif", "Farid", "Greta", "Hana", "Ivo")


def recognise(statement: str) -> BankProblem | None:
    """The bank problem a statement describes (by its task phrase), if any."""
    low = " ".join(statement.lower().split())
    for p in BANK:
        if p.phrase in low:
            return p
    return None


def _bounds(p: BankProblem) -> tuple[str, str]:
    def num(v: int) -> str:
        if abs(v) == 10**9:
            return ("-" if v < 0 else "") + "10^9"
        return str(v)
    return num(p.lo), num(p.hi)


def _leet_task(task: str) -> str:
    return task.replace("Given n positive integers", "Given an array nums of positive "
                        "integers").replace("Given n integers", "Given an integer array nums")


def render_statement(p: BankProblem, style: str, rng: random.Random) -> tuple[str, str]:
    """(title, markdown statement) of bank problem ``p`` in ``style``."""
    title = rng.choice(p.titles)
    lo, hi = _bounds(p)
    samples = []
    for k in range(2):
        a = p.make(rng, k)
        samples.append((a, p.solve(a)))
    inp = [f"{len(a)}\n{' '.join(map(str, a))}\n" for a, _ in samples]
    if style == "leetcode":
        parts = [f"# {title}", "",
                 f"{_leet_task(p.task)} "
                 f"Implement `{p.func}(nums: List[int]) -> int`, which returns the answer.",
                 ""]
        for k, ((a, ans), text) in enumerate(zip(samples, inp, strict=True), 1):
            parts += [f"**Example {k}:**", "", f"Input: nums = [{','.join(map(str, a))}]",
                      f"Output: {ans}", f"Explanation: {p.note(a, ans)}", "",
                      "Input", "```", text.rstrip("\n"), "```", "Output", "```", str(ans),
                      "```", ""]
        parts += ["**Constraints:**", "", "- `1 <= nums.length <= 2 * 10^5`",
                  f"- `{lo} <= nums[i] <= {hi}`", "",
                  "**Input format**", "",
                  "The first line holds n, the length of nums. The second line holds the n "
                  "elements of nums, separated by single spaces.", "",
                  "**Output format**", "", "Print the value the function returns.", ""]
    elif style == "atcoder":
        parts = [f"# {title}", "", "## Problem Statement", "",
                 p.task.replace("n integers", "N integers A_1, A_2, ..., A_N").replace(
                     "n positive", "N positive"), "",
                 "## Constraints", "", "- 1 \\le N \\le 2 \\times 10^5",
                 f"- {lo} \\le A_i \\le {hi}", "- All values in the input are integers.", "",
                 "## Input", "", "Input is given from Standard Input in the following format:",
                 "", "```", "N", "A_1 A_2 ... A_N", "```", "",
                 "## Output", "", "Print the answer as an integer.", ""]
        for k, ((a, ans), text) in enumerate(zip(samples, inp, strict=True), 1):
            parts += [f"Sample Input {k}", "", "```", text.rstrip("\n"), "```", "",
                      f"Sample Output {k}", "", "```", str(ans), "```", "", p.note(a, ans), ""]
    else:
        story = rng.choice(p.stories).format(name=rng.choice(NAMES))
        parts = [f"# {title}", "", story, "", p.task, "",
                 "## Input", "",
                 "The first line contains one integer n (1 <= n <= 2 * 10^5), the number of "
                 f"values. The second line contains n integers a_1, a_2, ..., a_n "
                 f"({lo} <= a_i <= {hi}).", "",
                 "## Output", "", "Print one integer: the answer.", "", "## Examples", ""]
        for k, ((a, ans), text) in enumerate(zip(samples, inp, strict=True), 1):
            parts += [f"### Example {k}", "", "Input", "```", text.rstrip("\n"), "```",
                      "Output", "```", str(ans), "```", "", "Note", "", p.note(a, ans), ""]
    return title, "\n".join(parts).rstrip("\n") + "\n"


def _join_imports(*groups: tuple[str, ...]) -> str:
    seen = sorted({line for g in groups for line in g},
                  key=lambda s: (s.startswith("from"), s))
    return "\n".join(seen)


def python_program(p: BankProblem, rng: random.Random, *, wrong: bool = False) -> str:
    """A Python 3 program for ``p``; names and layout are drawn from ``rng``."""
    core, imports = p.wrong if wrong else rng.choice(p.cores)
    names = {"A": rng.choice(("a", "nums", "values", "arr", "xs")),
             "N": rng.choice(("n", "size", "length", "cnt")),
             "R": rng.choice(("ans", "result", "res", "answer", "best")),
             "T": rng.choice(("total", "cur", "acc", "tmp")),
             "X": rng.choice(("x", "v", "item", "i")),
             "D": rng.choice(("data", "tokens", "parts"))}
    body = core
    for k, v in names.items():
        body = body.replace("{" + k + "}", v)

    def ind(text: str, n: int) -> str:
        return "\n".join(" " * n + line if line else line for line in text.split("\n"))

    head = _join_imports(("import sys",), imports)
    a, n, r, d = names["A"], names["N"], names["R"], names["D"]
    layout = rng.randrange(3)
    if layout == 0:
        return (f"{head}\n\n\ndef main():\n    {d} = sys.stdin.read().split()\n"
                f"    {n} = int({d}[0])\n    {a} = [int(w) for w in {d}[1:{n} + 1]]\n"
                f"{ind(body, 4)}\n    print({r})\n\n\nmain()\n")
    if layout == 1:
        return (f"{head}\n\ninput = sys.stdin.readline\n\n{n} = int(input())\n"
                f"{a} = list(map(int, input().split()))\n{body}\nprint({r})\n")
    return (f"{head}\n\n\ndef solve({a}):\n    {n} = len({a})\n{ind(body, 4)}\n"
            f"    return {r}\n\n\nif __name__ == \"__main__\":\n"
            f"    {d} = sys.stdin.buffer.read().split()\n"
            f"    print(solve(list(map(int, {d}[1:]))))\n")


def cpp_program(p: BankProblem, rng: random.Random) -> str:
    a = rng.choice(("a", "v", "nums", "arr"))
    return (CPP_HEAD + p.cpp + CPP_TAIL).replace("{A}", a)


# --- features -----------------------------------------------------------------------------

# (pattern on problem + solution text, [(path, feature), ...]); a path is a tuple of keys.
FEATURE_RULES: tuple[tuple[str, tuple[tuple[tuple[str, ...], str], ...]], ...] = (
    (r"\bgraph|\bedges?\b|\bvertex|\bvertices\b", (
        (("problem_domain",), "graphs"),
        (("algorithms", "graph", "traversal"), "breadth-first search"),
        (("data_structures", "graph representation"), "adjacency list"))),
    (r"shortest|distance", (
        (("algorithms", "graph", "shortest paths"), "dijkstra"),
        (("data_structures", "priority queues"), "binary heap"))),
    (r"\btrees?\b|\broot", (
        (("algorithms", "graph", "tree algorithms"), "depth-first search"),
        (("data_structures", "trees"), "rooted tree"))),
    (r"\bsum\b|prefix|total|\bscore", (
        (("algorithms", "math", "summation"), "running sum"),
        (("data_structures", "linear", "arrays"), "prefix sum array"),
        (("problem_solving_strategies",), "accumulate while scanning"))),
    (r"prime|\bmod\b|modulo|divisor|divides|\bgcd\b|multiple", (
        (("mathematics", "number theory", "divisibility"), "greatest common divisor"),
        (("mathematics", "number theory", "modular arithmetic"), "remainders"),
        (("algorithms", "math", "number theory"), "euclidean algorithm"))),
    (r"\bsort|order|alphabetical|taller|lineup|\brank", (
        (("algorithms", "sorting", "comparison sorting"), "custom key sort"),
        (("coding_techniques",), "tuple keys for sorting"),
        (("complexity_analysis", "time"), "n log n sorting"))),
    (r"string|character|letter|\bword", (
        (("problem_domain",), "strings"),
        (("algorithms", "string", "scanning"), "character counting"))),
    (r"\bgrid|matrix|\bcells?\b", (
        (("problem_domain",), "grids"),
        (("algorithms", "graph", "traversal"), "flood fill"))),
    (r"subarray|contiguous|segment|consecutive|streak", (
        (("algorithmic_paradigm",), "dynamic programming"),
        (("algorithms", "dp", "linear dp"), "maximum subarray"),
        (("optimization_techniques",), "constant extra memory"))),
    (r"how many|\bcount|number of ways", (
        (("mathematics", "combinatorics", "counting"), "direct counting"),)),
    (r"probabilit|expected", (
        (("mathematics", "probability"), "expected value"),)),
    (r"maxim|minim|largest|smallest|best", (
        (("algorithmic_paradigm",), "greedy"),
        (("problem_solving_strategies",), "track the running extremum"))),
    (r"quer(y|ies)|\brange\b", (
        (("data_structures", "range query structures"), "fenwick tree"),
        (("optimization_techniques",), "precomputation"))),
    (r"distinct|different|unique|repeat", (
        (("data_structures", "hashing"), "hash set"),
        (("problem_solving_strategies",), "deduplicate first"))),
    (r"\bgame\b|player|\bturns?\b", (
        (("mathematics", "game theory"), "winning and losing positions"),)),
    (r"\bxor\b|\bbits?\b|binary", (
        (("coding_techniques", "bit manipulation"), "bit masks"),)),
    (r"alternat|\bodd\b|\beven\b", (
        (("coding_techniques",), "parity checks"),
        (("mathematics", "arithmetic"), "alternating sums"))),
    (r"average|mean", (
        (("mathematics", "arithmetic"), "exact rational comparison"),
        (("coding_techniques",), "integer-only arithmetic"))),
)


def _add(tree: dict, path: tuple[str, ...], feature: str) -> None:
    """Add ``feature`` at ``path``; a list that must hold a sub-group moves under "general"."""
    node = tree
    for key in path[:-1]:
        child = node.get(key)
        if isinstance(child, list):
            child = {"general": child} if child else {}
            node[key] = child
        elif not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    last = path[-1]
    cur = node.get(last)
    if isinstance(cur, dict):
        if cur:
            cur.setdefault("general", [])
            cur = cur["general"]
        else:
            cur = node[last] = []
    elif not isinstance(cur, list):
        cur = node[last] = []
    if feature not in cur:
        cur.append(feature)


def extract_features(problem: str, solution: str, rng: random.Random) -> dict:
    text = f"{problem}\n{solution}".lower()
    nested = ("algorithms", "mathematics", "data_structures", "complexity_analysis")
    tree: dict[str, Any] = {k: ({} if k in nested else []) for k in CATEGORIES}
    cpp = "#include" in solution or "std::" in solution
    tree["programming_language"] = ["c++"] if cpp else ["python"]
    hits = 0
    for pattern, feats in FEATURE_RULES:
        if re.search(pattern, text):
            hits += 1
            for path, feat in feats:
                if rng.random() < 0.85 or hits == 1:
                    _add(tree, path, feat)
    if not tree["problem_domain"]:
        _add(tree, ("problem_domain",), "arrays")
    if not tree["algorithmic_paradigm"]:
        _add(tree, ("algorithmic_paradigm",), rng.choice(("simulation", "brute force")))
    _add(tree, ("problem_solving_strategies",), "read the statement into a formula")
    if "stdin" in solution or "cin" in solution:
        _add(tree, ("coding_techniques",), "fast input reading")
    if not tree["complexity_analysis"]:
        _add(tree, ("complexity_analysis", "time"), "linear time")
    _add(tree, ("complexity_analysis", "memory"), rng.choice(("linear memory", "o(n) memory")))
    if re.search(r"10\^9|10\*\*9|1e9|1000000000", text):
        _add(tree, ("coding_techniques", "overflow handling"), "64-bit integers")
    first = next((line.strip("# ").strip() for line in problem.splitlines() if line.strip()),
                 "the problem")
    main = next((k for k in ("algorithms", "mathematics", "data_structures") if tree[k]),
                "problem_solving_strategies")
    tree["summary"] = (f"{first.lower()}: compute the asked value in one pass, using "
                       f"{_first_leaf(tree[main]) or 'direct computation'}")
    return tree


def _first_leaf(node: Any) -> str | None:
    if isinstance(node, list):
        return str(node[0]) if node else None
    if isinstance(node, dict):
        for k, v in node.items():
            leaf = _first_leaf(v)
            if leaf:
                return leaf
            if not v:
                return k
    return None


# --- evolution and selection --------------------------------------------------------------

VOCABULARY = (
    "topological sort", "strongly connected components", "minimum spanning tree",
    "bipartite matching", "maximum flow", "lowest common ancestor", "euler tour",
    "bridges and articulation points", "floyd warshall", "bellman ford", "0-1 bfs",
    "knapsack dp", "interval dp", "bitmask dp", "digit dp", "dp on trees", "tree rerooting",
    "convex hull trick", "divide and conquer dp", "longest increasing subsequence",
    "edit distance", "kmp prefix function", "z function", "rolling hash", "suffix array",
    "trie", "aho corasick", "manacher", "palindromic substrings", "sieve of eratosthenes",
    "modular inverse", "fast exponentiation", "chinese remainder theorem",
    "euler totient", "binomial coefficients", "inclusion exclusion", "catalan numbers",
    "stars and bars", "matrix exponentiation", "gaussian elimination", "linearity of expectation",
    "sprague grundy", "nim", "meet in the middle", "ternary search", "binary search on answer",
    "two pointers", "sliding window", "monotonic stack", "monotonic deque", "sweep line",
    "coordinate compression", "difference array", "sparse table", "segment tree",
    "lazy propagation", "fenwick tree", "disjoint set union", "treap", "sqrt decomposition",
    "mo's algorithm", "heavy light decomposition", "centroid decomposition",
    "counting sort", "radix sort", "merge sort inversions", "custom comparators",
    "cross product", "polygon area", "closest pair of points", "line intersection",
    "greedy exchange argument", "constructive algorithms", "invariants", "pigeonhole principle",
    "parity arguments", "simulation", "backtracking", "branch and bound",
    "randomized algorithms", "hashing collisions", "bit manipulation", "gray code",
    "submask enumeration", "prefix xor", "frequency counting", "offline queries",
    "small to large merging", "amortized analysis", "memoization", "iterative deepening",
)
MODIFIERS = ("{} with updates", "weighted {}", "{} on trees", "online {}", "{} in 2d",
             "bounded {}", "{} with modulo", "counting {}", "{} on a cycle", "reverse {}")


class _Namer:
    def __init__(self, tree: Any, rng: random.Random) -> None:
        self.used: set[str] = set()
        self._collect(tree)
        self.pool = [v for v in VOCABULARY if v not in self.used]
        rng.shuffle(self.pool)
        self.rng = rng

    def _collect(self, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                self.used.add(str(k).lower())
                self._collect(v)
        elif isinstance(node, list):
            for v in node:
                self._collect(v)
        else:
            self.used.add(str(node).lower())

    def _take(self, name: str) -> str:
        self.used.add(name)
        return name

    def sibling(self, parent: str) -> str:
        while self.pool:
            name = self.pool.pop()
            if name not in self.used:
                return self._take(name)
        k = 1
        while f"{parent} variant {k}" in self.used:
            k += 1
        return self._take(f"{parent} variant {k}")

    def child(self, leaf: str) -> str:
        mods = list(MODIFIERS)
        self.rng.shuffle(mods)
        for m in mods:
            name = m.format(leaf)
            if name not in self.used:
                return self._take(name)
        return self.sibling(leaf)


def evolve_tree(tree: Any, m: int, rng: random.Random) -> Any:
    namer = _Namer(tree, rng)

    def leafy(name: str) -> list[str]:
        return [namer.child(name), namer.child(name)]

    def from_list(items: list, parent: str) -> dict:
        out: dict[str, Any] = {}
        for item in items:
            out[str(item)] = leafy(str(item))
        for _ in range(m):
            name = namer.sibling(parent)
            out[name] = leafy(name)
        return out

    def from_dict(node: dict, parent: str, top: bool) -> dict:
        out: dict[str, Any] = {}
        for k, v in node.items():
            if isinstance(v, dict) and v:
                out[k] = from_dict(v, k, False)
            elif isinstance(v, list) and v:
                out[k] = from_list(v, k)
            else:
                out[k] = leafy(k)
        if not (top and all(k in CATEGORIES for k in node)):
            for _ in range(m):
                name = namer.sibling(parent)
                out[name] = leafy(name)
        return out

    if isinstance(tree, list):
        return from_list(tree, "feature")
    if isinstance(tree, dict):
        return from_dict(tree, "feature", True)
    return {}


ROLE_HINTS = (
    (r"graph|path|bfs|dfs|search|flood", "explores states or vertices reachable from a start"),
    (r"tree|ancestor|decomposition", "answers questions about rooted hierarchies"),
    (r"sum|prefix|difference|accum", "turns range totals into O(1) differences"),
    (r"sort|order|compar", "puts items in an order that makes a greedy scan valid"),
    (r"gcd|divis|prime|modul|number theory|sieve|totient", "handles divisibility and remainders"),
    (r"dp|dynamic|knapsack|subsequence|memo", "combines answers of smaller subproblems"),
    (r"string|hash|palindrom|trie|prefix function", "compares or counts pieces of strings"),
    (r"heap|priority|queue|stack|deque", "keeps the next best candidate at hand"),
    (r"greedy|exchange", "commits to the locally best choice with a proof it stays optimal"),
    (r"count|combinat|binomial|inclusion", "counts configurations without listing them"),
    (r"bit|mask|xor", "encodes small sets or parities in machine words"),
)


def _role(leaf: str, parent: str) -> str:
    low = f"{leaf} {parent}".lower()
    for pattern, role in ROLE_HINTS:
        if re.search(pattern, low):
            return f"{role} (as in {parent} tasks)"
    return f"a standard tool in {parent} problems"


def _roles(node: Any, parent: str) -> Any:
    if isinstance(node, list):
        return {str(x): _role(str(x), parent) for x in node}
    if isinstance(node, dict):
        return {k: (_roles(v, k) if v and isinstance(v, dict | list) else _role(k, parent))
                for k, v in node.items()}
    return _role(str(node), parent)


def _select(node: Any, rng: random.Random) -> Any:
    """About half the leaves of ``node``, at least one per kept branch; leaves as lists."""
    if isinstance(node, list):
        items = [str(x) for x in node]
        k = max(1, (len(items) + 1) // 2)
        keep = set(rng.sample(items, k)) if items else set()
        return [x for x in items if x in keep]
    if isinstance(node, dict):
        keys = list(node)
        if not keys:
            return []
        if all(not node[k] or not isinstance(node[k], dict | list) for k in keys):
            return _select(keys, rng)
        k = max(1, (len(keys) + 1) // 2)
        keep = set(rng.sample(keys, k))
        out: dict[str, Any] = {}
        for key in keys:
            if key in keep:
                v = node[key]
                out[key] = _select(v, rng) if v and isinstance(v, dict | list) else [key]
        return out
    return [str(node)]


def _leaves(node: Any) -> list[str]:
    if isinstance(node, list):
        return [str(x) for x in node]
    if isinstance(node, dict):
        out: list[str] = []
        for k, v in node.items():
            out += _leaves(v) if v and isinstance(v, dict | list) else [k]
        return out
    return [str(node)]


# --- faults -------------------------------------------------------------------------------

def _trailing_commas(text: str) -> str:
    return re.sub(r'(["\d\]}el])(\s*\n\s*[}\]])', r"\1,\2", text, count=3)


def _drop_mid_quote(text: str) -> str:
    spots = [m.start() for m in re.finditer(r'":', text)]
    if not spots:
        return text[: len(text) // 2] + text[len(text) // 2 + 1:]
    mid = min(spots, key=lambda i: abs(i - len(text) // 2))
    return text[:mid] + text[mid + 1:]


def _break_syntax(code: str) -> str:
    lines = code.split("\n")
    for i, line in enumerate(lines):
        if line.rstrip().endswith(":"):
            lines[i] = line.rstrip()[:-1]
            return "\n".join(lines)
    return code.replace("print(", "print((", 1)


HINTS = ("Hint: use a segment tree to answer this fast enough.",
         "An O(n log n) solution is expected.",
         "This is a classic dynamic programming exercise.",
         "Use binary search over the answer.")


# --- the responder ------------------------------------------------------------------------

class SynthResponder:
    """``StubServer.rule`` that answers the synthesis prompts; see the module docstring."""

    def __init__(self, *, faults: Mapping[str, float] | None = None, seed: int = 0,
                 wrong_rate: float = 1 / 6, fault_kinds: Iterable[str] | None = None) -> None:
        unknown = set(faults or {}) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults: {sorted(unknown)}; choose from {FAULTS}")
        kinds = set(fault_kinds) if fault_kinds is not None else set(KINDS)
        if kinds - set(KINDS):
            raise ValueError(f"unknown prompt kinds: {sorted(kinds - set(KINDS))}; choose "
                             f"from {KINDS}")
        self.faults = dict(faults or {})
        self.fault_kinds = kinds
        self.seed = seed
        self.wrong_rate = wrong_rate
        self.counts: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def __call__(self, body: dict, attempt: int) -> Reply | None:
        text = _last_user(body)
        kind = HEADINGS.get(text.split("\n", 1)[0].strip()) or next(
            (k for opening, k in OPENINGS.items() if text.startswith(opening)), None)
        if kind is None:
            return None
        key = hashlib.sha256(json.dumps(
            [body.get("messages"), body.get("temperature"), body.get("top_p"),
             body.get("seed"), self.seed], sort_keys=True, default=str).encode()).hexdigest()
        rng = random.Random(key)
        fired = [f for f in FAULTS if self.faults.get(f, 0.0) > 0 and kind in self.fault_kinds
                 and _unit(key, "fault", f) < self.faults[f]]
        if "drop" in fired:
            with self._lock:
                self.counts[kind] += 1
                self.counts["drop"] += 1
            return Reply(drop=True)
        applied: list[str] = []
        answer = getattr(self, "_" + kind)(text, rng, key, fired, applied)
        finish = "stop"
        if "truncated" in fired:
            answer = answer[: len(answer) // 2]
            finish = "length"
            applied.append("truncated")
        with self._lock:
            self.counts[kind] += 1
            self.counts.update(applied)
        return Reply(text=answer, finish_reason=finish)

    # --- JSON answers

    def _json_answer(self, obj: Any, rng: random.Random, fired: list[str],
                     applied: list[str], intro: str) -> str:
        raw = json.dumps(obj, indent=2, ensure_ascii=False)
        if "trailing_comma" in fired:
            raw = _trailing_commas(raw)
            applied.append("trailing_comma")
        if "malformed_json" in fired:
            raw = _drop_mid_quote(raw)
            applied.append("malformed_json")
        if "code_only" in fired:
            applied.append("code_only")
            return (f"{intro} In code:\n\n```python\n"
                    f"{CODE_SKETCHES[rng.randrange(len(CODE_SKETCHES))]}```\n")
        if "code_json" in fired:
            applied.append("code_json")
            return (f"{intro} First a sketch of how I organised it:\n\n```python\n"
                    f"{''.join(CODE_SKETCHES)}```\n\nThe answer:\n\n{raw}\n")
        if "prose_json" in fired:
            applied.append("prose_json")
            return (f"{intro} I went through it carefully; the object is below.\n\n{raw}\n\n"
                    "That is everything I found; each name is kept short as asked.")
        if rng.random() < 0.5:
            return f"{intro}\n\n```json\n{raw}\n```\n"
        return raw + "\n"

    def _features(self, text: str, rng: random.Random, key: str, fired: list[str],
                  applied: list[str]) -> str:
        p = text.find("\nProblem:\n")
        s = text.rfind("\nSolution:\n")
        problem = text[p + 10:s] if 0 <= p < s else text
        solution = text[s + 11:] if s >= 0 else ""
        obj = extract_features(problem.strip(), solution.strip(), rng)
        return self._json_answer(obj, rng, fired, applied,
                                 "Here are the features of the problem and its solution.")

    def _evolve(self, text: str, rng: random.Random, key: str, fired: list[str],
                applied: list[str]) -> str:
        m = re.search(r"at least\s+(\d+)\s+new sibling", text, re.I)
        count = int(m.group(1)) if m else 2
        given = last_json_block(text)
        if "empty_expansion" in fired:  # {} or the subtree sent back as it came
            applied.append("empty_expansion")
            obj = given if rng.random() < 0.5 else {}
            return f"Here is the expanded subtree.\n\n```json\n{json.dumps(obj)}\n```\n"
        obj = evolve_tree(given, count, rng)
        return self._json_answer(obj, rng, fired, applied, "Here is the expanded subtree.")

    def _select(self, text: str, rng: random.Random, key: str, fired: list[str],
                applied: list[str]) -> str:
        tree = last_json_block(text)
        selected = _select(tree, rng)
        if not isinstance(selected, dict):
            selected = {"features": selected}
        chosen = _leaves(selected)
        strategy = (f"A single array task in which {', '.join(chosen[:-1]) or chosen[0]}"
                    + (f" and {chosen[-1]}" if len(chosen) > 1 else "")
                    + " work together: the input is read once, the first idea reduces the "
                    "question to a simpler quantity and the others compute it within the "
                    "limits, so each chosen feature has a real job in the solution.")
        obj = {"feature_roles": _roles(tree, "competitive programming"),
               "selected_features": selected, "integration_strategy": strategy}
        return self._json_answer(obj, rng, fired, applied,
                                 "I annotated every feature and picked a compatible subset.")

    def _statement(self, text: str, rng: random.Random, key: str, fired: list[str],
                   applied: list[str]) -> str:
        m = re.search(r"^Style \(([^)]*)\):", text, re.M) or re.search(
            r"in the (\S+) style", text)
        style = (m.group(1) if m else "codeforces").strip().lower()
        style = next((s for s in ("leetcode", "atcoder") if s in style), "codeforces")
        problem = BANK[_h(key, "problem") % len(BANK)]
        title, statement = render_statement(problem, style, rng)
        if "hint_leak" in fired:
            hint = HINTS[_h(key, "hint") % len(HINTS)]
            paras = statement.split("\n\n")
            paras.insert(min(3, len(paras)), hint)
            statement = "\n\n".join(paras)
            applied.append("hint_leak")
        return self._json_answer({"title": title, "statement": statement}, rng, fired,
                                 applied, "Here is the problem.")

    # --- solutions

    def _solution(self, text: str, rng: random.Random, key: str, fired: list[str],
                  applied: list[str]) -> str:
        m = re.search(r"^Problem:\n(.*)\Z", text, re.S | re.M)
        statement = m.group(1) if m else text
        lang = re.search(r"Solve the problem below in ([^\n]+?)\.\n", text)
        fence = re.search(r"EXACTLY ONE fenced ```(\w+)", text)
        cpp = bool((fence and fence.group(1) in ("cpp", "c++"))
                   or (lang and "c++" in lang.group(1).lower()))
        problem = recognise(statement) or BANK[0]
        think = (f"<think>\nThe statement asks: {problem.task[0].lower()}{problem.task[1:]} "
                 "Let me restate it and check the constraints: n is up to 2 * 10^5 and the "
                 "values fit in 64-bit integers, so one pass over the numbers is enough. "
                 "Edge cases: n = 1, all values equal, negative values where they are "
                 "allowed. Checking against the first sample by hand gives the expected "
                 "output, so the plan holds.\n</think>\n\n")
        explain = ("Read n and the numbers, compute the value in a single pass, and print it. "
                   "This takes linear time and constant extra memory beyond the input.\n\n")
        if "no_code" in fired:
            applied.append("no_code")
            return think + explain + "The same steps in any language give the answer.\n"
        if cpp:
            return think + explain + f"```cpp\n{cpp_program(problem, rng)}```\n"
        wrong = _unit(key, "wrong") < self.wrong_rate
        if wrong:
            with self._lock:
                self.counts["wrong_solution"] += 1
        code = python_program(problem, rng, wrong=wrong)
        if "syntax_error" in fired and "two_blocks" not in fired:
            code = _break_syntax(code)
            try:
                ast.parse(code)
            except SyntaxError:
                applied.append("syntax_error")
        answer = think + explain + f"```python\n{code}```\n"
        if "two_blocks" in fired:
            applied.append("two_blocks")
            core = problem.cores[0][0].replace("{A}", "a").replace("{N}", "n").replace(
                "{R}", "ans").replace("{T}", "t").replace("{X}", "x")
            answer = (think + "The key step is:\n\n```python\n" + core + "\n```\n\n"
                      + "The full program:\n\n" + f"```python\n{code}```\n")
        return answer

    # --- the tests stage's prompts

    @staticmethod
    def _tests_problem(text: str) -> BankProblem:
        at = text.find("Problem statement:")
        return recognise(text[at:] if at >= 0 else text) or BANK[0]

    def _direct(self, text: str, rng: random.Random, key: str, fired: list[str],
                applied: list[str]) -> str:
        p = self._tests_problem(text)
        m = re.search(r"Write (\d+) different inputs", text)
        lo, hi = max(p.lo, -1000), min(p.hi, 1000)
        blocks = []
        for k in range(int(m.group(1)) if m else 4):
            if k % 2 == 0:
                kind, values = "random", [rng.randint(lo, hi) for _ in range(rng.randint(3, 9))]
            else:
                kind, values = "edge", [rng.choice((p.lo, p.hi))] * rng.randint(1, 2)
            blocks.append(f"```input {kind}\n{len(values)}\n{' '.join(map(str, values))}\n```")
        return "Here are the inputs.\n\n" + "\n\n".join(blocks) + "\n"

    def _generator(self, text: str, rng: random.Random, key: str, fired: list[str],
                   applied: list[str]) -> str:
        p = self._tests_problem(text)
        program = (
            "import random\nimport sys\n\nseed, kind = sys.stdin.readline().split()\n"
            f"random.seed(int(seed))\nlo, hi = {p.lo}, {p.hi}\n"
            "n = random.randint(1000, 2000) if kind == \"stress\" else random.randint(1, 10)\n"
            "if kind == \"edge\":\n    values = [random.choice((lo, hi))] * n\n"
            "else:\n    values = [random.randint(lo, hi) for _ in range(n)]\n"
            "print(n)\nprint(*values)\n")
        return f"A generator for this kind:\n\n```python\n{program}```\n"

    def _validator(self, text: str, rng: random.Random, key: str, fired: list[str],
                   applied: list[str]) -> str:
        p = self._tests_problem(text)
        program = (
            "import sys\n\ntokens = sys.stdin.read().split()\ntry:\n"
            "    n = int(tokens[0])\n    values = [int(t) for t in tokens[1:]]\n"
            "except (IndexError, ValueError):\n    sys.exit(1)\n"
            f"ok = 1 <= n <= 200000 and len(values) == n and all({p.lo} <= v <= {p.hi} "
            "for v in values)\nsys.exit(0 if ok else 1)\n")
        return f"```python\n{program}```\n"


# --- as a process of its own ----------------------------------------------------------------

def spawn_synth(*args: str, port: int = 0):
    """``python synth_responder.py --port PORT ARGS`` (a ``StubServer`` with this responder
    as its rule) started as its own process; -> ``openai_stub_server.StubProcess``."""
    import subprocess
    import sys

    from openai_stub_server import StubProcess

    proc = subprocess.Popen([sys.executable, __file__, "--port", str(port), *args],
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "serving http://127.0.0.1:PORT/v1 (Ctrl-C stops)"
    if not line.startswith("serving "):
        proc.kill()
        proc.wait(timeout=10)
        raise RuntimeError(f"the synth responder server did not start (it said {line!r})")
    return StubProcess(proc, line.split()[1])


def main(argv: list[str] | None = None) -> int:
    import argparse

    from openai_stub_server import StubServer, serve_until_stopped

    ap = argparse.ArgumentParser(description="The stub server answering synthesis prompts "
                                 "with SynthResponder (test double).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    ap.add_argument("--seed", type=int, default=1, help="the responder's own seed")
    ap.add_argument("--fault", action="append", default=[], metavar="NAME=P",
                    help=f"a fault and its probability per answer; NAME in {', '.join(FAULTS)}")
    ap.add_argument("--fault-kinds", help=f"comma-separated prompt kinds the faults apply to "
                    f"(default all: {', '.join(KINDS)})")
    ap.add_argument("--cut-at-max-tokens", action="store_true",
                    help="cut an answer longer than the request's budget (in words) to it, "
                    "finish_reason length, as a real server does")
    args = ap.parse_args(argv)
    faults = {}
    for item in args.fault:
        name, _, p = item.partition("=")
        try:
            faults[name] = float(p or 1.0)
        except ValueError:
            ap.error(f"--fault {item!r}: write NAME=P with P a probability, e.g. drop=0.5")
    try:
        responder = SynthResponder(faults=faults, seed=args.seed, fault_kinds=(
            args.fault_kinds.split(",") if args.fault_kinds else None))
    except ValueError as e:
        ap.error(str(e))
    server = StubServer(args.host, args.port, cut_at_max_tokens=args.cut_at_max_tokens)
    server.rule = responder
    server.start()
    return serve_until_stopped(server)


if __name__ == "__main__":
    raise SystemExit(main())
