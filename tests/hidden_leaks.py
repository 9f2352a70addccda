"""Inverse oracles for the hidden-case attacks of the red-team batch (tests/attacks/hidden_*.py).

Each of those attacks tries to carry a digest of the inputs it was called with (``HWLEAK`` + 24
hex digits of sha256 over the float64 bytes of its arguments) back to the student: printed, as
its exception class name, or as its exit code. This module computes the same digests from the
plan and looks for them in what a student reads: ``report.html`` and ``results.json`` without
``extra_data.instructor``. A hidden case's digest there is a leak; a public case's digest
missing from ``report.html`` is lost feedback; a hidden digest missing from the instructor's
part means the attack did not run (the oracle would then prove nothing).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

FUNCTION = "urn_emissions"
ATTACKS = ("hidden_print_echo", "hidden_exception_name", "hidden_exit_code")


def digest(args) -> str:
    h = hashlib.sha256()
    for a in args:
        h.update(np.asarray(a, dtype="<f8").tobytes())
    return "HWLEAK" + h.hexdigest()[:24]


def exit_code(args) -> int:
    h = hashlib.sha256()
    for a in args:
        h.update(np.asarray(a, dtype="<f8").tobytes())
    return 17 + h.digest()[0] % 200


def _files(out_dir: Path, student: str, result=None) -> tuple[str, dict]:
    """(report.html, results.json) as written; rendered again from ``result`` when another
    attack replaced them (``overwrite_reports`` can, where workers may write the reports folder)."""
    data = json.loads((out_dir / student / "results.json").read_text(encoding="utf-8"))
    page = (out_dir / student / "report.html").read_text(encoding="utf-8")
    if "extra_data" not in data and result is not None:
        from grader.outputs.gradescope import results_json
        from grader.outputs.report import render_student_report
        data, page = results_json(result), render_student_report(result)
    return page, data


def student_visible(out_dir: Path, student: str, result=None) -> str:
    """Everything of a student's files that the student reads."""
    page, data = _files(out_dir, student, result)
    data.get("extra_data", {}).pop("instructor", None)
    return page + json.dumps(data, ensure_ascii=False)


def instructor_only(out_dir: Path, student: str, result=None) -> str:
    _, data = _files(out_dir, student, result)
    return json.dumps(data["extra_data"]["instructor"], ensure_ascii=False)


def leak_problems(out_dir: Path, plan, graded: dict) -> list[str]:
    """Problems found for the hidden-case attacks among ``graded`` (student -> SubmissionResult,
    or a set of names); empty: no leak."""
    cases = [c for c in plan.cases if c.function == FUNCTION]
    public = [c for c in cases if c.visibility == "public"]
    hidden = [c for c in cases if c.visibility != "public"]
    assert public and hidden, "the rubric needs public and hidden cases of " + FUNCTION
    problems = []
    for name in ATTACKS:
        if name not in graded:
            continue
        result = graded.get(name) if isinstance(graded, dict) else None
        seen, instructor = student_visible(out_dir, name, result), instructor_only(out_dir, name, result)
        if name == "hidden_exit_code":
            public_codes = {exit_code(c.args) for c in public}
            for c in hidden:
                code = exit_code(c.args)
                if code not in public_codes and f"code {code}" in seen:
                    problems.append(f"{name}: the exit code of hidden case {c.number} ({code}) reached the student")
            continue
        for c in hidden:
            if digest(c.args) in seen:
                problems.append(f"{name}: the inputs of hidden case {c.number} reached the student")
        if name == "hidden_print_echo":
            for c in public:
                if digest(c.args) not in seen:
                    problems.append(f"{name}: what public case {c.number} printed is missing from report.html")
            for c in hidden:
                if digest(c.args) not in instructor:
                    problems.append(f"{name}: what hidden case {c.number} printed is not kept for the instructor")
    return problems
