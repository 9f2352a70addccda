"""Grade files an LMS imports as they are: ``export DIR --format canvas|moodle [--out FILE]``.

**Canvas** (Grades → Import): the gradebook CSV. Canvas's instructor guide
and its own export use the columns ``Student, ID, SIS User ID, SIS Login ID,
Section`` and then one column per assignment; the row under the header whose
first cell is ``Points Possible`` gives the assignment's points. Canvas matches
a row to a student by ``ID`` (the Canvas user id, which Canvas puts in the
file names of a submissions download), then ``SIS User ID``, then ``SIS Login
ID``. An assignment column named ``Name (12345)`` updates assignment 12345; any
other name creates a new assignment (``--assignment``).

**Moodle** (assignment → "Upload grading worksheet"): the offline grading
worksheet. Moodle's importer (``mod/assign/feedback/offline/importgradeslib.php``)
requires the columns ``Identifier`` (``Participant N``, N being the number in
the ``Full Name_N_assignsubmission_file_`` folders of a download), ``Grade``
and ``Last modified (grade)``; ``Feedback comments`` fills the feedback.

The student's LMS id comes from the gradebook (the intake reads it from the
download's names) or from ``--roster FILE``, a CSV with the columns
``student,lms_id`` and optionally ``name,sis_user_id,sis_login_id,section,email``
(``student`` is hwgrader's student name or the submission's file name). A
student with no id is an error naming them: an LMS would otherwise match
the row by name, or not at all.

The score is the final one: automatic + manual. Points still pending (written
answers nobody graded) count 0; the export says how many students have some.
"""

from __future__ import annotations

import csv
import html
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from grader.errors import GradebookError
from grader.gradebook.store import Gradebook, now
from grader.grading.results import SubmissionResult, fmt_points
from grader.outputs.gradescope import csv_cell

FORMATS = ("canvas", "moodle")
CANVAS_COLUMNS = ("Student", "ID", "SIS User ID", "SIS Login ID", "Section")
#: Canvas's own export writes the points row with this first cell.
CANVAS_POINTS_ROW = "    Points Possible"
MOODLE_COLUMNS = ("Identifier", "Full name", "Email address", "Status", "Grade", "Maximum Grade",
                  "Grade can be changed", "Last modified (submission)", "Last modified (grade)",
                  "Feedback comments")
ROSTER_COLUMNS = ("student", "lms_id", "name", "sis_user_id", "sis_login_id", "section", "email")
#: Canvas submission download names: ``name_[LATE_]userid_submissionid_file``.
_CANVAS_NAME = re.compile(r"^(?P<name>[^_]+)_(?:LATE_)?(?P<id>\d+)_\d+(?:_|$)")
#: Moodle download folders: ``Full Name_participantid_assignsubmission_file_``.
_MOODLE_NAME = re.compile(r"^(?P<name>.+?)_(?P<id>\d+)_assign(?:submission|feedback)_")


class ExportError(GradebookError):
    """An LMS export that cannot be written as asked (students without an LMS id, a bad roster)."""


@dataclass
class RosterEntry:
    lms_id: str
    name: str = ""
    sis_user_id: str = ""
    sis_login_id: str = ""
    section: str = ""
    email: str = ""


@dataclass
class Roster:
    entries: dict[str, RosterEntry] = field(default_factory=dict)   # by student or file name

    def find(self, student: str, file: str) -> Optional[RosterEntry]:
        for key in (student, file, Path(file).stem):
            if key in self.entries:
                return self.entries[key]
        return None


def read_roster(path: Path) -> Roster:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ExportError(f"{path}: no such roster file") from None
    except UnicodeDecodeError:
        raise ExportError(f"{path}: the roster is not UTF-8 text") from None
    except OSError as exc:
        raise ExportError(f"{path}: cannot read the roster: {exc.strerror}") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    if "student" not in header or "lms_id" not in header:
        raise ExportError(f"{path}: line 1: a roster needs the columns student,lms_id "
                          f"(optional: {','.join(ROSTER_COLUMNS[2:])})")
    roster = Roster()
    for row in reader:
        row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items()}
        student, lms_id = row.get("student", ""), row.get("lms_id", "")
        if not student and not lms_id:
            continue
        if not student or not lms_id:
            raise ExportError(f"{path}: line {reader.line_num}: needs both student and lms_id")
        if student in roster.entries:
            raise ExportError(f"{path}: line {reader.line_num}: student {student!r} is listed twice")
        roster.entries[student] = RosterEntry(lms_id, *(row.get(c, "") for c in ROSTER_COLUMNS[2:]))
    return roster


@dataclass(frozen=True)
class ExportRow:
    result: SubmissionResult
    lms_id: str
    entry: RosterEntry


def _lms_id_from_name(student: str, fmt: str) -> Optional[str]:
    m = (_CANVAS_NAME if fmt == "canvas" else _MOODLE_NAME).match(student)
    return m.group("id") if m else None


def _rows(gradebook: Gradebook, fmt: str, roster: Optional[Roster]) -> list[ExportRow]:
    infos = {s.id: s for s in gradebook.students()}
    rows, missing = [], []
    for result in gradebook.results(light=True):
        info = infos[result.student]
        entry = roster.find(result.student, info.file) if roster else None
        lms_id = entry.lms_id if entry else (info.lms_id or _lms_id_from_name(result.student, fmt))
        if not lms_id:
            missing.append(result.student)
            continue
        rows.append(ExportRow(result, lms_id, entry or RosterEntry(lms_id, name=info.display_name)))
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise ExportError(f"{gradebook.path.parent}: {len(missing)} student(s) have no {fmt} id: {shown}; "
                          f"pass --roster FILE (columns student,lms_id)")
    return rows


def _max_total(gradebook: Gradebook) -> float:
    return sum(q.max_points for q in gradebook.questions())


def canvas_csv(gradebook: Gradebook, *, assignment: str, roster: Optional[Roster] = None) -> str:
    rows = _rows(gradebook, "canvas", roster)
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow([*CANVAS_COLUMNS, assignment])
    out.writerow([CANVAS_POINTS_ROW, "", "", "", "", fmt_points(_max_total(gradebook), 4)])
    for r in sorted(rows, key=lambda r: r.entry.name or r.result.student):
        e = r.entry
        out.writerow([csv_cell(e.name or r.result.student), csv_cell(r.lms_id), csv_cell(e.sis_user_id),
                      csv_cell(e.sis_login_id), csv_cell(e.section), fmt_points(r.result.score, 4)])
    return buf.getvalue()


def _feedback(result: SubmissionResult) -> str:
    """Moodle's feedback comments are HTML: the graders' comments go in escaped, as text."""
    parts = [f"{q.id.upper()}: {fmt_points(q.score)} / {fmt_points(q.max_score)}" for q in result.questions]
    comments = [f"{q.id.upper()}: {q.written.comment}" for q in result.questions
                if q.written is not None and q.written.graded and q.written.comment]
    lines = ["; ".join(parts), *comments]
    return "<br>".join(html.escape(line).replace("\n", "<br>") for line in lines)


def moodle_csv(gradebook: Gradebook, *, roster: Optional[Roster] = None) -> str:
    rows = _rows(gradebook, "moodle", roster)
    stamp = now()
    maximum = fmt_points(_max_total(gradebook), 4)
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\r\n")
    out.writerow(MOODLE_COLUMNS)
    for r in sorted(rows, key=lambda r: r.result.student):
        e = r.entry
        out.writerow([f"Participant {r.lms_id}", csv_cell(e.name or r.result.student), csv_cell(e.email),
                      "Submitted for grading", fmt_points(r.result.score, 4), maximum, "Yes", "",
                      stamp, csv_cell(_feedback(r.result))])
    return buf.getvalue()


def export_lms(gradebook: Gradebook, fmt: str, path: Path, *, assignment: Optional[str] = None,
               roster: Optional[Roster] = None) -> tuple[int, int]:
    """Write the file; returns (students, students with pending points)."""
    if fmt == "canvas":
        text = canvas_csv(gradebook, assignment=assignment or gradebook.title, roster=roster)
    elif fmt == "moodle":
        text = moodle_csv(gradebook, roster=roster)
    else:
        raise ExportError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8", newline="")
    results = gradebook.results(light=True)
    return len(results), sum(1 for r in results if r.pending)
