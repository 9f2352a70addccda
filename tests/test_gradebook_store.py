"""The gradebook store (grader/gradebook/store.py): its API as serve, the CLI and the writers use it."""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import replace

import numpy as np
import pytest

from grader.assignment.plan import Plan, PlannedQuestion
from grader.assignment.rubric import Written
from grader.errors import GradebookError
from grader.gradebook.store import (
    GRADEBOOK_FILE,
    SCHEMA_VERSION,
    GradeConflict,
    Gradebook,
    InvalidGrade,
    parse_criterion,
)
from grader.grading.results import (
    RESULTS_JSON_VERSION,
    CaseResult,
    OutputCheck,
    QuestionResult,
    SubmissionResult,
    WrittenResult,
)
from grader.sandbox.launch import Limits

CRITERIA = ("States the idea (2 points)", "Gives the formula (3 points)", "Writes clearly")


def make_plan(criteria=CRITERIA, written_points=5.0) -> Plan:
    q1 = PlannedQuestion("q1", "Batch norm", 10.0 + written_points,
                         Written(written_points, "ANSWER_Q1", "Why?", tuple(criteria)), ())
    q3 = PlannedQuestion("q3", "SVM", 10.0, None, ())
    return Plan("Test homework", Limits(), (q1, q3))


def make_result(student: str, answer: str | None = "γ and β 是可學習的參數") -> SubmissionResult:
    case = CaseResult("q1", "forward", "small", "q1.1", "batchnorm_forward", "public", 10.0, 7.5, "wrong",
                      "'out' is wrong", outputs=[OutputCheck("out", False, "wrong", np.ones((2, 2)),
                                                             np.array([[1.0, np.nan], [2.0, 3.0]]),
                                                             np.array([[False, True], [True, True]]), (0, 1), 1.0)],
                      inputs={"x": np.arange(4.0).reshape(2, 2), "eps": 1e-5})
    written = WrittenResult("q1", "q1.2", "Batch norm: written answer", "Why?", list(CRITERIA), 5.0, answer)
    return SubmissionResult(student, f"{student}.py", "bwrap",
                            questions=[QuestionResult("q1", "Batch norm", 15.0, [case], written),
                                       QuestionResult("q3", "SVM", 10.0, [])])


@pytest.fixture
def gb(tmp_path):
    book = Gradebook.open(tmp_path, create=True)
    book.sync_plan(make_plan())
    for name in ("alice", "bob", "學生_1"):
        book.store_result(make_result(name), content=f"hash-{name}", key="key-1")
    yield book
    book.close()


def test_criteria_become_rubric_items_with_signed_points():
    assert parse_criterion("Mentions X (2 points)") == ("Mentions X", 2.0)
    assert parse_criterion("Forgets the KL term (-1 point)") == ("Forgets the KL term", -1.0)
    assert parse_criterion("說明清楚 (0.5 分)") == ("說明清楚", 0.5)
    assert parse_criterion("Feedback only") == ("Feedback only", 0.0)


def test_questions_items_students_and_answers(gb):
    assert [q.id for q in gb.questions()] == ["q1", "q3"]
    (wq,) = gb.written_questions()
    assert (wq.id, wq.number, wq.max_points, wq.prompt) == ("q1", "q1.1", 5.0, "Why?")  # the plan has no code case
    assert [(i.ord, i.label, i.points) for i in wq.items] == [
        (1, "States the idea", 2.0), (2, "Gives the formula", 3.0), (3, "Writes clearly", 0.0)]
    students = gb.students()
    assert sorted(s.id for s in students) == ["alice", "bob", "學生_1"]
    assert all(s.anon_id.startswith("S-") and s.anon_id != s.id for s in students)
    answers = gb.answers("q1")
    # stable pseudo-random order: by anonymous id, not by name
    assert [a.anon_id for a in answers] == sorted(a.anon_id for a in answers)
    assert {a.text for a in answers} == {"γ and β 是可學習的參數"}
    assert all(a.grade is None for a in answers)
    assert gb.title == "Test homework"


def test_grade_is_computed_from_the_latest_event_and_clamped(gb):
    items = {i.ord: i.id for i in gb.written_question("q1").items}
    g = gb.record_grade("alice", "q1", grader="ta1", items=[items[1], items[2]], adjustment=-0.5,
                        comment="公式正確 but say why")
    assert g.score == 4.5 and [i.label for i in g.items] == ["States the idea", "Gives the formula"]
    assert gb.current_grade("alice", "q1").score == 4.5
    # above the maximum is clamped to it, below 0 to 0
    assert gb.record_grade("alice", "q1", grader="ta2", items=[items[1], items[2]], adjustment=3).score == 5.0
    assert gb.record_grade("alice", "q1", grader="ta2", adjustment=-7).score == 0.0
    history = gb.history("alice", "q1")
    assert [(e.grader, e.adjustment) for e in history] == [("ta1", -0.5), ("ta2", 3.0), ("ta2", -7.0)]
    gb.clear_grade("alice", "q1", grader="ta1")
    assert gb.current_grade("alice", "q1") is None
    assert len(gb.history("alice", "q1")) == 4 and gb.history("alice", "q1")[-1].kind == "clear"


def test_progress_and_results_carry_manual_grades(gb):
    items = [i.id for i in gb.written_question("q1").items]
    gb.record_grade("bob", "q1", grader="ta1", items=items[:1], comment="ok")
    assert gb.progress()["q1"].graded == 1 and gb.progress()["q1"].total == 3
    assert str(gb.progress()["q1"]) == "1 of 3 graded"
    bob = gb.result("bob")
    w = bob.question("q1").written
    assert (w.graded, w.score, w.comment, w.grader) == (True, 2.0, "ok", "ta1")
    assert [(i.label, i.points) for i in w.items] == [("States the idea", 2.0)]
    assert bob.score == 7.5 + 2.0 and bob.pending == 0
    alice = next(r for r in gb.results() if r.student == "alice")
    assert alice.pending == 5.0 and not alice.question("q1").written.graded
    # numpy values survive the JSON round trip
    got = bob.question("q1").cases[0].outputs[0].got
    assert got.shape == (2, 2) and np.isnan(got[0, 1]) and got[1, 1] == 3.0


def test_comment_bank_counts_reuse(gb):
    gb.add_comment("q1", "Explain why β is learned")
    gb.record_grade("alice", "q1", grader="ta1", comment="Missing the formula")
    gb.record_grade("bob", "q1", grader="ta1", comment="Missing the formula")
    bank = gb.comments("q1")
    assert [(c.text, c.uses) for c in bank] == [("Missing the formula", 2), ("Explain why β is learned", 0)]
    with pytest.raises(InvalidGrade):
        gb.add_comment("q1", "   ")


def test_bad_grades_are_refused_with_a_reason(gb):
    with pytest.raises(InvalidGrade, match="not items of q1"):
        gb.record_grade("alice", "q1", grader="ta1", items=[9999])
    with pytest.raises(InvalidGrade, match="no student 'mallory'"):
        gb.record_grade("mallory", "q1", grader="ta1")
    with pytest.raises(InvalidGrade, match="no written question 'q3'"):
        gb.record_grade("alice", "q3", grader="ta1")
    with pytest.raises(InvalidGrade, match="finite"):
        gb.record_grade("alice", "q1", grader="ta1", adjustment=float("nan"))
    with pytest.raises(InvalidGrade, match="grader"):
        gb.record_grade("alice", "q1", grader=" ")
    assert gb.history("alice", "q1") == []


def test_concurrent_edit_is_detected(gb):
    first = gb.record_grade("alice", "q1", grader="ta1", adjustment=1)
    gb.record_grade("alice", "q1", grader="ta2", adjustment=2, expected_event=first.event_id)
    with pytest.raises(GradeConflict):
        gb.record_grade("alice", "q1", grader="ta1", adjustment=3, expected_event=first.event_id)
    assert gb.current_grade("alice", "q1").adjustment == 2


def test_a_failed_transaction_changes_nothing(gb):
    with pytest.raises(InvalidGrade):
        with gb.transaction():
            gb.record_grade("alice", "q1", grader="ta1", adjustment=1)
            gb.record_grade("mallory", "q1", grader="ta1", adjustment=1)
    assert gb.history("alice", "q1") == []


def test_events_are_append_only(gb, tmp_path):
    gb.record_grade("alice", "q1", grader="ta1", adjustment=1)
    conn = sqlite3.connect(tmp_path / GRADEBOOK_FILE)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE grade_event SET adjustment = 5")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM grade_event")
    conn.close()


def test_rubric_edits_rescore_but_never_drop_a_grade(gb):
    before = {i.ord: i.id for i in gb.written_question("q1").items}
    gb.record_grade("alice", "q1", grader="ta1", items=[before[1], before[2]])
    assert gb.current_grade("alice", "q1").score == 5.0
    # the formula item is now worth 2 points and the first item is reworded: same items, re-scored
    gb.sync_plan(make_plan(("States the idea clearly (2 points)", "Gives the formula (2 points)", "Writes clearly")))
    after = {i.ord: i.id for i in gb.written_question("q1").items}
    assert after == before
    assert gb.current_grade("alice", "q1").score == 4.0
    # an item removed from the rubric stops counting; the grade itself stays
    gb.sync_plan(make_plan(("Gives the formula (2 points)", "Writes clearly")))
    grade = gb.current_grade("alice", "q1")
    assert grade.score == 2.0 and [i.label for i in grade.items] == ["Gives the formula"]


def test_reuse_needs_same_content_and_key(gb):
    assert gb.reusable("alice", "hash-alice", "key-1").questions[0].cases[0].score == 7.5
    assert gb.reusable("alice", "hash-alice", "key-2") is None
    assert gb.reusable("alice", "other", "key-1") is None


def test_an_edited_answer_keeps_its_grade_and_is_flagged(gb):
    gb.record_grade("alice", "q1", grader="ta1", adjustment=4)
    gb.store_result(make_result("alice", answer="a new answer"), content="hash-2", key="key-1")
    answer = gb.answer("alice", "q1")
    assert answer.grade.score == 4 and answer.changed_since_graded
    assert gb.result("alice").question("q1").written.answer_changed


def test_absent_students_leave_the_class_but_keep_their_grades(gb):
    gb.record_grade("bob", "q1", grader="ta1", adjustment=4)
    assert gb.set_present(["alice", "學生_1"]) == ["bob"]
    assert "bob" not in {r.student for r in gb.results()}
    assert gb.progress()["q1"].total == 2
    assert gb.set_present(["alice", "bob", "學生_1"]) == []   # back, with the same submission
    assert gb.result("bob").question("q1").written.score == 4 and gb.progress()["q1"].total == 3


def test_two_processes_worth_of_writers(tmp_path, gb):
    other = Gradebook.open(tmp_path)
    errors = []

    def grade(book, student, n):
        try:
            for i in range(n):
                book.record_grade(student, "q1", grader="ta", adjustment=i % 5)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=grade, args=(b, s, 40)) for b, s in ((gb, "alice"), (other, "bob"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other.close()
    assert errors == []
    assert len(gb.history("alice", "q1")) == 40 and len(gb.history("bob", "q1")) == 40


def test_damaged_or_foreign_files_are_named_and_left_alone(tmp_path):
    path = tmp_path / GRADEBOOK_FILE
    path.write_bytes(b"this is not a database at all\n" * 100)
    before = path.read_bytes()
    with pytest.raises(GradebookError, match=str(path)):
        Gradebook.open(tmp_path, create=True)
    assert path.read_bytes() == before

    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE notes (x)")
    conn.commit()
    conn.close()
    with pytest.raises(GradebookError, match="not an hwgrader gradebook"):
        Gradebook.open(tmp_path, create=True)

    path.unlink()
    with pytest.raises(GradebookError, match="no gradebook here"):
        Gradebook.open(tmp_path)


def test_a_truncated_gradebook_is_refused(tmp_path, gb):
    gb.record_grade("alice", "q1", grader="ta1", adjustment=1)
    gb.close()
    path = tmp_path / GRADEBOOK_FILE
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(GradebookError, match=str(path)):
        Gradebook.open(tmp_path)


def test_a_newer_schema_is_refused(tmp_path, gb):
    gb.close()
    conn = sqlite3.connect(tmp_path / GRADEBOOK_FILE)
    conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(GradebookError, match="newer hwgrader"):
        Gradebook.open(tmp_path)


def test_results_json_form_round_trips():
    r = make_result("alice")
    data = json.loads(json.dumps(r.to_json()))
    back = SubmissionResult.from_json(data)
    assert back.to_json() == json.loads(json.dumps(r.to_json())) or \
        json.dumps(back.to_json()) == json.dumps(data)
    with pytest.raises(ValueError, match="version"):
        SubmissionResult.from_json({**data, "version": 0})
    assert replace(back, student="x").questions[0].cases[0].inputs["eps"] == 1e-5


def test_a_version_1_file_is_migrated_and_keeps_its_data(tmp_path):
    from grader.gradebook.store import APPLICATION_ID, MIGRATIONS

    conn = sqlite3.connect(tmp_path / GRADEBOOK_FILE)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    for statement in MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 'then')")
    conn.execute("INSERT INTO meta VALUES ('anon_salt', 'x'), ('title', 'Old')")
    conn.execute("INSERT INTO question VALUES ('q1', 1, 'Batch norm', 15, 5, 'q1.2', 'w', 'Why?')")
    conn.execute("INSERT INTO student VALUES ('alice', 'S-1', 'alice', NULL, 1)")
    data = json.dumps(make_result("alice").to_json())
    conn.execute("INSERT INTO submission VALUES ('alice', 'alice.py', 'h', 'k', ?, ?, 'then')",
                 (RESULTS_JSON_VERSION, data))
    conn.commit()
    conn.close()
    with Gradebook.open(tmp_path) as gb:
        assert [r.student for r in gb.results(light=True)] == ["alice"]   # no summary yet: the full results
        assert gb.reusable("alice", "h", "k") is not None
    conn = sqlite3.connect(tmp_path / GRADEBOOK_FILE)
    assert [v for (v,) in conn.execute("SELECT version FROM schema_version ORDER BY version")] == [1, 2]
    conn.close()


def test_light_results_drop_arrays_but_keep_scores(gb):
    light = {r.student: r for r in gb.results(light=True)}["alice"]
    full = gb.result("alice")
    assert light.score == full.score and light.question("q1").cases[0].verdict == "wrong"
    assert light.question("q1").cases[0].inputs is None and light.question("q1").cases[0].outputs[0].got is None
    assert full.question("q1").cases[0].outputs[0].got is not None


def test_results_of_another_hwgrader_ask_for_a_regrade(gb, tmp_path):
    conn = sqlite3.connect(tmp_path / GRADEBOOK_FILE)
    conn.execute("UPDATE submission SET results = json_set(results, '$.version', 0), summary = NULL "
                 "WHERE student = 'alice'")
    conn.commit()
    conn.close()
    assert gb.reusable("alice", "hash-alice", "key-1") is None
    with pytest.raises(GradebookError, match="grade the submissions again"):
        gb.results()


def test_a_gradebook_locked_by_another_process_is_a_clear_error(gb, tmp_path):
    other = sqlite3.connect(tmp_path / GRADEBOOK_FILE, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")   # someone else holds the write lock
    try:
        gb._conn.execute("PRAGMA busy_timeout = 50")
        with pytest.raises(GradebookError, match="cannot write the gradebook .*database is locked"):
            gb.record_grade("alice", "q1", grader="ta1", adjustment=1)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert gb.record_grade("alice", "q1", grader="ta1", adjustment=1).score == 1
