"""The sample tests a task statement shows: (input, output) pairs plus warnings.

    parse_samples(statement) -> SampleParse(pairs=(Sample(input, output, name), ...),
                                            problems=("line 12: ...", ...))
    statement_samples(statement) -> [(input, output), ...]     # pairs only

A statement's samples are the one source of truth that candidate solutions cannot outvote,
so the rule throughout is: take every pair the statement clearly shows, and when a block is
ambiguous, drop it with a problem rather than guess (a wrong known output would fail every
correct solution). Nothing here raises, whatever the text.

Layouts read (any number per statement, mixed freely):

- labels: ``Sample Input 1`` / ``Sample Output 1`` (AtCoder, Kattis, USACO's ``SAMPLE
  INPUT:``, HackerRank's ``Sample Input 0``), ``Example Input 2``, unnumbered ``Sample
  Input``; bare ``Input`` / ``Output`` (``input`` / ``output`` as Codeforces' copy-paste
  gives, ``inputCopy`` too) and ``Input 1`` under an ``Examples`` / ``Samples`` /
  ``Example 2`` / ``Sample Tests`` heading. Labels and headings may be markdown ``#``
  headings, ``**bold**`` or plain lines, with or without a trailing colon, numbered ``1``,
  ``#1`` or ``(1)``;
- blocks: the fenced block (```` ``` ```` or ``~~~``, any info string such as ``text``)
  right under a label, else the lines under it up to a blank line or the next label /
  heading / "Note" / "Explanation" line; ``Input: 3 4`` with the data on the label's line
  inside an example. An unfenced *input* also runs on across blank lines when only data
  lines stand between it and its output label (inputs with blank-line-separated cases);
- pairing: by number when every block of an example group is numbered (so "Input 1, Input
  2, Output 1, Output 2" pairs right), else in order, input then output;
- LeetCode's ``Input: nums = [2,7,11,15], target = 9`` (and class-design ``["LRUCache",
  ...]`` blocks) are function-call examples, not stdin: skipped with a problem.

Format sections are not samples. A bare ``Input`` / ``Output`` label counts only inside an
Examples/Samples section, or right over a fenced block when the statement has no other
labelled samples (Codeforces' fenced layout without its "Examples" heading); and even
inside such a section a bare label followed by prose ("The first line contains n ...") is
a format section: it ends the section. A ``#`` heading no deeper than the Examples heading
(``## Input`` after ``## Examples``) starts a new section too.

Problems name the line and what is wrong: an input with no output, an output with no
input, an unclosed fence, an empty block, more inputs than outputs in a row (which go
together is unknowable), a function-call example, a strong label followed by prose inline.

Leaves out: HTML ``<pre>`` blocks and entities, tables (Kattis' side-by-side "Sample Input
| Sample Output"), labels in other languages (Luogu's 输入样例), unlabelled fenced blocks
under an Examples heading (input or output cannot be told), interactive-problem
transcripts, and unfenced outputs that run past a blank line (an output ends at the
first blank line: what follows is usually the explanation).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Sample", "SampleParse", "parse_samples", "statement_samples"]


@dataclass(frozen=True)
class Sample:
    """One sample test: the text of its input and output blocks, and a name ("Sample 1")."""

    input: str
    output: str
    name: str


@dataclass(frozen=True)
class SampleParse:
    """The statement's sample pairs in order, and human-readable warnings about sample
    blocks that were malformed or ambiguous (and so left out of ``pairs``)."""

    pairs: tuple[Sample, ...] = ()
    problems: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# Line shapes

_NUM = r"(?:\#[ \t]*\d+|\([ \t]*\d+[ \t]*\)|\d+)"
# What may open a heading-like line: a list bullet, a markdown heading's hashes, bold/italic.
_OPEN = (r"^[ \t]*(?:[-+*][ \t]+)?(?P<hashes>\#{1,6}[ \t]+)?"  # "- Input: 3": a list item
         r"(?P<mark>\*\*|__|\*|_)?[ \t]*")
_GROUP_WORDS = r"(?:[ \t]+(?:test[ \t]*case|test|case)s?)?"  # "Sample Test Case 1"
# An input/output label, optionally prefixed by sample/example and numbered before or after
# ("Example 1 Input", "Sample Input #2"), optionally "(file x.in)" (USACO) and "Copy" (the
# copy buttons' text in pasted AtCoder/Codeforces pages). What follows is checked in Python.
_LABEL = re.compile(
    _OPEN + rf"(?:(?P<kind>sample|example)s?{_GROUP_WORDS}[ \t]*(?P<n1>{_NUM})?[ \t]*)?"
    rf"(?P<side>input|output)(?:[ \t]*(?P<n2>{_NUM}))?"
    r"(?:[ \t]*\((?![ \t]*\d)[^()\n]*\))?(?:[ \t]*copy)?(?P<after>.*)$", re.IGNORECASE)
# An Examples/Samples section heading, "Example 2:", "Sample Tests".
_SECTION = re.compile(
    _OPEN + rf"(?P<kind>sample|example)s?{_GROUP_WORDS}(?:[ \t]*(?P<n>{_NUM}))?(?P<after>.*)$",
    re.IGNORECASE)
# A note or explanation (heading or inline "Explanation: ..."): it ends a sample block.
_EXPLANATION = re.compile(
    _OPEN + r"(?:explanations?|notes?|hints?|remarks?|comments?|illustrations?)\b",
    re.IGNORECASE)
_MD_HEADING = re.compile(r"^[ \t]{0,3}(?P<hashes>\#{1,6})[ \t]+(?P<text>.*)$")
# Section names a plain-text statement uses as headings (they end an Examples section).
_PLAIN_SECTION = re.compile(
    r"^[ \t]*(?:constraints?|limits|(?:input|output)[ \t]+(?:format|specification|description)"
    r"|(?:problem[ \t]+)?statement|description|scoring|subtasks?|interaction"
    r"|(?:time|memory)[ \t]+limit.*)[ \t]*[:：]?[ \t]*$", re.IGNORECASE)
_FENCE_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
_FENCE_CLOSE = re.compile(r"^[ \t]*(?P<fence>`{3,}|~{3,})[ \t]*$")
_COPY = re.compile(r"^[ \t]*copy[ \t]*$", re.IGNORECASE)
_LETTER = re.compile(r"[^\W\d_]")
# LeetCode's call arguments ("nums = [2,7], target = 9") and class-design calls
# (["LRUCache","put"] over [[2],[1,1]]): a function's arguments, not a program's stdin.
_CALL_ARGS = re.compile(r"^[ \t]*[A-Za-z_]\w*[ \t]*=[ \t]*\S")
_DESIGN_CALLS = re.compile(r'^[ \t]*\[[ \t]*"[A-Za-z_]\w*"')
_WORD = re.compile(r"[(\"'`]?[A-Za-z][A-Za-z'-]*[.,;:!?)\"'`]*")
# Words of a format description; sample data (even text) rarely has them.
_FORMAT_WORDS = frozenset((
    "contains", "contain", "denoting", "denotes", "integer", "integers", "print", "given",
    "separated", "consists", "describes", "describing", "represents", "satisfying"))


@dataclass(frozen=True)
class _Label:
    side: str  # "input" | "output"
    kind: str | None  # "Sample" / "Example" when the label says so ("strong"), else None
    number: int | None
    level: int | None  # markdown heading level, None for bold/plain lines
    inline: str | None  # the data after "Input:" on the same line


@dataclass(frozen=True)
class _Section:
    kind: str  # "Sample" / "Example"
    number: int | None
    level: int | None


def _number(text: str | None) -> int | None:
    digits = re.sub(r"\D", "", text or "")
    return int(digits) if digits else None


def _tail(after: str, mark: str | None) -> tuple[str, bool] | None:
    """What follows a label or section word: (the rest of the line, whether a colon came
    first), or None when the line is not a heading after all (an unclosed bold mark)."""
    s = after.strip()
    colon = False
    if s[:1] in (":", "：", "."):
        colon, s = s[:1] != ".", s[1:].lstrip()
    if mark:
        if not s.startswith(mark):
            return None
        s = s[len(mark):].lstrip()
        if s[:1] in (":", "："):
            colon, s = True, s[1:].lstrip()
    if s and not s.strip("#").strip():  # a closing "##" of an ATX heading
        s = ""
    return s, colon


def _label(line: str) -> _Label | None:
    found = _LABEL.match(line)
    if found is None:
        return None
    tail = _tail(found["after"], found["mark"])
    if tail is None:
        return None
    rest, colon = tail
    if rest and not colon:  # "Input is given ...", "Input format", "Input 3 4": not a label
        return None
    kind = found["kind"]
    hashes = found["hashes"]
    return _Label(found["side"].lower(), kind.capitalize() if kind else None,
                  _number(found["n1"] or found["n2"]), len(hashes.strip()) if hashes else None,
                  rest or None)


def _section(line: str) -> _Section | None:
    found = _SECTION.match(line)
    if found is None:
        return None
    tail = _tail(found["after"], found["mark"])
    if tail is None or tail[0]:
        return None
    hashes = found["hashes"]
    return _Section(found["kind"].capitalize(), _number(found["n"]),
                    len(hashes.strip()) if hashes else None)


def _heading(line: str) -> tuple[bool, int | None]:
    """(whether the line is some other heading, its markdown level if it has one)."""
    found = _MD_HEADING.match(line)
    if found and _LETTER.search(found["text"]):  # "# . #" is a grid row, not a heading
        return True, len(found["hashes"])
    s = line.strip().rstrip(":：").rstrip()
    for mark in ("**", "__"):
        if (len(s) > 2 * len(mark) and s.startswith(mark) and s.endswith(mark)
                and _LETTER.search(s)):
            return True, None
    return bool(_PLAIN_SECTION.match(line)), None


def _fence_open(line: str) -> re.Match[str] | None:
    found = _FENCE_OPEN.match(line)
    # A backtick fence's info string holds no backticks ("```3 4```" is inline code).
    if found is None or (found["fence"][0] == "`" and "`" in found["info"]):
        return None
    return found


def _fence_end(lines: list[str], start: int, opened: re.Match[str]) -> int | None:
    """The index of the line closing the fence opened at ``start`` (same character, at
    least as long, nothing after it), or None when it is never closed."""
    fence = opened["fence"]
    for j in range(start + 1, len(lines)):
        found = _FENCE_CLOSE.match(lines[j])
        if found and found["fence"][0] == fence[0] and len(found["fence"]) >= len(fence):
            return j
    return None


def _fence_body(lines: list[str], start: int, end: int, opened: re.Match[str]) -> list[str]:
    # A fence indented inside a list item: its lines lose up to that much indentation, as
    # markdown shows them; deeper indentation (an output's leading spaces) stays.
    width = len(opened["indent"])
    body = lines[start + 1:end]
    if not width:
        return body
    out = []
    for line in body:
        k = 0
        while k < width and k < len(line) and line[k] in " \t":
            k += 1
        out.append(line[k:])
    return out


def _is_blank(line: str) -> bool:
    return not line.strip()


def _ends_block(line: str) -> bool:
    """Whether an unfenced block stops before this line."""
    return (_is_blank(line) or _fence_open(line) is not None or _label(line) is not None
            or _section(line) is not None or _EXPLANATION.match(line) is not None
            or _heading(line)[0])


def _looks_like_prose(line: str) -> bool:
    """A sentence of a format description ("The first line contains n."), not data.

    Mostly words, and either a sentence's end or a format word: so "alice bob carol" or
    "hello world" (text data) are not prose, "Print one integer." is."""
    tokens = line.split()
    words = [t for t in tokens if _WORD.fullmatch(t)]
    if len(words) < 3 or len(words) < 0.6 * len(tokens):
        return False
    return (line.rstrip()[-1:] in ".:;!?"
            or any(w.strip("()\"'`.,;:!?").lower() in _FORMAT_WORDS for w in words))


def _text(lines: list[str]) -> str:
    """A block's text exactly, less the blank lines around it."""
    lo, hi = 0, len(lines)
    while lo < hi and _is_blank(lines[lo]):
        lo += 1
    while hi > lo and _is_blank(lines[hi - 1]):
        hi -= 1
    return "\n".join(lines[lo:hi])


def _unwrap_inline(data: str) -> str:
    # "Input: `3 4`": the backticks are markdown, not data.
    found = re.fullmatch(r"(`+)(.*?)\1", data.strip(), re.DOTALL)
    return found[2].strip() if found else data.strip()


def _is_call(text: str) -> bool:
    rows = [line for line in text.split("\n") if line.strip()]
    if not rows:
        return False
    return bool(_CALL_ARGS.match(rows[0]) or (
        _DESIGN_CALLS.match(rows[0]) and len(rows) > 1 and rows[1].lstrip().startswith("[")))


# ---------------------------------------------------------------------------------------------
# Scanning: labelled blocks, in order


@dataclass
class _Block:
    side: str
    text: str | None  # None: unusable, its problem already said
    number: int | None
    kind: str  # "Sample" / "Example": the pair's name
    segment: int  # blocks pair only within one example section
    line: int  # 1-based line of the label
    label: str  # the label as written, for problems
    tentative: bool = False  # a bare label over a fence outside any Examples section


class _Scanner:
    def __init__(self) -> None:
        self.blocks: list[_Block] = []
        self.problems: list[tuple[int, str]] = []
        self.section: _Section | None = None  # the Examples/Samples section we are in
        self.segment = 0

    def problem(self, line: int, message: str) -> None:
        self.problems.append((line, message))

    def enter(self, section: _Section | None) -> None:
        self.section = section
        self.segment += 1

    def scan(self, lines: list[str], base: int, depth: int = 0) -> None:
        """Read ``lines``; ``base`` + index + 1 is a line's number in the statement;
        ``depth``: how many code blocks deep (bounded, so nested fences cannot recurse
        without end)."""
        i = 0
        while i < len(lines):
            line = lines[i]
            opened = _fence_open(line)
            if opened is not None:
                end = _fence_end(lines, i, opened)
                if end is None:
                    self.problem(base + i + 1, f"unclosed {opened['fence']} fence: the rest "
                                 "of the statement is inside it, no samples read there")
                    return
                if self.section is not None and depth < 2:
                    # An example written inside one code block ("Input:\n3\nOutput:\n6").
                    self.scan(_fence_body(lines, i, end, opened), base + i + 1, depth + 1)
                i = end + 1
                continue
            label = _label(line)
            if label is not None:
                i = self.read_label(lines, i, label, base)
                continue
            section = _section(line)
            if section is not None:
                self.enter(section)
            elif self.section is not None:
                if _EXPLANATION.match(line):
                    # A note ends the block it follows, not the section ("Example 1 ...
                    # Explanation ... Input ..."), unless it is a sibling "## Note".
                    md = _MD_HEADING.match(line)
                    is_heading, level = md is not None, len(md["hashes"]) if md else None
                else:
                    is_heading, level = _heading(line)
                if is_heading and (level is None or self.section.level is None
                                   or level <= self.section.level):
                    self.enter(None)
            i += 1

    def read_label(self, lines: list[str], i: int, label: _Label, base: int) -> int:
        """Read the block under the label at ``i``; returns where scanning goes on."""
        strong = label.kind is not None
        if (not strong and self.section is not None and label.level is not None
                and self.section.level is not None and label.level <= self.section.level):
            # "## Input" after "## Examples": a new section of the statement, not a label.
            self.enter(None)
        section = self.section
        number = label.number if label.number is not None else (
            section.number if section else None)
        kind = label.kind or (section.kind if section else "Sample")
        where = base + i + 1
        written = lines[i].strip()[:60]

        def add(text: str | None, tentative: bool = False) -> None:
            if text is not None and not text.strip():
                self.problem(where, f"empty {label.side} block under {written!r}; skipped")
                text = None
            self.blocks.append(_Block(label.side, text, number, kind, self.segment, where,
                                      written, tentative))

        if label.inline is not None:
            if not strong and section is None:
                return i + 1  # "Input: the first line holds n" in a format section
            data = _unwrap_inline(label.inline)
            if _looks_like_prose(data) and not _is_call(data):
                if strong:
                    self.problem(where, f"{written!r} is followed by prose, not data; skipped")
                return i + 1
            body, j = self.unfenced(lines, i + 1, label.side, [data])
            add(_text(body))
            return j

        j = i + 1
        while j < len(lines) and _is_blank(lines[j]):
            j += 1
        if j < len(lines) and _COPY.match(lines[j]):  # a pasted page's "Copy" button
            j += 1
            while j < len(lines) and _is_blank(lines[j]):
                j += 1
        opened = _fence_open(lines[j]) if j < len(lines) else None
        if opened is not None:
            end = _fence_end(lines, j, opened)
            if end is None:
                self.problem(base + j + 1, f"unclosed {opened['fence']} fence in the "
                             f"{label.side} block under {written!r}; skipped")
                add(None)
                return len(lines)
            # Outside an Examples section a bare label counts only right over a fence
            # (Codeforces' layout); even then it may be the format ("## Input" over
            # ```N```), so it stays tentative: see _pair.
            add(_text(_fence_body(lines, j, end, opened)), tentative=not strong and not section)
            return end + 1
        if not strong and section is None:
            return i + 1  # "Input" over prose: the statement's format section
        if j >= len(lines) or _ends_block(lines[j]):
            add("")
            return j
        if not strong and _looks_like_prose(lines[j]):
            # "Input\nThe first line contains ...": the format sections after the examples.
            self.enter(None)
            return j
        body, j = self.unfenced(lines, j, label.side, [])
        add(_text(body))
        return j

    def unfenced(self, lines: list[str], j: int, side: str,
                 body: list[str]) -> tuple[list[str], int]:
        """``body`` plus the lines from ``j`` up to a blank line or a block-ending line;
        an input goes on across blank lines when only data stands between it and its
        output label."""
        while j < len(lines) and not _ends_block(lines[j]):
            body.append(lines[j])
            j += 1
        if side != "input" or j >= len(lines) or not _is_blank(lines[j]):
            return body, j
        k = j
        while k < len(lines) and (_is_blank(lines[k]) or not _ends_block(lines[k])):
            k += 1
        between = lines[j:k]
        following = _label(lines[k]) if k < len(lines) else None
        if (following is not None and following.side == "output"
                and any(not _is_blank(x) for x in between)
                and not any(_looks_like_prose(x) for x in between)):
            return body + between, k
        return body, j


# ---------------------------------------------------------------------------------------------
# Pairing


def _pair(blocks: list[_Block], problems: list[tuple[int, str]]) -> list[Sample]:
    labelled = [b for b in blocks if not b.tentative]
    if labelled:
        # The statement labels its samples: bare "Input"/"Output" headings over fences
        # outside the Examples section are its format sections.
        blocks = labelled
    else:
        # Only bare labels over fences: keep an input only right before an output (an
        # AtCoder-like "## Input" over ```N``` is then left out), and its output.
        kept: list[_Block] = []
        for k, b in enumerate(blocks):
            before_output = k + 1 < len(blocks) and blocks[k + 1].side == "output"
            after_input = k > 0 and bool(kept) and kept[-1] is blocks[k - 1] \
                and blocks[k - 1].side == "input"
            if before_output if b.side == "input" else after_input:
                kept.append(b)
        blocks = kept

    # Function-call examples (LeetCode) leave with the output right after them.
    plain: list[_Block] = []
    skip_next_output = False
    for b in blocks:
        if b.side == "input" and b.text is not None and _is_call(b.text):
            problems.append((b.line, f"{_display(b)} ({b.label!r}): function-call example, "
                                     "not stdin/stdout; skipped"))
            skip_next_output = True
            continue
        if not (skip_next_output and b.side == "output"):
            plain.append(b)
        skip_next_output = False

    pairs: list[tuple[_Block, _Block, int | None]] = []
    segments: dict[int, list[_Block]] = {}
    for b in plain:
        segments.setdefault(b.segment, []).append(b)
    for seg in segments.values():
        ins = [b for b in seg if b.side == "input"]
        outs = [b for b in seg if b.side == "output"]
        in_numbers = [b.number for b in ins]
        out_numbers = [b.number for b in outs]
        if (None not in in_numbers and None not in out_numbers
                and len(set(in_numbers)) == len(ins) and len(set(out_numbers)) == len(outs)):
            # Every block numbered once: pair by number, whatever the order.
            by_number = {b.number: b for b in outs}
            for b in ins:
                if b.number in by_number:
                    pairs.append((b, by_number[b.number], b.number))
                else:
                    _orphan(b, problems)
            for b in outs:
                if b.number not in set(in_numbers):
                    _orphan(b, problems)
            continue
        # In order: each run of inputs goes with the run of outputs after it.
        k = 0
        while k < len(seg):
            run_in: list[_Block] = []
            run_out: list[_Block] = []
            while k < len(seg) and seg[k].side == "input":
                run_in.append(seg[k])
                k += 1
            while k < len(seg) and seg[k].side == "output":
                run_out.append(seg[k])
                k += 1
            if len(run_in) == len(run_out):
                pairs += [(a, b, a.number) for a, b in zip(run_in, run_out, strict=True)]
            elif not run_out or not run_in:
                for b in run_in + run_out:
                    _orphan(b, problems)
            else:
                more = "inputs than outputs" if len(run_in) > len(run_out) else \
                    "outputs than inputs"
                problems.append((run_in[0].line, f"{_count(run_in, 'input')} followed by "
                                 f"{_count(run_out, 'output')} (more {more}) from "
                                 f"{run_in[0].label!r}: which go together is unclear; "
                                 "skipped"))

    samples: list[Sample] = []
    names: set[str] = set()
    for a, b, number in pairs:
        if a.text is None or b.text is None:
            continue  # an empty or unclosed block: already a problem
        name = f"{a.kind} {number if number is not None else len(samples) + 1}"
        # Names identify samples (file names, reports): a repeated number gets a suffix.
        name, again = (name, 1) if name not in names else (f"{name} (2)", 2)
        while name in names:
            again += 1
            name = f"{name.rsplit(' (', 1)[0]} ({again})"
        names.add(name)
        samples.append(Sample(a.text, b.text, name))
    return samples


def _display(block: _Block) -> str:
    return block.kind if block.number is None else f"{block.kind} {block.number}"


def _count(blocks: list[_Block], what: str) -> str:
    return f"{len(blocks)} {what}{'' if len(blocks) == 1 else 's'}"


def _orphan(block: _Block, problems: list[tuple[int, str]]) -> None:
    if block.text is None or block.tentative:
        return  # said already / a format section, not a sample
    other = "output" if block.side == "input" else "input"
    problems.append((block.line, f"{block.side} with no {other} ({block.label!r}); skipped"))


# ---------------------------------------------------------------------------------------------


def parse_samples(statement: str) -> SampleParse:
    """The statement's sample pairs and the problems with its sample blocks (module
    docstring). Never raises on any text."""
    if not isinstance(statement, str) or not statement:
        return SampleParse()
    # Split on line ends only: str.splitlines would also split on form feeds and other
    # characters that can be part of sample data.
    lines = statement.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    scanner = _Scanner()
    scanner.scan(lines, 0)
    problems = list(scanner.problems)
    pairs = _pair(scanner.blocks, problems)
    problems.sort(key=lambda p: p[0])  # stable: same-line problems keep their order
    return SampleParse(tuple(pairs), tuple(f"line {line}: {text}" for line, text in problems))


def statement_samples(statement: str) -> list[tuple[str, str]]:
    """(input, output) of each sample the statement shows, in order (``parse_samples``
    without its problems)."""
    return [(s.input, s.output) for s in parse_samples(statement).pairs]
