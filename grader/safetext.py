"""Text that came from a submission, made safe to show: one module for terminal, CSV and HTML.

A student's file name, printed output, exception message or answer can hold
control characters (an ESC sequence that moves the terminal's cursor or
recolours it, a carriage return that overwrites a line, a newline that adds a
row), bidirectional overrides (U+202E makes ``evil\u202egnp.py`` display as
another name), zero-width and other invisible format characters, and bytes
that are not text at all (a Latin-1 file name read as a surrogate). ``visible``
shows every one of them as a visible escape (``\\x1b``, ``\\u202e``), and
leaves every other character, any script, as it is.

``csv_cell`` also keeps a spreadsheet from reading a cell as a formula
(``=HYPERLINK(...)``, ``@SUM(...)``, ``+cmd``, ``-cmd``): such a cell gets a
leading apostrophe, the convention spreadsheets show as text (OWASP's advice
for CSV injection). HTML pages get ``visible(text, keep_lines=True)`` on every
value a template prints (``report.environment``'s ``finalize``), then
jinja2's escaping.
"""

from __future__ import annotations

import unicodedata

#: Unicode categories that are never shown as they are: controls, format characters (bidi
#: overrides and isolates, zero-width characters), surrogates, line and paragraph separators.
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
#: Leading characters that make a spreadsheet evaluate a cell (after ``visible``, tab and CR are
#: already escapes, but a cell is checked as given too).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _escape(ch: str) -> str:
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that was not text (os.fsdecode's surrogateescape)
        return f"\\x{code - 0xDC00:02x}"
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def hidden(ch: str) -> bool:
    """True for a character that must not reach a terminal, a spreadsheet or a page as it is."""
    return unicodedata.category(ch) in _HIDDEN_CATEGORIES


def visible(text, *, keep_lines: bool = False) -> str:
    """``text`` with every control, format and bidi character shown as an escape.

    ``keep_lines`` keeps newlines and tabs (captured output, tracebacks, answers); a name or
    a table cell gets them escaped too, so it stays on one line."""
    text = str(text)
    if text.isascii() and text.isprintable():
        return text  # most text (numbers, names): no character can be hidden
    if text.isprintable() and not any(hidden(ch) for ch in text if not ch.isascii()):
        return text  # the common case, fast: nothing to escape
    kept = "\n\t" if keep_lines else ""
    return "".join(ch if ch in kept or not hidden(ch) else _escape(ch) for ch in text)


def formula_safe(text) -> str:
    """``text`` as it is, except that a leading formula character gets a ``'`` in front: for a
    CSV a person edits and imports back (nothing they wrote may change)."""
    text = str(text)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(text) -> str:
    """A CSV cell a spreadsheet shows as text: escapes visible, never read as a formula."""
    return formula_safe(visible(text))
