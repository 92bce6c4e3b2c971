"""Reading the JSON an LLM wrote, with only repairs that invent nothing (SYNTHSMITH.md §1–3).

    got = parse_json_reply(reply_text)             # expect=list for a top-level array
    if got.ok: use got.value; log got.repairs      # e.g. ("think_block", "code_fence")
    else:      count reason_code(got.error)        # one of REASON_CODES

Repairs, each recorded by name in the order applied:

- ``think_block``: ``<think>...</think>`` reasoning dropped (also thinking the chat template
  opened, ending at a ``</think>``);
- ``code_fence``: the body of a ```json / ``` fence; of several, the last one that parses to
  the expected type (models put a draft first and the answer last);
- ``surrounding_text``: prose around the JSON; the first balanced top-level ``{...}`` (or
  ``[...]``) that parses wins, found by a bracket scanner that skips strings and comments.
  Code is not prose: fenced blocks of another language (```python, ```cpp, ```text, ...) and
  inline code spans (`` `{}` ``) are left out of this scan, so ``tree = {}`` in a Python
  block, or ``data[i]``, is never taken for the answer (the prompts ask for a ```json block
  or a bare object);
- ``comments``: ``//`` and ``/* */`` comments outside strings;
- ``trailing_comma``: a ``,`` right before ``}`` or ``]``, outside strings;
- ``control_chars``: raw newlines and tabs inside strings (``json.loads(strict=False)``);
- ``python_literal``: single quotes and True/False/None, read by ``ast.literal_eval`` and
  kept only when made of dict (str keys), list, str, int, float, bool and None.

Never repaired, because it would mean inventing content: a reply cut off before its closing
bracket or inside a string (``truncated``). The other failures: ``empty``, ``no_json`` (no
bracket at all), ``wrong_type`` (valid JSON, but not an object / array) and ``invalid`` (with
json's message and line/column). Errors read ``"<code>: <detail>"``, detail at most 120 chars.

Leaves out: unquoted keys, missing commas, JSON5 extras (hex numbers, ``+1``), and choosing
between several objects by their content.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from typing import Any

from engine.synth.code_extract import fenced_blocks, split_think

__all__ = ["REASON_CODES", "JSONParse", "parse_json_reply", "reason_code"]

REASON_CODES = ("empty", "no_json", "truncated", "wrong_type", "invalid")
_DETAIL = 120
# Fences that may hold the answer; ```python and the like are something else.
_JSON_TAGS = frozenset({"", "json", "jsonc", "json5"})
# When every candidate fails, the most telling reason wins.
_PRIORITY = {"truncated": 0, "wrong_type": 1, "invalid": 2, "no_json": 3}


@dataclass(frozen=True)
class JSONParse:
    value: Any = None               # the parsed dict (or list with expect=list); None on failure
    repairs: tuple[str, ...] = ()   # names of the repairs applied, in order
    error: str | None = None        # None on success, else "<code>: <detail>"

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def repaired(self) -> bool:
        return self.ok and bool(self.repairs)


def reason_code(error: str) -> str:
    """The code of an error string: the part before the first ':'."""
    return error.split(":", 1)[0].strip()


def _error(code: str, detail: str = "") -> str:
    detail = " ".join(detail.split())
    if len(detail) > _DETAIL:
        detail = detail[:_DETAIL - 3] + "..."
    return f"{code}: {detail}" if detail else code


def _type_name(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "list"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


def parse_json_reply(text: str, *, expect: type = dict) -> JSONParse:
    """The JSON value (an object, or an array with ``expect=list``) an LLM reply holds."""
    if expect not in (dict, list):
        raise ValueError(f"expect must be dict or list, not {expect!r}")
    if not text or not text.strip():
        return JSONParse(error="empty")
    repairs: list[str] = []
    _, answer, unclosed = split_think(text)
    if answer != text:  # even an empty <think></think> (Qwen3's no-think mode) was removed
        repairs.append("think_block")
    if not answer.strip():
        if unclosed:
            return JSONParse(repairs=tuple(repairs),
                             error=_error("truncated", "cut off inside <think>"))
        return JSONParse(repairs=tuple(repairs), error="empty")

    errors: list[str] = []
    blocks = fenced_blocks(answer)
    fences = [f for f in blocks if f.tag in _JSON_TAGS]
    for fence in reversed(fences):
        value, steps, err = _parse_candidate(fence.body, expect)
        if err is None:
            return JSONParse(value, tuple([*repairs, "code_fence", *steps]))
        errors.append(err)
    # The fences held nothing usable (or there were none): the JSON may sit in the prose,
    # but not in a block of code (a real model answered `tree = {}` in a ```python block).
    code = [f for f in blocks if f.tag not in _JSON_TAGS]
    prose = _without_code_blocks(answer, code)
    value, steps, err = _parse_candidate(prose, expect)
    if err is None:
        return JSONParse(value, tuple([*repairs, *steps]))
    if code and reason_code(err) == "no_json":  # say where we did not look
        tags = ", ".join(sorted({f.tag for f in code}))
        err = _error("no_json", f"no JSON {_type_name(expect())} outside the code blocks "
                                f"({tags}), which are never the answer")
    errors.append(err)
    return JSONParse(repairs=tuple(repairs), error=_best(errors))


def _best(errors: list[str]) -> str:
    return min(errors, key=lambda e: _PRIORITY.get(reason_code(e), 9))


def _without_code_blocks(text: str, blocks: list) -> str:
    """``text`` with those fenced blocks (fences included) cut out, in order."""
    out, pos = [], 0
    for b in blocks:
        out.append(text[pos:b.start])
        out.append("\n")  # keep the prose on either side apart
        pos = b.end
    out.append(text[pos:])
    return "".join(out)


def _parse_candidate(text: str, expect: type) -> tuple[Any, list[str], str | None]:
    """(value, repairs, None) or (None, [], error) for one candidate text."""
    text = text.strip()
    if not text:
        return None, [], _error("no_json", "empty block")
    value, steps, err = _parse_span(text)
    if err is None:
        if isinstance(value, expect):
            return value, steps, None
        # Valid JSON as a whole, just not the kind asked for: digging inside it for an object
        # would pick a part the model did not mean as the answer.
        return None, [], _wrong_type(value, expect)

    first_error: str | None = None
    wrong: str | None = None
    for start, end, unbalanced in _top_level_spans(text):
        if unbalanced:
            return None, [], _error("truncated", unbalanced)
        span = text[start:end]
        value, steps, err = _parse_span(span)
        if err is None and isinstance(value, expect):
            extra = ["surrounding_text"] if span != text else []
            return value, extra + steps, None
        if err is None:
            wrong = wrong or _wrong_type(value, expect)
        else:
            first_error = first_error or err
    if wrong:
        return None, [], wrong
    if first_error:
        return None, [], first_error
    return None, [], _error("no_json", f"no JSON {_type_name(expect())} in the reply")


def _wrong_type(value: Any, expect: type) -> str:
    return _error("wrong_type", f"got {_type_name(value)}, expected {_type_name(expect())}")


def _parse_span(text: str) -> tuple[Any, list[str], str | None]:
    """One JSON text, with the in-place repairs; the error is json's for the text as written."""
    try:
        return json.loads(text), [], None
    except json.JSONDecodeError as e:
        original = e
    except RecursionError:
        return None, [], _error("invalid", "nested too deeply")
    steps: list[str] = []
    cleaned = _strip_comments(text)
    if cleaned != text:
        steps.append("comments")
    uncomma = _strip_trailing_commas(cleaned)
    if uncomma != cleaned:
        steps.append("trailing_comma")
    if steps:
        try:
            return json.loads(uncomma), steps, None
        except (json.JSONDecodeError, RecursionError):
            pass
    try:
        return json.loads(uncomma, strict=False), [*steps, "control_chars"], None
    except (json.JSONDecodeError, RecursionError):
        pass
    try:
        value = ast.literal_eval(uncomma)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        value = _NOT_PLAIN
    if value is not _NOT_PLAIN and _plain(value):
        return value, [*steps, "python_literal"], None
    if _unterminated(text):
        return None, [], _error("truncated", "unterminated string or bracket")
    return None, [], _error("invalid", str(original))


_NOT_PLAIN = object()


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether a literal_eval result is something JSON could have said."""
    if depth > 200:
        return False
    if value is None or isinstance(value, str | bool | int | float):
        return True
    if isinstance(value, list):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v, depth + 1) for k, v in value.items())
    return False  # tuples, sets, bytes, complex: not JSON


# ---------------------------------------------------------------------------------------------
# String-aware scanning


def _skip_string(text: str, i: int) -> int:
    """Index just past the string that opens at i, or -1 if it never closes."""
    quote = text[i]
    j = i + 1
    n = len(text)
    while j < n:
        ch = text[j]
        if ch == "\\":
            j += 2
            continue
        if ch == quote:
            return j + 1
        j += 1
    return -1


def _skip_comment(text: str, i: int) -> int | None:
    """Index just past a comment starting at i (len(text) if it never ends), or None."""
    if text.startswith("//", i):
        j = text.find("\n", i)
        return len(text) if j < 0 else j
    if text.startswith("/*", i):
        j = text.find("*/", i + 2)
        return len(text) if j < 0 else j + 2
    return None


def _top_level_spans(text: str):
    """(start, end, unbalanced) for each top-level bracketed span, in order.

    Openers are looked for in plain text (prose apostrophes are not strings), skipping inline
    code spans (`` `{}` `` is an example in prose, not the answer); inside a span the scan
    skips strings (either quote, for Python literals) and comments. A span the text ends
    inside comes last, with ``unbalanced`` saying why; a mismatched closer ends a span early
    and leaves it to json to report.
    """
    pairs = {"}": "{", "]": "["}
    i, n = 0, len(text)
    while i < n:
        if text[i] == "`":
            i = _skip_code_span(text, i)
            continue
        if text[i] not in "{[":
            i += 1
            continue
        start = i
        stack: list[str] = []
        j = i
        end = -1
        while j < n:
            ch = text[j]
            if ch in "\"'":
                k = _skip_string(text, j)
                if k < 0:
                    yield start, n, "cut off inside a string"
                    return
                j = k
                continue
            skip = _skip_comment(text, j)
            if skip is not None:
                j = skip
                continue
            if ch in "{[":
                stack.append(ch)
            elif ch in pairs and (stack.pop() != pairs[ch] or not stack):
                end = j + 1
                break
            j += 1
        if end < 0:
            yield start, n, f"{len(stack)} bracket(s) never closed"
            return
        yield start, end, ""
        i = end


def _skip_code_span(text: str, i: int) -> int:
    """Index just past the inline code span opening at i (a run of backticks closed by a run
    of the same length on the same line), or just past the run when it is not closed there."""
    j = i
    while j < len(text) and text[j] == "`":
        j += 1
    run = text[i:j]
    eol = text.find("\n", j)
    eol = len(text) if eol < 0 else eol
    k = j
    while True:
        k = text.find(run, k, eol)
        if k < 0:
            return j
        end = k + len(run)
        if end >= len(text) or text[end] != "`":  # exactly as long: the closer
            return end
        while end < len(text) and text[end] == "`":
            end += 1
        k = end


def _unterminated(text: str) -> bool:
    """Whether a text that starts like JSON ends inside a string or an open bracket."""
    stripped = text.lstrip()
    if not stripped or stripped[0] not in "{[":
        return False
    # Only the span the text opens with: prose after it is not this candidate's business.
    for _, _, unbalanced in _top_level_spans(stripped):
        return bool(unbalanced)
    return False


def _strip_comments(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            k = _skip_string(text, i)
            k = n if k < 0 else k
            out.append(text[i:k])
            i = k
            continue
        skip = _skip_comment(text, i)
        if skip is not None:
            i = skip
            continue
        out.append(ch)
        i += 1
    return "".join(out)


def _strip_trailing_commas(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "\"'":
            k = _skip_string(text, i)
            k = n if k < 0 else k
            out.append(text[i:k])
            i = k
            continue
        if ch == ",":
            j = i + 1
            while j < n and text[j].isspace():
                j += 1
            if j < n and text[j] in "}]":
                i += 1
                continue
        out.append(ch)
        i += 1
    return "".join(out)
