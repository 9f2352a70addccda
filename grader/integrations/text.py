"""Text for CI systems: student-derived strings made safe for XML, Markdown and workflow commands.

Control characters and bidirectional overrides from a submission (an
exception message, a file name) are shown as visible escapes (``\\x1b``,
``\\u202e``) so they can neither break a file format nor reorder or hide text
in a CI page.
"""

from __future__ import annotations

import re

import numpy as np

# C0/C1 controls except tab and newline, DEL, and the Unicode bidi controls and isolates
_INVISIBLE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def visible(text: str) -> str:
    """``text`` with every control or bidi character replaced by its Python escape."""
    def escape(m: re.Match) -> str:
        code = ord(m.group())
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _INVISIBLE.sub(escape, text.replace("\r\n", "\n").replace("\r", "\n"))


def one_line(text: str, limit: int = 300) -> str:
    """The first line of ``text``, visible, at most ``limit`` characters."""
    first = visible(text).strip().split("\n", 1)[0]
    return first if len(first) <= limit else first[: limit - 1] + "…"


def values_text(value, limit: int = 2000) -> str:
    """An array the way a student reads it in a report: 6 significant digits, long ones elided."""
    if isinstance(value, np.ndarray):
        text = np.array2string(value, precision=6, suppress_small=True, separator=", ",
                               max_line_width=100, threshold=200)
    else:
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
