"""What hwgrader prints in a terminal: the class table, the self-check table, the lecture answers."""

from __future__ import annotations

import re
import shutil
import textwrap
import unicodedata
from typing import Optional, TextIO

import numpy as np

from grader.assignment.plan import Plan
from grader.grading.results import SubmissionResult, fmt_points
from grader.safetext import visible


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: East Asian wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _table(rows: list[list[str]], out: TextIO) -> None:
    rows = [[visible(cell) for cell in row] for row in rows]  # a name cannot move the cursor
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, row in enumerate(rows):
        out.write("  ".join(cell + " " * (w - _width(cell)) for cell, w in zip(row, widths)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")


def print_class_table(results: list[SubmissionResult], plan: Plan, out: TextIO) -> None:
    ids = [q.id for q in plan.questions]
    rows = [["student", *ids, "total", "notes"]]
    for r in sorted(results, key=lambda r: r.student):
        scores = {q.id: q.score for q in r.questions}
        notes = []
        if r.load_error:
            notes.append("could not be loaded")
        elif r.cell_failures:
            first = r.cell_failures[0]
            notes.append(f"{'cell ' + str(first.cell) if first.cell else 'module'} raised "
                         f"{first.summary.split(':', 1)[0]}")
        failures = r.run_failures
        if failures:
            kinds = sorted({c.verdict.label for c in failures})
            notes.append(f"{len(failures)} case(s): {', '.join(kinds)}")
        rows.append([r.student, *(fmt_points(scores.get(i, 0)) for i in ids), fmt_points(r.score),
                     "; ".join(notes)])
    _table(rows, out)


def print_check_table(result: SubmissionResult, out: TextIO) -> bool:
    """Print the student's public tests; True when every one passed."""
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 140))
    if result.load_error:
        out.write(f"Your submission could not be loaded: {visible(result.load_error)}\n\n")
    for cell in result.cell_failures:
        summary = visible(cell.summary)
        if cell.cell:
            out.write(f"Note: cell {cell.cell} raised {summary} (the other cells still ran)\n")
        elif cell.summary.startswith(("SyntaxError", "IndentationError", "TabError")):
            out.write(f"Note: your module does not compile: {summary}; none of it ran\n")
        else:
            out.write(f"Note: your module raised {summary}; nothing after that point ran\n")
    rows = [["test", "function", "case", "result", "points"]]
    details = []
    for case in result.cases:
        mark = "PASS" if case.status == "passed" else "FAIL"
        rows.append([case.number, case.function, case.case, f"{mark} {case.verdict.label}"
                     if mark == "FAIL" else mark, f"{fmt_points(case.score)}/{fmt_points(case.max_score)}"])
        if case.status == "failed":
            text = f"{case.number} {case.function} ({case.case}): {visible(case.message)}"
            where = _student_line(case.traceback)
            if where:
                text += f"\n    At {visible(where)}"
            if case.diagnosis:
                text += f"\n    Hint: {case.diagnosis.hint}"
            details.append(text)
    _table(rows, out)
    if details:
        out.write("\nWhat to fix:\n")
        for text in details:
            first, *rest = text.split("\n")
            out.write(textwrap.fill(first, width, subsequent_indent="    ") + "\n")
            for line in rest:
                out.write(textwrap.fill(line, width, subsequent_indent="          ") + "\n")

    for incident in result.incidents:
        out.write(f"Note: {visible(incident)}\n")
    for q in result.questions:
        if q.written and not q.written.answer:
            out.write(f"Note: no written answer found for {q.id.upper()} ({q.written.answer}).\n")
    passed = all(c.status == "passed" for c in result.cases) and not result.load_error
    total = len(result.cases)
    good = sum(c.status == "passed" for c in result.cases)
    out.write(f"\n{good}/{total} public tests passed.\n")
    return passed


_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<fn>\S+))?\s*$')


def _student_line(traceback: Optional[str]) -> Optional[str]:
    """'exc.py line 5 (in zero_insert): return y[10]' from the innermost frame of a traceback."""
    if not traceback:
        return None
    lines = traceback.splitlines()
    for i in range(len(lines) - 1, -1, -1):
        frame = _FRAME.match(lines[i])
        if frame:
            code = lines[i + 1].strip() if i + 1 < len(lines) else ""
            fn = f" (in {frame['fn']})" if frame["fn"] else ""
            return f"{frame['file']} line {frame['line']}{fn}: {code}"
    return None


def _fmt(prefix: str, value) -> str:
    """``prefix`` then the value, continuation lines aligned under the first."""
    if isinstance(value, np.ndarray):
        clean = np.where(np.abs(value) < 5e-10, 0.0, value) if value.dtype.kind == "f" else value
        return prefix + np.array2string(clean + 0.0 if clean.dtype.kind == "f" else clean, precision=6,
                                        suppress_small=True, separator=", ", max_line_width=110,
                                        prefix=prefix)
    return prefix + repr(value)


def print_lecture_answers(plan: Plan, out: TextIO) -> None:
    """The references' outputs on the cases the rubric calls ``lecture`` (the lecture's instances)."""
    for q in plan.questions:
        for case in q.cases:
            if case.case != "lecture":
                continue
            out.write(f"{q.id.upper()} {q.title}: {case.function} on the lecture's instance\n")
            for name, value in case.inputs.items():
                out.write(_fmt(f"    {name} = ", value) + "\n")
            for name, value in zip(case.output_names, case.expected):
                out.write(_fmt(f"  → {name} = ", value) + "\n")
            out.write("\n")
