"""The manual grades as a spreadsheet: ``manual export DIR FILE`` / ``manual import DIR FILE``.

Columns ``student,question,points,comment`` (``shared/spec/interfaces.md``):
one row per present student and written question; ``points`` empty = not
graded. Cells that a spreadsheet would read as a formula get a leading ``'``
on export, which import removes again.

Import reads and checks **every** row before it changes anything: the header,
unknown students or questions, points that are not a number or outside
``0..max``, duplicate (student, question) rows, a comment without points.
On any bad row nothing is written and :class:`ManualImportError` names the
row (its line in the file) and the problem. A good file is applied in one
transaction: a row whose points and comment equal the current grade changes
nothing; otherwise a grade event keeps the rubric items already applied and
sets the adjustment so the score equals ``points``. An empty ``points`` leaves
an existing grade as it is (a sheet exported before someone graded in
``serve`` must not erase that grade).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from grader.errors import GradebookError
from grader.gradebook.store import Gradebook
from grader.grading.results import fmt_points
from grader.safetext import formula_safe

COLUMNS = ("student", "question", "points", "comment")
#: Rows a manual grades file may have; beyond it the file is refused as not a grades sheet.
MAX_ROWS = 200_000


class ManualImportError(GradebookError):
    """A manual grades CSV that cannot be imported; the message names the file and the row."""


@dataclass(frozen=True)
class ImportRow:
    line: int
    student: str
    question: str
    points: Optional[float]
    comment: str


@dataclass(frozen=True)
class ImportSummary:
    changed: int              # grade events written
    unchanged: int            # rows equal to the current grade
    skipped_empty: int        # rows without points
    students: tuple[str, ...]  # whose files need rewriting


def export_manual(gradebook: Gradebook, path: Path) -> int:
    """Write the sheet; returns the number of rows."""
    grades = gradebook.manual_grades()
    questions = [q.id for q in gradebook.written_questions()]
    rows = 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for student in gradebook.students():
        for qid in questions:
            g = grades.get((student.id, qid))
            writer.writerow([formula_safe(student.id), qid, fmt_points(g.score, 4) if g else "",
                             formula_safe(g.comment) if g else ""])
            rows += 1
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # a BOM so that Excel reads the names and comments (often Chinese) as UTF-8
    Path(path).write_text(buf.getvalue(), encoding="utf-8-sig", newline="")
    return rows


def _uncell(text: str) -> str:
    """Undo :func:`formula_safe`: a ``'`` that protects a formula character is dropped."""
    if len(text) > 1 and text[0] == "'" and formula_safe(text[1:]) != text[1:]:
        return text[1:]
    return text


def _cell(record: list[str], i: int) -> str:
    return _uncell(record[i].strip()) if i < len(record) else ""


def read_rows(gradebook: Gradebook, path: Path) -> list[ImportRow]:
    """Parse and check every row; ``ManualImportError`` naming the first bad one (and how many more)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ManualImportError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ManualImportError(f"{path}: not UTF-8 text (byte {exc.start}); save the sheet as "
                                f"'CSV UTF-8'") from None
    except OSError as exc:
        raise ManualImportError(f"{path}: cannot read it: {exc.strerror}") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ManualImportError(f"{path}: line 1: not valid CSV ({exc})") from None
    if header is None:
        raise ManualImportError(f"{path}: the file is empty; expected the header {','.join(COLUMNS)}")
    names = [h.strip().lower() for h in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise ManualImportError(f"{path}: line 1: the header lacks column(s) {', '.join(missing)} "
                                f"(expected {','.join(COLUMNS)})")
    index = {c: names.index(c) for c in COLUMNS}
    students = {s.id for s in gradebook.students()}
    maxima = {q.id: q.max_points for q in gradebook.written_questions()}
    rows: list[ImportRow] = []
    problems: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    while True:
        try:
            record = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            problems.append(f"line {reader.line_num}: not valid CSV ({exc})")
            break
        line = reader.line_num
        if len(rows) + len(problems) >= MAX_ROWS:
            problems.append(f"line {line}: more than {MAX_ROWS} rows")
            break
        if not any(cell.strip() for cell in record):
            continue  # blank line (spreadsheets add them)
        student, qid, raw, comment = (_cell(record, index[c]) for c in COLUMNS)
        qid = qid.lower()
        where = f"line {line} ({student or '?'}, {qid or '?'})"
        if student not in students:
            problems.append(f"{where}: unknown student {student!r}")
            continue
        if qid not in maxima:
            problems.append(f"{where}: unknown question {qid!r} (written questions: {', '.join(maxima)})")
            continue
        if (student, qid) in seen:
            problems.append(f"{where}: duplicate of line {seen[(student, qid)]}")
            continue
        seen[(student, qid)] = line
        points: Optional[float] = None
        if raw:
            try:
                points = float(raw)
            except ValueError:
                problems.append(f"{where}: points {raw!r} is not a number")
                continue
            if not math.isfinite(points) or not 0 <= points <= maxima[qid]:
                problems.append(f"{where}: points {raw} outside 0..{fmt_points(maxima[qid])}")
                continue
        elif comment:
            problems.append(f"{where}: a comment without points (enter the points too)")
            continue
        rows.append(ImportRow(line, student, qid, points, comment))
    if problems:
        more = f" (and {len(problems) - 1} more bad row{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        raise ManualImportError(f"{path}: {problems[0]}{more}; nothing was imported")
    return rows


def import_manual(gradebook: Gradebook, path: Path, *, grader: str) -> ImportSummary:
    """Check the whole sheet, then apply it in one transaction."""
    rows = read_rows(gradebook, path)
    changed = unchanged = empty = 0
    touched: set[str] = set()
    with gradebook.transaction():
        current = gradebook.manual_grades()
        for row in rows:
            if row.points is None:
                empty += 1
                continue
            grade = current.get((row.student, row.question))
            if grade is not None and abs(grade.score - row.points) < 5e-5 and grade.comment == row.comment:
                unchanged += 1
                continue
            items = [i.id for i in grade.items] if grade else []
            base = sum(i.points for i in grade.items) if grade else 0.0
            gradebook.record_grade(row.student, row.question, grader=grader, items=items,
                                   adjustment=round(row.points - base, 6), comment=row.comment,
                                   source="import")
            changed += 1
            touched.add(row.student)
    return ImportSummary(changed, unchanged, empty, tuple(sorted(touched)))
