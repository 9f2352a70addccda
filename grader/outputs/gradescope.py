"""Machine-readable outputs: Gradescope's ``results.json`` per student and the class ``grades.csv``.

Formats are fixed by ``shared/spec/interfaces.md``: every test's ``number``
starts with its question id and a dot; written parts are ``manual`` tests
scored 0 until a person grades them; ``grades.csv`` has one row per student,
``student,<question ids...>,total``.
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
    if w.graded:
        output = f"Graded by a person: {fmt_points(w.score)} / {fmt_points(w.max_score)}."
    elif w.answer:
        output = (f"Not graded yet: a person grades this written answer "
                  f"(0 / {fmt_points(w.max_score)} until then).\n\nYour answer:\n{w.answer}")
    else:
        output = (f"No answer found: define {w.question.upper()}'s answer as a module-level string "
                  f"or a '**Answer {w.question.upper()}**' markdown cell. Scored 0 until a person grades it.")
    return {"name": w.title, "number": w.number, "score": w.score, "max_score": w.max_score,
            "status": "passed" if w.graded and w.score >= w.max_score else "failed",
            "output": output, "tags": [w.question, "manual", "written"], "visibility": "visible"}


def summary_text(result: SubmissionResult) -> str:
    """The top-level ``output``: what a student should read first."""
    lines = [f"{result.student}: {fmt_points(result.score)} / {fmt_points(result.max_score)} points "
             f"(written answers count once a person grades them)."]
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
                           "load_error": result.load_error, "incidents": list(result.incidents)},
            "tests": tests}


def write_results_json(result: SubmissionResult, path: Path) -> Path:
    # ensure_ascii=False keeps names readable; a lone surrogate (a name that was not text) is escaped
    text = json.dumps(results_json(result), indent=2, ensure_ascii=False)
    return write_atomic(path, text.encode("utf-8", "backslashreplace").decode("utf-8"))


def write_grades_csv(results: Iterable[SubmissionResult], path: Path, question_ids: list[str]) -> Path:
    """One row per student; the student cell is made safe (``safetext.csv_cell``); written atomically."""
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["student", *question_ids, "total"])
    for r in sorted(results, key=lambda r: r.student):
        scores = {q.id: q.score for q in r.questions}
        # 4 decimals: enough that the columns add up to the total for an upload
        writer.writerow([csv_cell(r.student), *(fmt_points(scores.get(q, 0), 4) for q in question_ids),
                         fmt_points(r.score, 4)])
    return write_atomic(path, buf.getvalue(), newline="")



def read_results_json(path: Path, plan) -> SubmissionResult:
    """A student's ``results.json`` back as a result, enough for the class files (scores per
    question and test, verdicts, diagnoses, load errors): how ``grade FILE --out DIR`` keeps the
    other students of DIR in grades.csv and index.html. ``ValueError`` when it is not one of ours."""
    from grader.grading.results import Diagnosis, QuestionResult

    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        extra = data["extra_data"]
        result = SubmissionResult(student=str(extra["student"]), file=str(extra.get("file", "")),
                                  isolation=str(extra.get("isolation", "none")),
                                  load_error=extra.get("load_error"), incidents=list(extra.get("incidents") or []),
                                  display_name=str(extra.get("name") or ""), lms_id=extra.get("lms_id"),
                                  seconds=float(data.get("execution_time", 0.0)))
        tests = list(data["tests"])
        for q in plan.questions:
            question = QuestionResult(id=q.id, title=q.title, max_score=q.points)
            for t in tests:
                tags = list(t.get("tags") or [])
                if not tags or tags[0] != q.id:
                    continue
                if "manual" in tags:
                    question.written = WrittenResult(
                        question=q.id, number=t["number"], title=t["name"], prompt="", criteria=[],
                        max_score=float(t["max_score"]), answer=None, score=float(t["score"]),
                        graded=str(t.get("output", "")).startswith("Graded by a person"))
                    continue
                function, _, case = str(t["name"]).split(" ", 1)[-1].partition(" (")
                lines = str(t.get("output", "")).split("\n")
                diagnosis = None
                if len(tags) > 4:
                    hint_line = next((ln for ln in lines if ln.startswith("Likely mistake: ")), "")
                    title, _, hint = hint_line[len("Likely mistake: "):].partition(". ")
                    diagnosis = Diagnosis(tags[4], title, hint)
                question.cases.append(CaseResult(
                    question=q.id, part=tags[1], case=case.rstrip(")"), number=t["number"], function=function,
                    visibility=tags[2], max_score=float(t["max_score"]), score=float(t["score"]),
                    verdict=tags[3], message=lines[0], diagnosis=diagnosis))
            result.questions.append(question)
        return result
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise ValueError(f"{path}: not a results.json written by hwgrader ({type(exc).__name__}: {exc})") from None
