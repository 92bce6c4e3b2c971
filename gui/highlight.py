"""Source code -> syntax-highlighted HTML for a QTextBrowser (pygments).

``highlight_html(code, language)`` picks the pygments lexer by language name ("python", "cpp",
...; unknown names fall back to plain text) and formats with inline styles (``noclasses``):
Qt's rich-text engine understands ``<span style="color:...">`` but only a small subset of
CSS classes and selectors, so a stylesheet-based output would lose most colours.

Control and bidi characters are written as visible escapes first (remote.display_text): the
code is generated, maybe read from a cluster, and a "Trojan Source" U+202E must not make the
code read differently from what runs.

Left out: line numbers (Qt renders pygments' table layout poorly) and colour themes other than
pygments' default (readable on Qt's light default palette).
"""

from __future__ import annotations

import html

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.lexers.special import TextLexer
from pygments.util import ClassNotFound

from remote.display_text import visible

MAX_HIGHLIGHT_CHARS = 200_000  # beyond this, plain text: lexing megabytes would freeze the GUI

_ALIASES = {"c++": "cpp", "py": "python", "python3": "python"}


def highlight_html(code: str, language: str = "python") -> str:
    """An HTML fragment (a ``<pre>`` block) with inline-styled pygments spans."""
    code = visible(code, keep_newlines=True)
    if len(code) > MAX_HIGHLIGHT_CHARS:
        return f"<pre>{html.escape(code)}</pre>"
    name = _ALIASES.get(language.lower(), language.lower())
    try:
        lexer = get_lexer_by_name(name, stripnl=False, ensurenl=False)
    except ClassNotFound:
        lexer = TextLexer()
    formatter = HtmlFormatter(noclasses=True, nobackground=True, style="default")
    return highlight(code, lexer, formatter)
