"""Machine-readable outputs: Gradescope's ``results.json`` per student and the class ``grades.csv``.

Formats are fixed by ``shared/spec/interfaces.md``: every test's ``number``
starts with its question id and a dot; written parts are ``manual`` tests
scored 0 until a person grades them (shown as pending, never as failed);
``grades.csv`` has one row per student, ``student,<question ids...>,total,pending``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable

from grader.grading.results import CaseResult, SubmissionResult, WrittenResult, fmt_points
from grader.outputs.atomic import write_atomic
from grader.safetext import csv_cell

#: Gradescope shows hidden cases only once the due date has passed; they reveal no inputs anyway.
_VISIBILITY = {"public": "visible", "hidden": "after_due_date"}


def _case_test(case: CaseResult) -> dict:
    lines = [case.message]
    if case.diagnosis:
        lines.append(f"Likely mistake: {case.diagnosis.title}. {case.diagnosis.hint}")
    if case.traceback:
        lines.append(case.traceback)
    tags = [case.question, case.part, case.visibility, case.verdict]
    if case.diagnosis:
        tags.append(case.diagnosis.mistake)
    return {"name": f"{case.question.upper()} {case.name}", "number": case.number,
            "score": case.score, "max_score": case.max_score, "status": case.status,
            "output": "\n".join(lines), "tags": tags, "visibility": _VISIBILITY[case.visibility]}


def _written_test(w: WrittenResult) -> dict:
    tags = [w.question, "manual", "written"]
    if w.graded:
        lines = [f"Graded by a person: {fmt_points(w.score)} / {fmt_points(w.max_score)}."]
        lines += [f"{'+' if i.points >= 0 else '-'}{fmt_points(abs(i.points))}  {i.label}" for i in w.items]
        if w.adjustment:
            lines.append(f"{'+' if w.adjustment > 0 else '-'}{fmt_points(abs(w.adjustment))}  adjustment")
        if w.comment:
            lines += ["", f"Comment: {w.comment}"]
        status = "passed" if w.score >= w.max_score else "failed"
        tags.append("graded")
    else:
        # Not a failure: nobody has graded it yet (shown as passed with 0 points and this output).
        status = "passed"
        tags.append("pending")
        if w.answer:
            lines = [f"pending: waiting for a grader (0 / {fmt_points(w.max_score)} until then).",
                     "", "Your answer:", w.answer]
        else:
            lines = [f"pending: waiting for a grader. No answer found: define {w.question.upper()}'s answer as a "
                     f"module-level string or a '**Answer {w.question.upper()}**' markdown cell."]
    return {"name": w.title, "number": w.number, "score": w.score, "max_score": w.max_score,
            "status": status, "output": "\n".join(lines), "tags": tags, "visibility": "visible"}


def summary_text(result: SubmissionResult) -> str:
    """The top-level ``output``: what a student should read first."""
    pending = f" ({fmt_points(result.pending)} points of written answers pending: waiting for a grader)" \
        if result.pending else ""
    lines = [f"{result.student}: {fmt_points(result.score)} / {fmt_points(result.max_score)} points{pending}."]
    if result.load_error:
        lines.append(f"Your submission could not be loaded: {result.load_error}")
    for cell in result.cell_failures:
        where = f"cell {cell.cell}" if cell.cell else "the module"
        lines.append(f"Loading {where} raised {cell.summary}")
    lines.extend(result.incidents)
    for q in result.questions:
        failed = [c for c in q.cases if c.status == "failed"]
        lines.append(f"{q.id.upper()} {q.title}: {fmt_points(q.score)} / {fmt_points(q.max_score)}"
                     + (f" ({len(failed)} test{'s' if len(failed) != 1 else ''} failed)" if failed else ""))
    return "\n".join(lines)


def instructor_data(result: SubmissionResult) -> dict:
    """What only the instructor may read: printed output and incidents from hidden cases.

    Gradescope never shows ``extra_data`` to students, and no other writer renders it; the
    student's ``output`` texts and report.html hold only what was printed before any hidden
    case ran.
    """
    return {"hidden_output": result.hidden_output, "hidden_output_truncated": result.hidden_output_truncated,
            "hidden_incidents": list(result.hidden_incidents)}


def results_json(result: SubmissionResult) -> dict:
    tests = []
    for q in result.questions:
        tests.extend(_case_test(c) for c in q.cases)
        if q.written:
            tests.append(_written_test(q.written))
    return {"score": result.score, "execution_time": round(result.seconds, 3),
            "output": summary_text(result), "visibility": "visible", "stdout_visibility": "hidden",
            "extra_data": {"student": result.student, "name": result.display_name or result.student,
                           "lms_id": result.lms_id, "file": result.file, "isolation": result.isolation,
                           "load_error": result.load_error, "incidents": list(result.incidents),
                           "instructor": instructor_data(result)},
            "tests": tests}


def write_results_json(result: SubmissionResult, path: Path) -> Path:
    # ensure_ascii=False keeps names readable; a lone surrogate (a name that was not text) is escaped
    text = json.dumps(results_json(result), indent=2, ensure_ascii=False)
    return write_atomic(path, text.encode("utf-8", "backslashreplace").decode("utf-8"))


def write_grades_csv(results: Iterable[SubmissionResult], path: Path, question_ids: list[str]) -> Path:
    """``student,<question ids...>,total,pending``; ``pending``: written points no person has graded yet.
    The student cell is made safe (``safetext.csv_cell``); the file is written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", *question_ids, "total", "pending"])
    for r in sorted(results, key=lambda r: r.student):
        if r.hwgrader_failed:  # not graded (hwgrader's or the cluster's failure): empty, not a zero
            writer.writerow([csv_cell(r.student), *("" for _ in question_ids), "", ""])
            continue
        scores = {q.id: q.score for q in r.questions}
        # 4 decimals: enough that the columns add up to the total for an upload
        writer.writerow([csv_cell(r.student), *(fmt_points(scores.get(q, 0), 4) for q in question_ids),
                         fmt_points(r.score, 4), fmt_points(r.pending, 4)])
    return write_atomic(path, buf.getvalue(), newline="")
