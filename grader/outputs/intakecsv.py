"""``DIR/intake.csv``: every entry intake found and what became of it (``shared/spec/interfaces.md``).

Columns ``path,student,status,detail``; one row per file or folder found, in
path order. Written atomically, cells made safe like every CSV hwgrader writes.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from grader.assignment.intake import Intake
from grader.outputs.atomic import write_atomic
from grader.safetext import csv_cell

INTAKE_CSV = "intake.csv"
COLUMNS = ("path", "student", "status", "detail")


def intake_csv_text(intake: Intake) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in intake.entries:
        writer.writerow([csv_cell(e.path), csv_cell(e.student), e.status.value, csv_cell(e.detail)])
    return buf.getvalue()


def write_intake_csv(intake: Intake, path: Path) -> Path:
    return write_atomic(Path(path), intake_csv_text(intake))
