"""Text from a cluster, made safe to show: control and bidi characters become visible.

Anything a cluster sends back (log lines, file names, ``state.json`` reasons, event payloads,
job ids, error text) may hold terminal escape sequences (``ESC]0;title``, ``ESC[2J``,
colours), C1 controls (``U+009B`` is a one-character CSI), bidi overrides (``U+202E``) or
other invisible format characters that reorder or hide what a person reads. Before such text
reaches a terminal or a widget it goes through one of these::

    from remote.display_text import visible, visible_json
    print(visible(reason))                          # ESC -> \\x1b, U+202E -> \\u202e
    print(visible(log_text, keep_newlines=True))    # line structure (\\n, \\t) kept
    print(visible_json(event_dict))                 # one JSON line; json.loads gives it back

``visible`` works like ``cat -v`` with Python escapes: each unsafe character is written as
``\\xNN`` (below U+0100), ``\\uNNNN`` or ``\\UNNNNNNNN``. Unsafe: C0 controls (but ``\\n`` and
``\\t`` with ``keep_newlines``; ``\\r\\n`` then reads as ``\\n``), DEL, C1 controls
(U+0080-U+009F), line/paragraph separators (U+2028/U+2029), lone surrogates (which would also
fail to print), and format characters (category Cf: bidi embeddings, overrides and isolates
U+202A-U+202E and U+2066-U+2069, the marks U+200E/U+200F/U+061C, zero-width space, BOM, tag
characters, ...) except ZWNJ/ZWJ (U+200C/U+200D), which scripts and emoji need. Backslashes
are left as they are: the result is for reading, not for parsing back.

``visible_json`` is for machine-readable output that is also shown in a terminal (``tail``'s
event lines): the same characters are written as JSON ``\\uXXXX`` escapes, so the line stays
exact JSON that decodes to the very same text. ``json.dumps`` with its default
``ensure_ascii=True`` (``status --json``) is already safe and exact.
"""

from __future__ import annotations

import functools
import json
import re
import unicodedata
from typing import Any

__all__ = ["is_unsafe", "visible", "visible_json"]

# Printable ASCII is always safe; everything else is looked at one character at a time.
_CANDIDATE = re.compile(r"[^\x20-\x7e]")
_KEEP_FORMAT = frozenset("\u200c\u200d")  # ZWNJ, ZWJ: needed by scripts and emoji sequences


@functools.lru_cache(maxsize=4096)
def _unsafe(ch: str) -> bool:
    category = unicodedata.category(ch)
    if category in ("Cc", "Cs", "Zl", "Zp"):
        return True
    return category == "Cf" and ch not in _KEEP_FORMAT


def is_unsafe(ch: str) -> bool:
    """Whether one character would be escaped by ``visible`` (``\\n``/``\\t`` included)."""
    return _unsafe(ch)


def _escape(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def visible(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with control, bidi and other invisible format characters written as escapes.

    ``keep_newlines``: keep ``\\n`` and ``\\t`` (text with a line structure: logs, scripts,
    multi-line messages); ``\\r\\n`` becomes ``\\n`` and a lone ``\\r`` is escaped. Without
    it, the text comes out on one line. Non-``str`` values are shown via ``str()``.
    """
    if not isinstance(text, str):
        text = str(text)
    if keep_newlines:
        text = text.replace("\r\n", "\n")

    def sub(m: re.Match[str]) -> str:
        ch = m.group()
        if keep_newlines and ch in "\n\t":
            return ch
        return _escape(ch) if _unsafe(ch) else ch

    return _CANDIDATE.sub(sub, text)


def _json_escape(m: re.Match[str]) -> str:
    ch = m.group()
    if not _unsafe(ch):
        return ch
    code = ord(ch)
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000  # a UTF-16 surrogate pair, as JSON writes characters beyond the BMP
    return f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}"


def visible_json(value: Any, **dumps_options: Any) -> str:
    """``json.dumps(value, ensure_ascii=False, ...)`` with unsafe characters as ``\\uXXXX``:
    readable (accents, CJK, emoji stay), safe in a terminal, and ``json.loads`` of the result
    equals ``value`` exactly."""
    text = json.dumps(value, ensure_ascii=False, **dumps_options)
    # Outside strings JSON is ASCII (and indent/separators are plain spaces and newlines),
    # so every unsafe character found here sits inside a string, where \\uXXXX means itself.
    if dumps_options.get("indent") is not None:
        return re.sub(r"[^\x20-\x7e\n]", _json_escape, text)
    return _CANDIDATE.sub(_json_escape, text)
