"""The one complete code block of a candidate solution (SYNTHSMITH.md §4).

"Keep a candidate only if its answer holds exactly one complete code block that parses
(Python: ``ast.parse``). Record why each rejected one was rejected."

    ex = extract_solution(answer, "python", reasoning=reasoning_content, truncated=cut_off)
    if ex.ok: keep ex.code (and ex.reasoning as the candidate's thinking)
    else:     record reason_code(ex.reject_reason)  # one of REJECT_CODES

What counts:

- ``<think>...</think>`` sections are thinking, not the answer: code blocks inside them are
  drafts. A reply that starts with thinking and has a ``</think>`` but no ``<think>`` (the chat
  template opened it) is read the same way.
- Fences are lines of ``` or ~~~ (three or more); the first word of the info string is the
  block's tag. Blocks tagged as sample data (text, output, input, bash, json, ...) are ignored.
  Blocks tagged in the requested language are the candidates; untagged blocks count as the
  requested language only when no block is tagged with it.
- Python must ``ast.parse`` and hold at least one statement that runs (not only imports,
  docstrings and definitions). C++ gets a light check: brackets balanced outside strings and
  comments, and a ``main(``.

Also here, and used by the sibling modules: ``fenced_blocks`` (the line-based fence scanner) and
``split_think`` (thinking vs answer).

Leaves out: compiling C++, languages other than Python and C++, inline single-line fences
(```` ```print(1)``` ````), and fences nested in list items deeper than their own indent.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

__all__ = [
    "LANGUAGE_TAGS", "NON_CODE_TAGS", "REJECT_CODES", "Extraction", "Fence", "extract_solution",
    "fenced_blocks", "reason_code", "split_think",
]

LANGUAGE_TAGS: dict[str, set[str]] = {
    "python": {"python", "python3", "py"},
    "cpp": {"cpp", "c++", "cc", "cxx", "c"},
}
# Sample I/O and shell transcripts, never the solution.
NON_CODE_TAGS = frozenset({
    "text", "plaintext", "plain", "output", "input", "bash", "sh", "shell", "console", "txt",
    "json", "stdin", "stdout", "terminal",
})
REJECT_CODES = (
    "empty", "no_code_block", "unterminated_code_block", "multiple_code_blocks", "wrong_language",
    "syntax_error", "incomplete_program", "truncated",
)

_OPEN = re.compile(r"^([ \t]*)(`{3,}|~{3,})[ \t]*([^\n]*?)[ \t]*$")
_THINK_OPEN = re.compile(r"<think>", re.IGNORECASE)
_THINK_CLOSE = re.compile(r"</think>", re.IGNORECASE)


# ---------------------------------------------------------------------------------------------
# Fences and thinking (shared with json_repair and hints)


@dataclass(frozen=True)
class Fence:
    """One fenced block; ``start``/``end`` are offsets in the text, fences included."""

    tag: str       # first word of the info string, lower-case; "" when untagged
    info: str      # the whole info string as written
    body: str      # the lines between the fences, the fence's own indent removed
    start: int
    end: int
    closed: bool   # False: the text ended inside the block


def fenced_blocks(text: str) -> list[Fence]:
    """Every fenced block of ``text`` in order; only the last can be unclosed.

    CommonMark's rule for the closing fence: the same character, at least as many of it, and
    nothing else on the line. A backtick fence's info string may not hold a backtick, which is
    what keeps ```` ```x``` ```` prose from opening a block.
    """
    blocks: list[Fence] = []
    lines = text.splitlines(keepends=True)
    offset = 0
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _OPEN.match(line.rstrip("\r\n"))
        if not m or (m.group(2)[0] == "`" and "`" in m.group(3)):
            offset += len(line)
            i += 1
            continue
        indent, fence, info = len(m.group(1).expandtabs()), m.group(2), m.group(3)
        start = offset
        offset += len(line)
        i += 1
        close = re.compile(r"^[ \t]*" + re.escape(fence[0]) + "{" + str(len(fence)) + r",}[ \t]*$")
        body: list[str] = []
        closed = False
        while i < len(lines):
            inner = lines[i]
            offset += len(inner)
            i += 1
            if close.match(inner.rstrip("\r\n")):
                closed = True
                break
            body.append(_dedent_line(inner, indent))
        words = info.split()
        blocks.append(Fence(tag=words[0].lower() if words else "", info=info,
                            body="".join(body), start=start, end=offset, closed=closed))
    return blocks


def _dedent_line(line: str, indent: int) -> str:
    """The line less up to ``indent`` leading spaces (a fence inside a list item)."""
    k = 0
    while k < indent and k < len(line) and line[k] == " ":
        k += 1
    return line[k:]


def split_think(text: str) -> tuple[list[str], str, bool]:
    """(thinking sections, the answer with them removed, whether a ``<think>`` never closed).

    A ``</think>`` with no ``<think>`` before it closes thinking that began with the reply
    (templates that put the opening tag in the prompt).
    """
    thoughts: list[str] = []
    answer: list[str] = []
    pos = 0
    first_close = _THINK_CLOSE.search(text)
    first_open = _THINK_OPEN.search(text)
    if first_close and (first_open is None or first_close.start() < first_open.start()):
        thoughts.append(text[:first_close.start()])
        pos = first_close.end()
    unclosed = False
    while True:
        m = _THINK_OPEN.search(text, pos)
        if m is None:
            answer.append(text[pos:])
            break
        answer.append(text[pos:m.start()])
        end = _THINK_CLOSE.search(text, m.end())
        if end is None:
            thoughts.append(text[m.end():])
            unclosed = True
            break
        thoughts.append(text[m.end():end.start()])
        pos = end.end()
    return [t.strip() for t in thoughts if t.strip()], "".join(answer), unclosed


# ---------------------------------------------------------------------------------------------
# Extraction


@dataclass(frozen=True)
class Extraction:
    code: str | None           # the block's body (no fences); None when rejected
    language: str              # the requested language
    reasoning: str             # server reasoning + <think> text + prose outside the block
    reject_reason: str | None  # None when accepted; else "<code>" or "<code>: <detail>"

    @property
    def ok(self) -> bool:
        return self.reject_reason is None


def reason_code(reject_reason: str) -> str:
    """The code of a reject reason: the part before the first ':'."""
    return reject_reason.split(":", 1)[0].strip()


def extract_solution(text: str, language: str = "python", *, reasoning: str | None = None,
                     truncated: bool = False) -> Extraction:
    """The one complete code block in ``language`` of an answer, or why there is none.

    ``reasoning`` is thinking the server returned apart from the content (reasoning_content);
    ``truncated`` says the generation stopped at its token limit.
    """
    if language not in LANGUAGE_TAGS:
        raise ValueError(f"unknown language {language!r}; expected one of {sorted(LANGUAGE_TAGS)}")
    text = text or ""
    thoughts, answer, unclosed_think = split_think(text)
    head = [reasoning.strip()] if reasoning and reasoning.strip() else []

    def reject(reason: str) -> Extraction:
        return Extraction(None, language, _join([*head, *thoughts, answer]), reason)

    if not text.strip():
        # A blank answer cut off at the limit spent its tokens thinking (server-side reasoning
        # or none at all); that is a limit problem, not an empty answer.
        if truncated:
            return reject("truncated: cut off while thinking" if head else
                          "truncated: empty answer")
        return reject("empty")
    if unclosed_think and truncated:
        return reject("truncated: cut off while thinking")

    wanted_tags = LANGUAGE_TAGS[language]
    tagged: list[Fence] = []
    untagged: list[Fence] = []
    other: list[Fence] = []
    for block in fenced_blocks(answer):
        if block.tag in NON_CODE_TAGS:
            continue
        if not block.closed:
            # Only the last block can be open; a cut-off (or never closed) code block means the
            # program as written is not the whole program.
            return reject("truncated: cut off inside the code block" if truncated
                          else "unterminated_code_block")
        if block.tag in wanted_tags:
            tagged.append(block)
        elif block.tag == "":
            untagged.append(block)
        else:
            other.append(block)
    candidates = tagged or untagged
    if not candidates:
        if other:
            return reject(f"wrong_language: {_language_name(other[0].tag)}")
        if truncated:
            return reject("truncated: cut off before any code block")
        return reject("no_code_block")
    if len(candidates) > 1:
        return reject(f"multiple_code_blocks: {len(candidates)}")

    block = candidates[0]
    problem = _check_python(block.body) if language == "python" else _check_cpp(block.body)
    if problem:
        return reject(problem)
    prose = answer[:block.start] + answer[block.end:]
    return Extraction(block.body, language, _join([*head, *thoughts, prose]), None)


def _join(parts: list[str]) -> str:
    return "\n\n".join(p.strip() for p in parts if p and p.strip())


def _language_name(tag: str) -> str:
    for name, tags in LANGUAGE_TAGS.items():
        if tag in tags:
            return name
    return tag


# ---------------------------------------------------------------------------------------------
# Per-language checks


def _check_python(code: str) -> str | None:
    try:
        tree = ast.parse(code)
    except SyntaxError as e:
        return f"syntax_error: line {e.lineno}: {e.msg}"
    except ValueError as e:  # null bytes in the source
        return f"syntax_error: {e}"
    imports = (ast.Import, ast.ImportFrom)
    definitions = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    body = [s for s in tree.body if not isinstance(s, imports) and not _is_docstring(s)]
    if not body:
        return "incomplete_program: no statements"
    # A solve() that nothing calls prints nothing; say so here rather than as wrong answers.
    if all(isinstance(s, definitions) for s in body):
        return "incomplete_program: only definitions, nothing runs"
    return None


def _is_docstring(stmt: ast.stmt) -> bool:
    return isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) \
        and isinstance(stmt.value.value, str)


_PAIRS = {")": "(", "]": "[", "}": "{"}
_RAW_STRING = re.compile(r'R"([^()\\\s]{0,16})\(')
_MAIN = re.compile(r"\bmain\s*\(")


def _check_cpp(code: str) -> str | None:
    stripped = _cpp_code_only(code)
    if stripped is None:
        return "syntax_error: unterminated string or comment"
    stack: list[str] = []
    for ch in stripped:
        if ch in "([{":
            stack.append(ch)
        elif ch in _PAIRS and (not stack or stack.pop() != _PAIRS[ch]):
            return "syntax_error: unbalanced braces"
    if stack:
        return "syntax_error: unbalanced braces"
    if not _MAIN.search(stripped):
        return "incomplete_program: no main function"
    return None


def _cpp_code_only(code: str) -> str | None:
    """The source with comments, string and char literals blanked; None if one never ends."""
    out: list[str] = []
    i, n = 0, len(code)
    while i < n:
        ch = code[i]
        if code.startswith("//", i):
            j = code.find("\n", i)
            i = n if j < 0 else j
        elif code.startswith("/*", i):
            j = code.find("*/", i + 2)
            if j < 0:
                return None
            i = j + 2
            out.append(" ")
        elif ch == "R" and (m := _RAW_STRING.match(code, i)) and not _in_identifier(code, i):
            j = code.find(")" + m.group(1) + '"', m.end())
            if j < 0:
                return None
            i = j + len(m.group(1)) + 2
            out.append('""')
        elif ch == '"' or (ch == "'" and not _digit_separator(code, i)):
            j = i + 1
            while j < n and code[j] != ch:
                if code[j] == "\\":
                    j += 1
                elif code[j] == "\n":
                    return None
                j += 1
            if j >= n:
                return None
            i = j + 1
            out.append(ch * 2)
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _in_identifier(code: str, i: int) -> bool:
    """Whether position i continues an identifier (``fooR"(`` is not a raw string)."""
    j = i
    while j > 0 and (code[j - 1].isalnum() or code[j - 1] == "_"):
        j -= 1
    return code[j:i] not in ("", "u", "U", "L", "u8")


def _digit_separator(code: str, i: int) -> bool:
    """Whether the ' at i is a C++14 digit separator (1'000'000), not a char literal."""
    j = i
    while j > 0 and (code[j - 1].isalnum() or code[j - 1] == "_"):
        j -= 1
    return j < i and code[j].isdigit()
