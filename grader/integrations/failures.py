"""What a failed public test says in CI: the details text and where in the student's file it points.

Shared by the JUnit and GitHub writers so both tell the same story: the
message, each wrong output's expected and received values (public cases
only: the engine never keeps values of hidden cases), the hint of a
diagnosed mistake and the student's traceback.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Optional

from grader.grading.results import CaseResult
from grader.integrations.text import values_text, visible

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)', re.MULTILINE)
_LINE_IN_MESSAGE = re.compile(r"\(line (\d+)\)")
MAX_DETAILS = 8000


def failure_details(case: CaseResult) -> str:
    """Multi-line text for a failed case: message, got/expected per wrong output, hint, traceback."""
    lines = [f"{case.number} {case.name}: {case.verdict.label}", case.message]
    for check in case.outputs:
        if check.passed or check.expected is None:
            continue
        lines.append(f"'{check.name}' expected:\n{values_text(check.expected)}")
        if check.got is not None:
            lines.append(f"'{check.name}' got:\n{values_text(check.got)}")
    if case.diagnosis:
        lines.append(f"Likely mistake: {case.diagnosis.title}. Hint: {case.diagnosis.hint}")
    if case.traceback:
        lines.append(case.traceback.rstrip())
    text = visible("\n".join(lines))
    return text if len(text) <= MAX_DETAILS else text[: MAX_DETAILS - 1] + "…"


def function_lines(path: Path) -> dict[str, int]:
    """Line of each top-level ``def`` in a ``.py`` file (parsed, never run); {} if it does not parse."""
    if Path(path).suffix.lower() != ".py":
        return {}
    try:
        tree = ast.parse(Path(path).read_bytes(), filename=str(path))
    except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
        return {}
    return {node.name: node.lineno for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}


def traceback_line(traceback: Optional[str], filename: str) -> Optional[int]:
    """The innermost line of ``filename`` in a student's traceback."""
    if not traceback:
        return None
    lines = [int(m["line"]) for m in _FRAME.finditer(traceback) if m["file"] == filename]
    return lines[-1] if lines else None


def load_error_line(message: Optional[str]) -> Optional[int]:
    """``(line 12)`` in a load error such as a SyntaxError's."""
    m = _LINE_IN_MESSAGE.search(message or "")
    return int(m.group(1)) if m else None
