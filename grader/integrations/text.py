"""Text for CI systems: student-derived strings made safe for XML, Markdown and workflow commands.

Control characters and bidirectional overrides from a submission (an
exception message, a file name) are shown as visible escapes (``\\x1b``,
``\\u202e``) so they can neither break a file format nor reorder or hide text
in a CI page.
"""

from __future__ import annotations

import numpy as np

from grader.safetext import visible as safe_visible


def visible(text: str) -> str:
    """``text`` with every control, format or bidi character shown as its escape
    (``grader.safetext``), tabs and line breaks kept, line ends made ``\\n``."""
    return safe_visible(text.replace("\r\n", "\n").replace("\r", "\n"), keep_lines=True)


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
