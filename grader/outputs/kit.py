"""The student kit: everything a student may have to self-check, nothing they may not.

A kit is an installable copy of the ``grader`` package with the public cases
(inputs, expected outputs, known-mistake outputs) precomputed into
``grader/public-cases.json``, plus the handout. It never contains the
reference package, the rubric or any hidden case: the cases file is written
from ``Plan.public_only()``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from grader.assignment.plan import Plan, save_plan_json

KIT_README = """\
# {title}: self-check kit

Check your submission against the public tests before handing it in:

    pip install .
    hwgrader check path/to/your_submission.py      # or .ipynb
    hwgrader check your_submission.py --question q3

`check` prints a table with a hint for every failed test and writes an HTML
report. It exits 0 only when every public test passes. Hidden tests, used
for the final grade, are not in this kit: passing here is necessary, not
sufficient.

What to hand in: see handout.md.
"""


def export_kit(plan: Plan, out: Path, *, repo_root: Path) -> Path:
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        from grader.errors import UsageError

        raise UsageError(f"kit folder {out} is not empty; choose a new folder")
    package = out / "grader"
    shutil.copytree(repo_root / "grader", package,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "public-cases.json"))
    save_plan_json(plan, package / "public-cases.json")
    shutil.copy2(repo_root / "pyproject.toml", out / "pyproject.toml")
    handout = repo_root / "docs" / "handout.md"
    if handout.is_file():
        shutil.copy2(handout, out / "handout.md")
    (out / "README.md").write_text(KIT_README.format(title=plan.title), encoding="utf-8")
    return out
