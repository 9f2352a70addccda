"""The gradebook: one SQLite file per output folder (``DIR/gradebook.sqlite``).

It holds what a re-run and a person grading by hand need:

- every graded submission by student, with its content hash, the key of the
  rubric + hwgrader version it was graded under and its automatic results
  (versioned JSON, :meth:`SubmissionResult.to_json`), so ``grade`` can reuse
  what did not change;
- the questions, and the rubric's written criteria as **rubric items** with
  signed points (``"... (2 points)"`` at the end of a criterion gives its points;
  a criterion without them is a 0-point, feedback-only item);
- each written answer's text, per (student, question);
- manual grades as an **append-only log** of events (who, when, which items,
  points adjustment, comment); the current grade of a (student, question) is its
  latest event, and its score is computed, never stored:
  ``clamp(0, max, Σ points of the applied items still in the rubric + adjustment)``.
  Editing an item's points therefore re-scores everyone who has it; an item
  removed from the rubric stops counting (PrairieLearn's rules);
- a comment bank per question, with how often each comment was used.

Concurrency: ``grade``, ``manual import`` and ``serve`` may use the same file
at once: WAL journal, every write in one ``BEGIN IMMEDIATE`` transaction,
a busy timeout of ``BUSY_TIMEOUT_S``. One :class:`Gradebook` may be shared by
threads (calls are serialised by a lock).

A file that is not SQLite, is damaged, belongs to another program or was made
by a newer hwgrader raises :class:`~grader.errors.GradebookError` naming it;
it is never replaced.

API (everything ``serve``, the CLI and the writers use)::

    gb = Gradebook.open(out_dir)               # existing gradebook; GradebookError if none
    gb = Gradebook.open(out_dir, create=True)  # ``grade`` creates it
    with Gradebook.open(out_dir) as gb: ...    # closes at the end

    gb.title                                   # the homework's title (for pages)
    gb.questions() -> list[QuestionInfo]       # every question (id, title, max points, written part?)
    gb.written_questions() -> list[WrittenQuestion]   # those with a written part, with .items
    gb.written_question("q1") -> WrittenQuestion      # .items: list[RubricItem(id, label, points, ...)]
    gb.students() -> list[StudentInfo]         # present students (anon_id, display_name, lms_id, file)
    gb.answers("q1") -> list[Answer]           # every present student's answer + current grade,
                                               # in a stable pseudo-random order (by anon_id)
    gb.answer(student, "q1") -> Answer
    gb.current_grade(student, "q1") -> ManualGrade | None
    gb.record_grade(student, "q1", grader="ta1", items=[item ids], adjustment=0.0,
                    comment="", expected_event=None) -> ManualGrade
                                               # appends an event; InvalidGrade if it does not fit,
                                               # GradeConflict if expected_event is not the latest
    gb.clear_grade(student, "q1", grader="ta1") -> None   # back to ungraded (an event too)
    gb.history(student, "q1") -> list[GradeEvent]          # oldest first
    gb.comments("q1") -> list[BankComment]     # most used first
    gb.add_comment("q1", text) -> BankComment  # record_grade adds its comment and counts the use
    gb.progress() -> dict[qid, Progress]       # Progress(question, graded, total)
    gb.results() / gb.result(student) -> SubmissionResult   # automatic + manual, for writers

Times are UTC ISO-8601 strings (``2026-12-01T15:20:03Z``).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence

from grader import __version__
from grader.errors import GradebookError
from grader.grading.results import (
    RESULTS_JSON_VERSION,
    AppliedItem,
    SubmissionResult,
)

GRADEBOOK_FILE = "gradebook.sqlite"
SCHEMA_VERSION = 2
#: ``PRAGMA application_id`` of our files ("hwgr"), so another program's SQLite file is recognised.
APPLICATION_ID = 0x68776772
#: How long a write waits for another process's transaction before giving up.
BUSY_TIMEOUT_S = 10.0
#: Longest comment a grader may enter.
MAX_COMMENT_CHARS = 10_000
#: A criterion ending in "(2 points)", "(-1 point)", "(0.5 pts)" or "(2 分)" gives its points.
_POINTS_SUFFIX = re.compile(r"\s*\(\s*([+\-−]?\d+(?:\.\d+)?)\s*(?:points?|pts?|分)\s*\)\s*$", re.IGNORECASE)


class InvalidGrade(GradebookError):
    """A manual grade that does not fit the gradebook (unknown student, question or item, bad number)."""


class GradeConflict(GradebookError):
    """Someone else graded this answer since the caller read it (``expected_event`` is stale)."""


# --------------------------------------------------------------------------- API types


@dataclass(frozen=True)
class RubricItem:
    id: int              # stable across rubric edits that keep the label (or its position)
    question: str
    ord: int             # 1-based position in the rubric: the number key that applies it
    label: str           # the criterion without its "(N points)" suffix
    points: float        # signed: credit (>0), penalty (<0) or feedback only (0)


@dataclass(frozen=True)
class QuestionInfo:
    id: str
    ord: int
    title: str
    max_points: float              # the whole question (code + written)
    written_points: Optional[float]  # None when the question has no written part


@dataclass(frozen=True)
class WrittenQuestion:
    id: str
    number: str          # the written test's number in results.json ("q1.8")
    title: str
    prompt: str
    max_points: float
    items: tuple[RubricItem, ...]


@dataclass(frozen=True)
class StudentInfo:
    id: str              # the intake's stable student name (folder name under DIR)
    anon_id: str         # shown instead of the name while grading anonymously
    display_name: str
    lms_id: Optional[str]
    file: str            # the graded file's name
    present: bool        # False once a re-run no longer finds this student's submission


@dataclass(frozen=True)
class ManualGrade:
    student: str
    question: str
    score: float         # clamp(0, max, Σ items + adjustment), with the rubric as it is now
    items: tuple[RubricItem, ...]   # applied items still in the rubric
    adjustment: float
    comment: str
    grader: str
    at: str
    event_id: int        # pass as expected_event to record_grade to detect concurrent edits
    source: str          # "ui", "import" or "cli"
    answer_hash: Optional[str]  # hash of the answer text that was graded


@dataclass(frozen=True)
class Answer:
    student: str
    anon_id: str
    display_name: str
    question: str
    text: Optional[str]  # None when the submission has no answer to this question
    grade: Optional[ManualGrade]

    @property
    def changed_since_graded(self) -> bool:
        """The answer was edited (re-submitted) after its grade was given; the grade is kept."""
        return self.grade is not None and self.grade.answer_hash != _text_hash(self.text)


@dataclass(frozen=True)
class GradeEvent:
    id: int
    student: str
    question: str
    at: str
    grader: str
    kind: str            # "grade" or "clear"
    item_ids: tuple[int, ...]
    adjustment: float
    comment: str
    source: str


@dataclass(frozen=True)
class BankComment:
    id: int
    question: str
    text: str
    uses: int
    last_used: Optional[str]


@dataclass(frozen=True)
class Progress:
    question: str
    graded: int
    total: int

    def __str__(self) -> str:
        return f"{self.graded} of {self.total} graded"


# --------------------------------------------------------------------------- helpers


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _text_hash(text: Optional[str]) -> Optional[str]:
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def parse_criterion(text: str) -> tuple[str, float]:
    """``"Mentions X (2 points)"`` -> ``("Mentions X", 2.0)``; no suffix -> ``(text, 0.0)``."""
    m = _POINTS_SUFFIX.search(text)
    if not m:
        return text.strip(), 0.0
    return text[:m.start()].strip(), float(m.group(1).replace("−", "-"))


def content_hash(path: Path) -> str:
    """SHA-256 of a submission: the file's bytes, or every file of a folder with its relative path."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink()):
            h.update(f.relative_to(path).as_posix().encode("utf-8") + b"\0")
            h.update(f.read_bytes() + b"\0")
    else:
        h.update(path.read_bytes())
    return h.hexdigest()


def run_key(rubric_path: Path, reference_dir: Path) -> str:
    """What a stored result depends on besides the submission: rubric, reference code, hwgrader version."""
    h = hashlib.sha256(f"hwgrader {__version__}; results v{RESULTS_JSON_VERSION}\0".encode())
    h.update(Path(rubric_path).read_bytes() + b"\0")
    for f in sorted(Path(reference_dir).rglob("*.py")):
        h.update(f.relative_to(reference_dir).as_posix().encode("utf-8") + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


# --------------------------------------------------------------------------- schema

#: MIGRATIONS[v] turns a version v-1 file into version v (MIGRATIONS[1] creates the schema).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE TABLE schema_version (version INTEGER NOT NULL, applied_at TEXT NOT NULL)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE question (
            id TEXT PRIMARY KEY, ord INTEGER NOT NULL, title TEXT NOT NULL,
            max_points REAL NOT NULL, written_points REAL, written_number TEXT,
            written_title TEXT, prompt TEXT)""",
        """CREATE TABLE rubric_item (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            question_id TEXT NOT NULL REFERENCES question(id),
            ord INTEGER NOT NULL, label TEXT NOT NULL, points REAL NOT NULL,
            active INTEGER NOT NULL DEFAULT 1)""",
        """CREATE TABLE student (
            id TEXT PRIMARY KEY, anon_id TEXT NOT NULL UNIQUE, display_name TEXT NOT NULL,
            lms_id TEXT, present INTEGER NOT NULL DEFAULT 1)""",
        """CREATE TABLE submission (
            student TEXT PRIMARY KEY REFERENCES student(id), file TEXT NOT NULL,
            content_hash TEXT NOT NULL, run_key TEXT NOT NULL,
            results_version INTEGER NOT NULL, results TEXT NOT NULL, graded_at TEXT NOT NULL)""",
        """CREATE TABLE answer (
            student TEXT NOT NULL REFERENCES student(id),
            question_id TEXT NOT NULL REFERENCES question(id),
            text TEXT, text_hash TEXT, PRIMARY KEY (student, question_id))""",
        """CREATE TABLE grade_event (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            student TEXT NOT NULL REFERENCES student(id),
            question_id TEXT NOT NULL REFERENCES question(id),
            at TEXT NOT NULL, grader TEXT NOT NULL,
            kind TEXT NOT NULL CHECK (kind IN ('grade', 'clear')),
            items TEXT NOT NULL, adjustment REAL NOT NULL, comment TEXT NOT NULL,
            source TEXT NOT NULL, answer_hash TEXT)""",
        "CREATE INDEX grade_event_by_answer ON grade_event (student, question_id, id)",
        """CREATE TRIGGER grade_event_no_update BEFORE UPDATE ON grade_event
           BEGIN SELECT RAISE(ABORT, 'grade events are append-only'); END""",
        """CREATE TRIGGER grade_event_no_delete BEFORE DELETE ON grade_event
           BEGIN SELECT RAISE(ABORT, 'grade events are append-only'); END""",
        """CREATE TABLE comment_bank (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            question_id TEXT NOT NULL REFERENCES question(id),
            text TEXT NOT NULL, uses INTEGER NOT NULL DEFAULT 0, last_used TEXT,
            UNIQUE (question_id, text))""",
    ),
    # the results without arrays and printed output, for the class files (10x smaller to read)
    2: ("ALTER TABLE submission ADD COLUMN summary TEXT",),
}

_LATEST_EVENTS = """
    SELECT e.* FROM grade_event e
    JOIN (SELECT student, question_id, MAX(id) AS id FROM grade_event GROUP BY student, question_id) last
      ON e.id = last.id
"""


class Gradebook:
    """An open gradebook file. Create with :meth:`open`; close with :meth:`close` or ``with``."""

    def __init__(self, path: Path, conn: sqlite3.Connection):
        self.path, self._conn = path, conn
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- opening

    @classmethod
    def open(cls, out_dir: Path, *, create: bool = False) -> "Gradebook":
        """The gradebook of ``out_dir``; with ``create`` a new one is made if there is none."""
        path = Path(out_dir) / GRADEBOOK_FILE
        existed = path.exists()
        if not existed and not create:
            raise GradebookError(f"{path}: no gradebook here (grade the submissions with "
                                 f"`hwgrader grade SOURCE --out {out_dir}` first)")
        if existed and not path.is_file():
            raise GradebookError(f"{path}: is not a file")
        if existed and path.stat().st_size == 0:
            raise GradebookError(f"{path}: the gradebook file is empty (damaged?); "
                                 f"move it away to start a new gradebook")
        try:
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
        except sqlite3.Error as exc:
            raise GradebookError(f"{path}: cannot open the gradebook: {exc}") from None
        gb = cls(path, conn)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            if existed:
                gb._check_existing()
            conn.execute("PRAGMA journal_mode = WAL")
            gb._migrate()
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise GradebookError(f"{path}: not a readable hwgrader gradebook ({exc}); "
                                 f"it was left as it is") from None
        except GradebookError:
            conn.close()
            raise
        return gb

    def _check_existing(self) -> None:
        conn = self._conn
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise GradebookError(f"{self.path}: the gradebook file is damaged ({check}); "
                                 f"it was left as it is")
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        if app != APPLICATION_ID:
            raise GradebookError(f"{self.path}: this SQLite file is not an hwgrader gradebook; "
                                 f"it was left as it is")

    def _version(self) -> int:
        has = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'").fetchone()
        if not has:
            return 0
        row = self._conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        with self._write() as conn:
            version = self._version()
            if version > SCHEMA_VERSION:
                raise GradebookError(f"{self.path}: made by a newer hwgrader (gradebook schema {version}, "
                                     f"this one reads up to {SCHEMA_VERSION}); upgrade hwgrader")
            if version == 0:
                conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[v]:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version VALUES (?, ?)", (v, now()))
            if version == 0:
                conn.execute("INSERT INTO meta VALUES ('anon_salt', ?)", (secrets.token_hex(16),))
                conn.execute("INSERT INTO meta VALUES ('title', 'Homework')")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> "Gradebook":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: takes the write lock up front).

        Inside :meth:`transaction` (same thread, lock held) it joins the open transaction.
        """
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            try:
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:  # locked past the busy timeout, read-only, disk I/O
                raise GradebookError(f"{self.path}: cannot write the gradebook ({exc}); if another hwgrader "
                                     f"is using it, try again when it is done") from None
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except sqlite3.OperationalError as exc:  # disk full, I/O error: nothing of it was written
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise GradebookError(f"{self.path}: saving to the gradebook failed ({exc}); "
                                     f"nothing of this change was written") from None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """A consistent snapshot for several SELECTs."""
        with self._lock:
            if self._conn.in_transaction:
                yield self._conn
                return
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator["Gradebook"]:
        """Several writes (``record_grade``, ...) that land together or not at all (``manual import``)."""
        with self._write():
            yield self

    # ---------------------------------------------------------------- the rubric

    @property
    def title(self) -> str:
        with self._lock:
            return self._conn.execute("SELECT value FROM meta WHERE key = 'title'").fetchone()[0]

    def sync_plan(self, plan) -> None:
        """Record the plan's questions and turn its written criteria into rubric items.

        An item keeps its id (and so every grade that applied it) when its label is
        unchanged, or, failing that, when it keeps its position; its points are updated
        (re-scoring those grades). Items no longer in the rubric stop counting.
        """
        with self._write() as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'title'", (plan.title,))
            for ord_, q in enumerate(plan.questions, 1):
                w = q.written
                number = f"{q.id}.{len(q.cases) + 1}" if w else None
                conn.execute(
                    """INSERT INTO question VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (id) DO UPDATE SET ord = excluded.ord, title = excluded.title,
                         max_points = excluded.max_points, written_points = excluded.written_points,
                         written_number = excluded.written_number, written_title = excluded.written_title,
                         prompt = excluded.prompt""",
                    (q.id, ord_, q.title, float(q.points), float(w.points) if w else None, number,
                     f"{q.title}: written answer" if w else None, w.prompt if w else None))
                self._sync_items(conn, q.id, [parse_criterion(c) for c in (w.criteria if w else ())])

    @staticmethod
    def _sync_items(conn: sqlite3.Connection, qid: str, wanted: list[tuple[str, float]]) -> None:
        old = conn.execute("SELECT id, ord, label FROM rubric_item WHERE question_id = ? AND active = 1 "
                           "ORDER BY ord", (qid,)).fetchall()
        by_label = {r["label"]: r["id"] for r in old}
        used: set[int] = set()
        chosen: list[Optional[int]] = []
        for label, _ in wanted:
            item = by_label.get(label)
            if item is not None and item not in used:
                used.add(item)
            else:
                item = None
            chosen.append(item)
        by_ord = {r["ord"]: r["id"] for r in old}
        for i, (label, _) in enumerate(wanted):
            if chosen[i] is None:
                item = by_ord.get(i + 1)
                if item is not None and item not in used:
                    chosen[i] = item
                    used.add(item)
        for r in old:
            if r["id"] not in used:
                conn.execute("UPDATE rubric_item SET active = 0 WHERE id = ?", (r["id"],))
        for i, ((label, points), item) in enumerate(zip(wanted, chosen), 1):
            if item is None:
                conn.execute("INSERT INTO rubric_item (question_id, ord, label, points) VALUES (?, ?, ?, ?)",
                             (qid, i, label, points))
            else:
                conn.execute("UPDATE rubric_item SET ord = ?, label = ?, points = ? WHERE id = ?",
                             (i, label, points, item))

    def questions(self) -> list[QuestionInfo]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM question ORDER BY ord").fetchall()
        return [QuestionInfo(r["id"], r["ord"], r["title"], r["max_points"], r["written_points"]) for r in rows]

    def _items(self, conn: sqlite3.Connection) -> dict[int, RubricItem]:
        return {r["id"]: RubricItem(r["id"], r["question_id"], r["ord"], r["label"], r["points"])
                for r in conn.execute("SELECT * FROM rubric_item WHERE active = 1 ORDER BY question_id, ord")}

    def written_questions(self) -> list[WrittenQuestion]:
        with self._read() as conn:
            items = self._items(conn)
            rows = conn.execute("SELECT * FROM question WHERE written_points IS NOT NULL ORDER BY ord").fetchall()
        return [WrittenQuestion(r["id"], r["written_number"], r["written_title"], r["prompt"] or "",
                                r["written_points"],
                                tuple(sorted((i for i in items.values() if i.question == r["id"]),
                                             key=lambda i: i.ord)))
                for r in rows]

    def written_question(self, qid: str) -> WrittenQuestion:
        for q in self.written_questions():
            if q.id == qid:
                return q
        known = ", ".join(q.id for q in self.written_questions()) or "none"
        raise InvalidGrade(f"no written question {qid!r} in {self.path} (written questions: {known})")

    # ---------------------------------------------------------------- submissions

    def _anon_id(self, conn: sqlite3.Connection, student: str) -> str:
        salt = conn.execute("SELECT value FROM meta WHERE key = 'anon_salt'").fetchone()[0]
        digest = hashlib.sha256(f"{salt}\0{student}".encode("utf-8")).hexdigest()
        for width in range(6, 64):  # widen on the (unlikely) collision
            anon = "S-" + digest[:width].upper()
            row = conn.execute("SELECT id FROM student WHERE anon_id = ?", (anon,)).fetchone()
            if row is None or row["id"] == student:
                return anon
        raise AssertionError("anonymous id space exhausted")

    def reusable(self, student: str, content: str, key: str) -> Optional[SubmissionResult]:
        """The stored automatic results of ``student`` if graded from the same content under ``key``."""
        with self._lock:
            row = self._conn.execute(
                "SELECT results, results_version FROM submission WHERE student = ? AND content_hash = ? "
                "AND run_key = ?", (student, content, key)).fetchone()
        if row is None or row["results_version"] != RESULTS_JSON_VERSION:
            return None
        try:
            return SubmissionResult.from_json(json.loads(row["results"]))
        except ValueError:
            return None  # stored by another hwgrader build: grade again

    def store_result(self, result: SubmissionResult, content: str, key: str, *,
                     display_name: Optional[str] = None, lms_id: Optional[str] = None) -> None:
        """Record a freshly graded submission (replacing the student's previous one) and its answers."""
        data = result.to_json()
        blob = json.dumps(data, ensure_ascii=False, allow_nan=True)
        summary = json.dumps(_summary(data), ensure_ascii=False, allow_nan=True)
        with self._write() as conn:
            anon = self._anon_id(conn, result.student)
            conn.execute(
                """INSERT INTO student (id, anon_id, display_name, lms_id, present) VALUES (?, ?, ?, ?, 1)
                   ON CONFLICT (id) DO UPDATE SET present = 1, display_name = excluded.display_name,
                     lms_id = COALESCE(excluded.lms_id, student.lms_id)""",
                (result.student, anon, display_name or result.student, lms_id))
            conn.execute(
                """INSERT INTO submission (student, file, content_hash, run_key, results_version, results,
                     graded_at, summary) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (student) DO UPDATE SET file = excluded.file,
                     content_hash = excluded.content_hash, run_key = excluded.run_key,
                     results_version = excluded.results_version, results = excluded.results,
                     graded_at = excluded.graded_at, summary = excluded.summary""",
                (result.student, result.file, content, key, RESULTS_JSON_VERSION, blob, now(), summary))
            known = {r[0] for r in conn.execute("SELECT id FROM question")}
            for q in result.questions:
                if q.written is None or q.id not in known:
                    continue
                text = q.written.answer if (q.written.answer or "").strip() else None
                conn.execute(
                    """INSERT INTO answer VALUES (?, ?, ?, ?)
                       ON CONFLICT (student, question_id) DO UPDATE SET text = excluded.text,
                         text_hash = excluded.text_hash""",
                    (result.student, q.id, text, _text_hash(text)))

    def set_present(self, students: Iterable[str]) -> list[str]:
        """Mark exactly ``students`` as present (found by this run); returns those now absent.

        Absent students leave the class files; their submission and grades stay in the
        gradebook and come back if they do.
        """
        keep = set(students)
        with self._write() as conn:
            gone = [r[0] for r in conn.execute("SELECT id FROM student WHERE present = 1") if r[0] not in keep]
            conn.executemany("UPDATE student SET present = 0 WHERE id = ?", [(s,) for s in gone])
            conn.executemany("UPDATE student SET present = 1 WHERE id = ?", [(s,) for s in keep])
        return sorted(gone)

    def set_lms_ids(self, mapping: dict[str, str]) -> None:
        with self._write() as conn:
            conn.executemany("UPDATE student SET lms_id = ? WHERE id = ?", [(v, k) for k, v in mapping.items()])

    def students(self, *, include_absent: bool = False) -> list[StudentInfo]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT s.*, sub.file FROM student s JOIN submission sub ON sub.student = s.id "
                + ("" if include_absent else "WHERE s.present = 1 ") + "ORDER BY s.id").fetchall()
        return [StudentInfo(r["id"], r["anon_id"], r["display_name"], r["lms_id"], r["file"], bool(r["present"]))
                for r in rows]

    # ---------------------------------------------------------------- manual grades

    def _grade_from_row(self, row: sqlite3.Row, items: dict[int, RubricItem], max_points: float) -> Optional[ManualGrade]:
        if row["kind"] != "grade":
            return None
        applied = tuple(sorted((items[i] for i in json.loads(row["items"]) if i in items), key=lambda i: i.ord))
        raw = sum(i.points for i in applied) + row["adjustment"]
        score = round(min(max_points, max(0.0, raw)), 6)
        return ManualGrade(row["student"], row["question_id"], score, applied, row["adjustment"], row["comment"],
                           row["grader"], row["at"], row["id"], row["source"], row["answer_hash"])

    def _current(self, conn: sqlite3.Connection, *, student: Optional[str] = None,
                 question: Optional[str] = None) -> dict[tuple[str, str], ManualGrade]:
        items = self._items(conn)
        maxes = {r["id"]: r["written_points"] for r in
                 conn.execute("SELECT id, written_points FROM question WHERE written_points IS NOT NULL")}
        where, args = [], []
        if student is not None:
            where.append("e.student = ?"), args.append(student)
        if question is not None:
            where.append("e.question_id = ?"), args.append(question)
        sql = _LATEST_EVENTS + (" WHERE " + " AND ".join(where) if where else "")
        out = {}
        for row in conn.execute(sql, args):
            if row["question_id"] not in maxes:
                continue
            grade = self._grade_from_row(row, items, maxes[row["question_id"]])
            if grade is not None:
                out[(grade.student, grade.question)] = grade
        return out

    def current_grade(self, student: str, question: str) -> Optional[ManualGrade]:
        with self._read() as conn:
            return self._current(conn, student=student, question=question).get((student, question))

    def manual_grades(self) -> dict[tuple[str, str], ManualGrade]:
        """Every current manual grade, by (student, question)."""
        with self._read() as conn:
            return self._current(conn)

    def answers(self, question: str) -> list[Answer]:
        """Every present student's answer to ``question``, in a stable pseudo-random order (anon id)."""
        self.written_question(question)
        with self._read() as conn:
            grades = self._current(conn, question=question)
            rows = conn.execute(
                "SELECT s.id, s.anon_id, s.display_name, a.text FROM answer a JOIN student s ON s.id = a.student "
                "WHERE a.question_id = ? AND s.present = 1 ORDER BY s.anon_id", (question,)).fetchall()
        return [Answer(r["id"], r["anon_id"], r["display_name"], question, r["text"], grades.get((r["id"], question)))
                for r in rows]

    def answer(self, student: str, question: str) -> Answer:
        self.written_question(question)
        with self._read() as conn:
            row = conn.execute(
                "SELECT s.id, s.anon_id, s.display_name, a.text FROM answer a JOIN student s ON s.id = a.student "
                "WHERE a.question_id = ? AND s.id = ?", (question, student)).fetchone()
            if row is None:
                raise InvalidGrade(f"no student {student!r} with an answer to {question} in {self.path}")
            grade = self._current(conn, student=student, question=question).get((student, question))
        return Answer(row["id"], row["anon_id"], row["display_name"], question, row["text"], grade)

    def record_grade(self, student: str, question: str, *, grader: str, items: Sequence[int] = (),
                     adjustment: float = 0.0, comment: str = "", source: str = "ui",
                     expected_event: Optional[int] = None) -> ManualGrade:
        """Append a grade event: the applied item ids, a points adjustment and a comment."""
        grader = (grader or "").strip()
        if not grader:
            raise InvalidGrade("a grade needs the grader's name")
        try:
            adjustment = float(adjustment)
        except (TypeError, ValueError):
            raise InvalidGrade(f"adjustment must be a number, got {adjustment!r}") from None
        if not math.isfinite(adjustment):
            raise InvalidGrade(f"adjustment must be a finite number, got {adjustment!r}")
        comment = comment or ""
        if len(comment) > MAX_COMMENT_CHARS:
            raise InvalidGrade(f"comment is {len(comment)} characters; at most {MAX_COMMENT_CHARS}")
        wq = self.written_question(question)
        valid = {i.id for i in wq.items}
        item_ids = sorted(set(int(i) for i in items))
        bad = [i for i in item_ids if i not in valid]
        if bad:
            raise InvalidGrade(f"rubric item(s) {bad} are not items of {question} "
                               f"(items: {sorted(valid)})")
        with self._write() as conn:
            row = conn.execute("SELECT a.text_hash FROM answer a JOIN student s ON s.id = a.student "
                               "WHERE a.student = ? AND a.question_id = ?", (student, question)).fetchone()
            if row is None:
                raise InvalidGrade(f"no student {student!r} with an answer to {question} in {self.path}")
            self._check_expected(conn, student, question, expected_event)
            at = now()
            cur = conn.execute(
                "INSERT INTO grade_event (student, question_id, at, grader, kind, items, adjustment, comment, "
                "source, answer_hash) VALUES (?, ?, ?, ?, 'grade', ?, ?, ?, ?, ?)",
                (student, question, at, grader, json.dumps(item_ids), adjustment, comment, source, row["text_hash"]))
            if comment.strip():
                conn.execute(
                    """INSERT INTO comment_bank (question_id, text, uses, last_used) VALUES (?, ?, 1, ?)
                       ON CONFLICT (question_id, text) DO UPDATE SET uses = uses + 1, last_used = excluded.last_used""",
                    (question, comment.strip(), at))
            event = conn.execute("SELECT * FROM grade_event WHERE id = ?", (cur.lastrowid,)).fetchone()
            return self._grade_from_row(event, self._items(conn), wq.max_points)

    def clear_grade(self, student: str, question: str, *, grader: str, source: str = "ui",
                    expected_event: Optional[int] = None) -> None:
        """Back to "not graded" (recorded as an event; the history keeps the earlier grades)."""
        grader = (grader or "").strip()
        if not grader:
            raise InvalidGrade("clearing a grade needs the grader's name")
        self.written_question(question)
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM answer WHERE student = ? AND question_id = ?",
                            (student, question)).fetchone() is None:
                raise InvalidGrade(f"no student {student!r} with an answer to {question} in {self.path}")
            self._check_expected(conn, student, question, expected_event)
            conn.execute(
                "INSERT INTO grade_event (student, question_id, at, grader, kind, items, adjustment, comment, "
                "source, answer_hash) VALUES (?, ?, ?, ?, 'clear', '[]', 0, '', ?, NULL)",
                (student, question, now(), grader, source))

    @staticmethod
    def _check_expected(conn: sqlite3.Connection, student: str, question: str, expected: Optional[int]) -> None:
        if expected is None:
            return
        last = conn.execute("SELECT MAX(id) FROM grade_event WHERE student = ? AND question_id = ?",
                            (student, question)).fetchone()[0]
        if (last or 0) != expected:
            raise GradeConflict(f"{student} {question} was graded by someone else meanwhile "
                                f"(latest event {last}, expected {expected}); reload and try again")

    def history(self, student: str, question: str) -> list[GradeEvent]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM grade_event WHERE student = ? AND question_id = ? ORDER BY id",
                                      (student, question)).fetchall()
        return [GradeEvent(r["id"], r["student"], r["question_id"], r["at"], r["grader"], r["kind"],
                           tuple(json.loads(r["items"])), r["adjustment"], r["comment"], r["source"]) for r in rows]

    # ---------------------------------------------------------------- comment bank

    def comments(self, question: str) -> list[BankComment]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM comment_bank WHERE question_id = ? "
                                      "ORDER BY uses DESC, last_used DESC, id", (question,)).fetchall()
        return [BankComment(r["id"], r["question_id"], r["text"], r["uses"], r["last_used"]) for r in rows]

    def add_comment(self, question: str, text: str) -> BankComment:
        text = (text or "").strip()
        if not text:
            raise InvalidGrade("an empty comment cannot go in the comment bank")
        if len(text) > MAX_COMMENT_CHARS:
            raise InvalidGrade(f"comment is {len(text)} characters; at most {MAX_COMMENT_CHARS}")
        self.written_question(question)
        with self._write() as conn:
            conn.execute("INSERT INTO comment_bank (question_id, text) VALUES (?, ?) "
                         "ON CONFLICT (question_id, text) DO NOTHING", (question, text))
            r = conn.execute("SELECT * FROM comment_bank WHERE question_id = ? AND text = ?", (question, text)).fetchone()
        return BankComment(r["id"], r["question_id"], r["text"], r["uses"], r["last_used"])

    # ---------------------------------------------------------------- progress and results

    def progress(self) -> dict[str, Progress]:
        """Per written question: how many present students' answers have a current grade."""
        with self._read() as conn:
            grades = self._current(conn)
            present = [r[0] for r in conn.execute(
                "SELECT s.id FROM student s JOIN submission sub ON sub.student = s.id WHERE s.present = 1")]
            qids = [r[0] for r in conn.execute("SELECT id FROM question WHERE written_points IS NOT NULL ORDER BY ord")]
        return {q: Progress(q, sum((s, q) in grades for s in present), len(present)) for q in qids}

    def result(self, student: str) -> SubmissionResult:
        with self._read() as conn:
            row = conn.execute("SELECT results FROM submission WHERE student = ?", (student,)).fetchone()
            if row is None:
                raise GradebookError(f"{self.path}: no submission of {student!r}")
            grades = self._current(conn, student=student)
            hashes = self._answer_hashes(conn, student)
        return apply_manual(self._load(row["results"]), grades, hashes)

    def with_manual(self, result: SubmissionResult) -> SubmissionResult:
        """A result just stored (``store_result``), with its student's current manual grades:
        what ``result(student)`` reads back, without decoding it again (in place; returns it)."""
        with self._read() as conn:
            grades = self._current(conn, student=result.student)
            hashes = self._answer_hashes(conn, result.student)
        return apply_manual(result, grades, hashes)

    def results(self, *, light: bool = False) -> list[SubmissionResult]:
        """Every present student's results, automatic + manual, sorted by student.

        ``light``: without the public cases' arrays and the printed output (what the class
        files need; about a tenth of the reading for a big class).
        """
        column = "COALESCE(sub.summary, sub.results)" if light else "sub.results"
        with self._read() as conn:
            rows = conn.execute(f"SELECT sub.student, {column} AS results FROM submission sub JOIN student s "
                                "ON s.id = sub.student WHERE s.present = 1 ORDER BY sub.student").fetchall()
            grades = self._current(conn)
            hashes = self._answer_hashes(conn)
        return [apply_manual(self._load(r["results"]), grades, hashes) for r in rows]

    def _load(self, text: str) -> SubmissionResult:
        try:
            return SubmissionResult.from_json(json.loads(text))
        except ValueError as exc:
            raise GradebookError(f"{self.path}: {exc}; grade the submissions again with this hwgrader "
                                 f"(`hwgrader grade SOURCE --out {self.path.parent}`)") from None

    @staticmethod
    def _answer_hashes(conn: sqlite3.Connection, student: Optional[str] = None) -> dict[tuple[str, str], Optional[str]]:
        sql, args = "SELECT student, question_id, text_hash FROM answer", ()
        if student is not None:
            sql, args = sql + " WHERE student = ?", (student,)
        return {(r[0], r[1]): r[2] for r in conn.execute(sql, args)}


def _summary(data: dict) -> dict:
    """The JSON form of a result without arrays, inputs and printed output (see ``results(light=True)``)."""
    light = {**data, "output": "", "questions": []}
    for q in data["questions"]:
        cases = [{**c, "inputs": None, "traceback": None,
                  "outputs": [{**o, "expected": None, "got": None, "mismatch": None} for o in c["outputs"]]}
                 for c in q["cases"]]
        light["questions"].append({**q, "cases": cases})
    return light


def apply_manual(result: SubmissionResult, grades: dict[tuple[str, str], ManualGrade],
                 answer_hashes: Optional[dict[tuple[str, str], Optional[str]]] = None) -> SubmissionResult:
    """Fill ``result``'s written parts from the current manual grades (in place; returns it)."""
    for q in result.questions:
        w = q.written
        if w is None:
            continue
        g = grades.get((result.student, q.id))
        if g is None:
            w.score, w.graded, w.items, w.adjustment, w.comment, w.grader = 0.0, False, [], 0.0, "", ""
            w.answer_changed = False
            continue
        w.score, w.graded = g.score, True
        w.items = [AppliedItem(i.label, i.points) for i in g.items]
        w.adjustment, w.comment, w.grader = g.adjustment, g.comment, g.grader
        current = (answer_hashes or {}).get((result.student, q.id), g.answer_hash)
        w.answer_changed = current != g.answer_hash
    return result
