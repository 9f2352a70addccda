"""The gradebook as users meet it: `grade` re-runs, `manual export/import`, `export --format`, on real batches.

Every test starts from one real batch graded by the CLI (``python -m grader grade SUBS --out OUT``)
and copies it, so the sandboxed grading runs once per module plus the re-runs a test is about.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "submissions"
RUBRIC = ROOT / "rubrics" / "homework.yaml"


def hwgrader(*args, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def grades(out: Path) -> dict[str, dict[str, str]]:
    with (out / "grades.csv").open(encoding="utf-8", newline="") as fh:
        return {r["student"]: r for r in csv.DictReader(fh)}


def results(out: Path, student: str) -> dict:
    return json.loads((out / student / "results.json").read_text(encoding="utf-8"))


def manual_test(out: Path, student: str, qid: str) -> dict:
    return next(t for t in results(out, student)["tests"] if "manual" in t["tags"] and t["number"].startswith(qid + "."))


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return path


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Three students graded once: a correct one, one with a mistake, one whose file does not parse."""
    base = tmp_path_factory.mktemp("gradebook-batch")
    subs = base / "subs"
    subs.mkdir()
    shutil.copy(EXAMPLES / "correct_module.py", subs / "alice.py")
    shutil.copy(EXAMPLES / "mistake_q1_unbiased_variance_forward.py", subs / "bob.py")
    shutil.copy(EXAMPLES / "syntax_error.py", subs / "carol.py")
    out = base / "out"
    proc = hwgrader("grade", subs, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Graded 3 submission(s), reused 0 unchanged" in proc.stdout
    return subs, out


@pytest.fixture
def work(batch, tmp_path):
    """A private copy of the graded batch (submissions and --out)."""
    subs, out = batch
    shutil.copytree(subs, tmp_path / "subs")
    shutil.copytree(out, tmp_path / "out")
    return tmp_path / "subs", tmp_path / "out"


def test_first_run_shows_written_points_as_pending(batch):
    _, out = batch
    g = grades(out)
    assert list(g["alice"]) == ["student", "q1", "q2", "q3", "q4", "q5", "total", "pending"]
    assert (g["alice"]["total"], g["alice"]["pending"]) == ("88", "12")
    test = manual_test(out, "alice", "q1")
    assert test["status"] == "passed" and test["score"] == 0 and "pending" in test["tags"]
    assert test["output"].startswith("pending: waiting for a grader")
    assert (out / "gradebook.sqlite").is_file()
    html = (out / "alice" / "report.html").read_text(encoding="utf-8")
    assert "pending: waiting for a grader" in html
    index = (out / "index.html").read_text(encoding="utf-8")
    assert re.search(r'id="written-progress".*?0 of 3 graded', index, re.S)


def test_rerun_after_editing_one_submission_regrades_only_it_and_keeps_every_manual_grade(work, tmp_path):
    subs, out = work
    sheet = write_csv(tmp_path / "grades.csv", [["student", "question", "points", "comment"],
                                                ["alice", "q1", "5", "清楚, but mention the running averages"],
                                                ["bob", "q2", "4.5", ""],
                                                ["carol", "q1", "0", "no answer"]])
    assert hwgrader("manual", "import", out, sheet).returncode == 0
    before = grades(out)
    assert (before["alice"]["q1"], before["alice"]["total"], before["alice"]["pending"]) == ("19", "93", "6")

    # bob fixes his variance: only bob is graded again
    fixed = (EXAMPLES / "correct_module.py").read_text(encoding="utf-8")
    (subs / "bob.py").write_text(fixed + "\n# fixed\n", encoding="utf-8")
    proc = hwgrader("grade", subs, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "Graded 1 submission(s), reused 2 unchanged" in proc.stdout
    after = grades(out)
    assert after["alice"] == before["alice"]
    assert after["carol"] == before["carol"]
    assert float(after["bob"]["q1"]) > float(before["bob"]["q1"])   # bob's new code counts...
    assert after["bob"]["q2"] == "18.5"                              # ...and so does his q2 grade (14 + 4.5)
    assert manual_test(out, "bob", "q2")["score"] == 4.5
    assert manual_test(out, "alice", "q1")["score"] == 5

    # nothing changed: everything reused
    proc = hwgrader("grade", subs, "--out", out)
    assert "Graded 0 submission(s), reused 3 unchanged" in proc.stdout
    assert grades(out) == after


def test_a_removed_submission_leaves_the_class_files_and_comes_back_with_its_grade(work, tmp_path):
    subs, out = work
    sheet = write_csv(tmp_path / "g.csv", [["student", "question", "points", "comment"], ["carol", "q1", "2", ""]])
    assert hwgrader("manual", "import", out, sheet).returncode == 0
    moved = tmp_path / "carol.py"
    shutil.move(subs / "carol.py", moved)
    proc = hwgrader("grade", subs, "--out", out)
    assert proc.returncode == 0, proc.stderr
    assert "reused 2 unchanged, 1 no longer found (kept in the gradebook)" in proc.stdout
    assert set(grades(out)) == {"alice", "bob"}
    assert "carol" not in (out / "index.html").read_text(encoding="utf-8")
    shutil.move(moved, subs / "carol.py")
    proc = hwgrader("grade", subs, "--out", out)
    assert "reused 3 unchanged" in proc.stdout
    assert grades(out)["carol"]["q1"] == "2"


def test_a_rubric_change_regrades_everyone_and_keeps_the_grades(work, tmp_path):
    subs, out = work
    sheet = write_csv(tmp_path / "g.csv", [["student", "question", "points", "comment"], ["alice", "q2", "6", ""]])
    assert hwgrader("manual", "import", out, sheet).returncode == 0
    text = RUBRIC.read_text(encoding="utf-8")
    edited = text.replace("Mentions the distinction with the batch mean/variance",
                          "Distinguishes them from the batch mean/variance")
    edited = re.sub(r"(?m)^reference:.*$", f"reference: {(RUBRIC.parent / '../reference').resolve()}", edited, count=1)
    assert edited != text
    rubric = tmp_path / "homework.yaml"
    rubric.write_text(edited, encoding="utf-8")
    proc = hwgrader("grade", subs, "--out", out, "--rubric", rubric)
    assert proc.returncode == 0, proc.stderr
    assert "Graded 3 submission(s), reused 0 unchanged" in proc.stdout
    assert grades(out)["alice"]["q2"] == "20"
    assert "Distinguishes them from the batch mean/variance" in (out / "alice" / "report.html").read_text("utf-8")


def test_manual_import_with_one_bad_row_changes_nothing_and_names_it(work, tmp_path):
    _, out = work
    before = {p: p.read_bytes() for p in [out / "grades.csv", out / "alice" / "results.json",
                                          out / "alice" / "report.html", out / "index.html"]}
    events = _events(out)
    sheet = write_csv(tmp_path / "bad.csv", [["student", "question", "points", "comment"],
                                             ["alice", "q1", "5", "good"],
                                             ["bob", "q2", "7", "too many"],      # line 3: max is 6
                                             ["carol", "q1", "1", ""]])
    proc = hwgrader("manual", "import", out, sheet)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"hwgrader: error: {sheet}: line 3 (bob, q2): points 7 outside 0..6; nothing was imported"
    assert {p: p.read_bytes() for p in before} == before
    assert _events(out) == events

    for row, message in [(["mallory", "q1", "1", ""], "line 2 (mallory, q1): unknown student 'mallory'"),
                         (["alice", "q3", "1", ""], "line 2 (alice, q3): unknown question 'q3'"),
                         (["alice", "q1", "five", ""], "line 2 (alice, q1): points 'five' is not a number"),
                         (["alice", "q1", "-1", ""], "line 2 (alice, q1): points -1 outside 0..6")]:
        proc = hwgrader("manual", "import", out, write_csv(tmp_path / "one.csv", [["student", "question", "points", "comment"], row]))
        assert proc.returncode == 2 and message in proc.stderr, (row, proc.stderr)
    dup = write_csv(tmp_path / "dup.csv", [["student", "question", "points", "comment"],
                                           ["alice", "q1", "1", ""], ["alice", "q1", "2", ""]])
    proc = hwgrader("manual", "import", out, dup)
    assert proc.returncode == 2 and "line 3 (alice, q1): duplicate of line 2" in proc.stderr
    assert _events(out) == events


def _events(out: Path) -> list[tuple]:
    conn = sqlite3.connect(out / "gradebook.sqlite")
    try:
        return conn.execute("SELECT * FROM grade_event ORDER BY id").fetchall()
    finally:
        conn.close()


def test_a_good_import_updates_every_output_and_round_trips(work, tmp_path):
    _, out = work
    exported = tmp_path / "export.csv"
    proc = hwgrader("manual", "export", out, exported)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader(exported.open(encoding="utf-8-sig", newline="")))
    assert rows[0] == ["student", "question", "points", "comment"]
    assert sorted((r[0], r[1], r[2]) for r in rows[1:]) == sorted(
        (s, q, "") for s in ("alice", "bob", "carol") for q in ("q1", "q2"))
    # the grader fills in the sheet (a formula-looking comment stays text)
    filled = [rows[0]] + [[s, q, {"q1": "4", "q2": "6"}[q] if s == "alice" else p,
                           "=SUM(A1) 公式 ok" if (s, q) == ("alice", "q1") else c] for s, q, p, c in rows[1:]]
    write_csv(exported, filled)
    proc = hwgrader("manual", "import", out, exported, "--grader", "ta-lin")
    assert proc.returncode == 0, proc.stderr
    assert "2 grade(s) changed" in proc.stdout
    g = grades(out)["alice"]
    assert (g["q1"], g["q2"], g["total"], g["pending"]) == ("18", "20", "98", "0")
    test = manual_test(out, "alice", "q1")
    assert test["score"] == 4 and "graded" in test["tags"] and "Comment: =SUM(A1) 公式 ok" in test["output"]
    assert results(out, "alice")["score"] == 98
    html = (out / "alice" / "report.html").read_text(encoding="utf-8")
    assert 'class="written-score">4 / 6<' in html and "=SUM(A1) 公式 ok" in html
    assert re.search(r'id="written-progress".*?1 of 3 graded', (out / "index.html").read_text("utf-8"), re.S)
    # export again: the formula is defused in the sheet, and importing it back changes nothing
    again = tmp_path / "again.csv"
    assert hwgrader("manual", "export", out, again).returncode == 0
    assert "'=SUM(A1) 公式 ok" in again.read_text(encoding="utf-8-sig")
    proc = hwgrader("manual", "import", out, again)
    assert proc.returncode == 0 and "0 grade(s) changed, 2 unchanged" in proc.stdout
    history = [e for e in _events(out) if e[1] == "alice"]
    assert len(history) == 2 and {e[4] for e in history} == {"ta-lin"}


CANVAS_SPEC = """
Canvas (OSU's CarmenCanvas guide, "Import CSV File for Carmen Grades"): "The CSV file you import
into Carmen has four required components: Student Name (last name, first name) OR Student ID OR
Student SIS User ID, represented by columns A-C below. Only one of these three fields is required.
SIS Login ID (e.g. OSU ID number), represented by column D below. Section, represented by column E
below. Assignment Name, represented by column F below." Canvas's own gradebook export has the
header Student, ID, SIS User ID, SIS Login ID, Section, <assignments...> and a second row whose
first cell is "Points Possible".
"""


def test_canvas_export_has_the_columns_canvas_imports(work, tmp_path):
    _, out = work
    proc = hwgrader("export", out, "--format", "canvas")
    assert proc.returncode == 2 and "3 student(s) have no canvas id" in proc.stderr and "--roster" in proc.stderr
    roster = write_csv(tmp_path / "roster.csv", [["student", "lms_id", "name", "sis_login_id", "section"],
                                                 ["alice", "1001", "Liddell, Alice", "aliddell", "A"],
                                                 ["bob.py", "1002", "Builder, Bob", "bbuilder", "A"],
                                                 ["carol", "1003", "=HYPERLINK(1)", "", "B"]])
    target = tmp_path / "canvas.csv"
    proc = hwgrader("export", out, "--format", "canvas", "--roster", roster, "--out", target,
                    "--assignment", "Homework 3 (4711)")
    assert proc.returncode == 0, proc.stderr
    assert "written answers nobody graded" in proc.stderr
    rows = list(csv.reader(target.open(encoding="utf-8", newline="")))
    # the spec followed (CANVAS_SPEC): five identity columns, then the assignment; then Points Possible
    assert rows[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "Homework 3 (4711)"]
    assert rows[1][0].strip() == "Points Possible" and rows[1][5] == "100"
    body = {r[1]: r for r in rows[2:]}
    assert body["1001"] == ["Liddell, Alice", "1001", "", "aliddell", "A", "88"]
    assert body["1002"][0] == "Builder, Bob" and float(body["1002"][5]) < 88
    assert body["1003"][0] == "'=HYPERLINK(1)" and body["1003"][5] == "0"


def test_moodle_export_is_a_grading_worksheet(work, tmp_path):
    _, out = work
    roster = write_csv(tmp_path / "roster.csv", [["student", "lms_id", "name", "email"],
                                                 ["alice", "17", "Alice Liddell", "alice@example.org"],
                                                 ["bob", "18", "Bob", ""], ["carol", "19", "Carol", ""]])
    sheet = write_csv(tmp_path / "g.csv", [["student", "question", "points", "comment"], ["alice", "q1", "6", "<b>很好</b>"]])
    assert hwgrader("manual", "import", out, sheet).returncode == 0
    proc = hwgrader("export", out, "--format", "moodle", "--roster", roster)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((out / "moodle-grades.csv").open(encoding="utf-8", newline="")))
    # mod/assign/feedback/offline/importgradeslib.php needs Identifier ("Participant N"), Grade, Last modified (grade)
    alice = next(r for r in rows if r["Identifier"] == "Participant 17")
    assert alice["Grade"] == "94" and alice["Maximum Grade"] == "100" and alice["Last modified (grade)"]
    assert "&lt;b&gt;很好&lt;/b&gt;" in alice["Feedback comments"]


def test_a_damaged_gradebook_stops_every_command_with_exit_2_and_is_kept(work, tmp_path):
    subs, out = work
    book = out / "gradebook.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(str(book) + suffix).unlink(missing_ok=True)
    book.write_bytes(b"\x00garbage, not SQLite\n" * 300)
    damaged = book.read_bytes()
    for args in (["grade", subs, "--out", out], ["manual", "export", out, tmp_path / "x.csv"],
                 ["export", out, "--format", "canvas"]):
        proc = hwgrader(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith(f"hwgrader: error: {book}: ") and len(proc.stderr.strip().splitlines()) == 1
    assert book.read_bytes() == damaged
    proc = hwgrader("manual", "export", tmp_path / "nothing-here", tmp_path / "x.csv")
    assert proc.returncode == 2 and "no gradebook here" in proc.stderr
