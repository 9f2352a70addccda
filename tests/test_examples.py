"""The example submissions in ``submissions/`` graded end to end, as the README's command grades them.

Every example is graded once (module fixture, two at a time) through the public engine API with the
rubric's own limits (scaled from the reference's time: the hanging example costs about a second, the
example 50 times slower than the reference still passes); one test runs the real CLI on the whole
folder and checks ``grades.csv`` and every Gradescope ``results.json``.
The mistake examples and the notebook are generated from ``correct_module.py`` by
``tests/submission_factory.py``; a test checks the files on disk are up to date.
"""

from __future__ import annotations

import ast
import csv
import json
import queue
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest

import submission_factory as factory
from grader.grading.engine import grade_submission
from grader.assignment.intake import discover
from grader.assignment.plan import build_plan
from grader.assignment.rubric import load_rubric

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "submissions"
RUBRIC = ROOT / "rubrics" / "homework.yaml"
JOBS = 2

CORRECT = ["correct_module.py", factory.NOTEBOOK, factory.NON_ASCII_COPY, factory.SLOW]
CORRECT_IDS = ["module", "notebook", "non-ascii-name", "fifty-times-slower"]
MISTAKES = {m.id: m for m in factory.MISTAKES}
WRITTEN_POINTS = {"q1": 6, "q2": 6}


# ----------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def plan():
    return build_plan(load_rubric(RUBRIC))


@pytest.fixture(scope="module")
def graded(plan):
    """Every example graded once through ``grade_submission``: file name -> SubmissionResult."""
    paths = [Path(s.origin) for s in discover([SUBMISSIONS], homework={c.function for c in plan.cases}).sources]
    slots: "queue.Queue[int]" = queue.Queue()
    for slot in range(JOBS):
        slots.put(slot)

    def one(path):
        slot = slots.get()  # a sandbox slot (worker uid) is never shared by two running workers
        try:
            return grade_submission(path, plan, slot=slot)
        finally:
            slots.put(slot)

    started = time.monotonic()
    with ThreadPoolExecutor(JOBS) as pool:
        results = list(pool.map(one, paths))
    graded = {p.name: r for p, r in zip(paths, results)}
    graded["__seconds__"] = time.monotonic() - started
    return graded


def _result(graded, name):
    assert name in graded, f"{name} is not in submissions/"
    return graded[name]


def _code_max(question) -> float:
    return round(sum(c.max_score for c in question.cases), 6)


def _not_passed(result):
    return [c for c in result.cases if c.verdict != "passed"]


def _answers_in_source(name: str) -> dict[str, str]:
    tree = ast.parse((SUBMISSIONS / name).read_text(encoding="utf-8"))
    return {node.targets[0].id: ast.literal_eval(node.value) for node in tree.body
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "").startswith("ANSWER_")}


def _shape_text(shape) -> str:
    return "()" if not shape else "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


# ----------------------------------------------------------------------------- the examples themselves

def test_derived_examples_are_up_to_date():
    for name, text in factory.derived_files().items():
        on_disk = (SUBMISSIONS / name).read_text(encoding="utf-8")
        assert on_disk == text, f"submissions/{name} is stale: run python tests/submission_factory.py"


def test_every_registered_mistake_has_an_example(plan):
    registered = {m.id: c.function for c in plan.cases for m in c.mistakes}
    assert set(registered) == set(MISTAKES)
    for mid, function in registered.items():
        assert MISTAKES[mid].function == function, mid


def test_the_notebook_is_valid_nbformat_v4():
    import nbformat

    nb = nbformat.read(SUBMISSIONS / factory.NOTEBOOK, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    sources = [c.source for c in nb.cells]
    assert any(s.startswith("%matplotlib inline") and "!pip install" in s for s in sources)
    assert nb.cells[factory.NOTEBOOK_KERAS_CELL - 1].source.startswith("from keras.layers import Dense")
    assert sum(1 for c in nb.cells if c.cell_type == "code" and "\ndef " in "\n" + c.source) >= 5


# ----------------------------------------------------------------------------- correct submissions

@pytest.mark.parametrize("name", CORRECT, ids=CORRECT_IDS)
def test_correct_submission_gets_every_code_point(graded, name):
    result = _result(graded, name)
    assert result.load_error is None
    assert [(c.number, c.verdict, c.message) for c in _not_passed(result)] == []
    for q in result.questions:
        assert q.score == pytest.approx(_code_max(q)), q.id
        assert q.max_score == pytest.approx(_code_max(q) + WRITTEN_POINTS.get(q.id, 0)), q.id
    # 88 code points: the written parts (6 + 6) are manual and score 0 until a person grades them
    assert result.score == pytest.approx(100 - sum(WRITTEN_POINTS.values())) == pytest.approx(88)
    assert result.max_score == pytest.approx(100)
    assert result.run_failures == [] and result.incidents == []


@pytest.mark.parametrize("name", CORRECT, ids=CORRECT_IDS)
def test_correct_submission_written_answers_are_collected(graded, name):
    result = _result(graded, name)
    expected = _answers_in_source("correct_module.py")
    for qid in ("q1", "q2"):
        written = result.question(qid).written
        assert written is not None
        assert written.score == 0 and not written.graded and written.max_score == WRITTEN_POINTS[qid]
        assert written.answer == expected[f"ANSWER_{qid.upper()}"]
    assert "如果直接從 N(μ, σ²) 取樣 z" in result.question("q2").written.answer  # Chinese intact
    assert "Reparameterization trick" in result.question("q2").written.answer


def test_correct_module_runs_its_top_level_work(graded):
    result = _result(graded, "correct_module.py")
    assert result.cell_failures == []
    assert "100 Baum-Welch iterations" in result.output and "Lecture SVM: w =" in result.output


def test_non_ascii_file_name_is_the_student_name(graded):
    result = _result(graded, factory.NON_ASCII_COPY)
    assert result.student == "學生_103590450" and result.file == factory.NON_ASCII_COPY


def test_notebook_records_the_failing_keras_cell_and_grades_the_rest(graded):
    result = _result(graded, factory.NOTEBOOK)
    assert result.load_error is None
    assert [(f.cell, f.summary) for f in result.cell_failures] == [
        (factory.NOTEBOOK_KERAS_CELL, "ModuleNotFoundError: No module named 'keras'")]
    assert f"[cell {factory.NOTEBOOK_KERAS_CELL}]" in result.cell_failures[0].traceback
    # cells after the failing one ran: the demo cells printed, every function was graded (above)
    assert "(11, 11)" in result.output


# ----------------------------------------------------------------------------- one known mistake each

@pytest.mark.parametrize("mid", sorted(MISTAKES), ids=sorted(MISTAKES))
def test_mistake_loses_points_only_in_its_question_and_is_diagnosed(graded, mid):
    example = MISTAKES[mid]
    result = _result(graded, example.filename)
    assert result.load_error is None and result.cell_failures == []
    for q in result.questions:
        if q.id == example.question:
            assert q.score < _code_max(q), f"{mid}: no point lost in {q.id}"
        else:
            assert q.score == pytest.approx(_code_max(q)), f"{mid}: lost points in {q.id}"
    failed = _not_passed(result)
    assert failed
    diagnosed = {example.function: mid, **example.knock_on}
    for case in failed:
        assert case.function in diagnosed, f"{mid}: {case.number} {case.function} failed ({case.message})"
        assert case.diagnosis is not None, f"{mid}: {case.number} not diagnosed ({case.message})"
        assert case.diagnosis.mistake == diagnosed[case.function], case.number
        assert f"(this looks like: {case.diagnosis.title})" in case.message
    own = [c for c in failed if c.function == example.function]
    assert own, f"{mid}: no case of {example.function} failed"
    public = [c for c in result.cases if c.function == example.function and c.visibility == "public"]
    for case in public:
        assert case.verdict == "passed" or case.diagnosis.mistake == mid


def test_unscaled_baum_welch_fails_only_on_the_long_sequence(graded):
    result = _result(graded, MISTAKES["q4.unscaled"].filename)
    failed = _not_passed(result)
    assert [(c.case, c.verdict) for c in failed] == [("long-sequence", "nonfinite"),
                                                      ("longer-sequence", "nonfinite")]
    assert "NaN" in failed[0].message and "(this looks like: " in failed[0].message


# ----------------------------------------------------------------------------- broken submissions

def test_syntax_error_scores_nothing_and_names_the_line(graded):
    result = _result(graded, "syntax_error.py")
    assert result.score == 0
    assert all(c.score == 0 and c.verdict != "passed" for c in result.cases)
    assert all(q.written.answer is None for q in result.questions if q.written)


def test_syntax_error_is_a_load_error_naming_the_line(graded):
    result = _result(graded, "syntax_error.py")
    assert result.load_error is not None
    assert "line 12" in result.load_error
    assert all(c.verdict == "skipped" for c in result.cases)


def test_crash_at_import_grades_what_was_defined_before_the_exception(graded):
    """A module that raises at import is not a load error: like a notebook cell, its failure is
    recorded (cell 0 = the module) and the functions defined before it are graded."""
    result = _result(graded, "crash_at_import.py")
    assert result.load_error is None
    [failure] = result.cell_failures
    assert failure.cell == 0
    assert failure.summary.startswith("FileNotFoundError") and "hw_data.npz" in failure.summary
    assert 'File "crash_at_import.py", line 36' in failure.traceback
    for qid in ("q1", "q2"):
        assert result.question(qid).score == pytest.approx(_code_max(result.question(qid)))
    for qid in ("q3", "q4", "q5"):
        q = result.question(qid)
        assert q.score == 0
        assert {c.verdict for c in q.cases} == {"missing"}, qid  # defined after the crash: never defined
        assert all("is not defined" in c.message and "FileNotFoundError" in c.message for c in q.cases)
    assert result.question("q1").written.answer.startswith("gamma and beta are trainable")
    assert result.question("q2").written.answer is None  # assigned after the crash


def test_exit_of_the_process_at_import_is_a_load_error(graded):
    """Unlike an exception (above), os._exit kills the worker: nothing it defined survives, so the
    submission is a load error and no case runs (not even batchnorm_forward, defined before it)."""
    result = _result(graded, "exits_at_import.py")
    assert result.load_error is not None and "exited with code 0" in result.load_error
    assert result.score == 0
    assert {c.verdict for c in result.cases} == {"skipped"}
    assert all("could not be loaded" in c.message for c in result.cases)


def test_hanging_function_costs_only_its_own_cases(graded, plan):
    result = _result(graded, factory.HANGS)
    assert result.load_error is None
    hung = [c for c in result.cases if c.function == "baum_welch"]
    assert len(hung) == 5
    for case in hung:
        assert case.verdict == "timeout" and case.score == 0
    # one strike: the first case ran into its CPU-time limit (scaled from the reference's time on
    # it: about a second), the rest were not run at all
    first = next(c for c in plan.cases if c.function == "baum_welch")
    assert 1 <= first.cpu_seconds < 10
    # (on a machine loaded many times over, the 10 s wall clock can come first: the loop gets a
    # small share of a core)
    assert hung[0].message in ("ran out of time (150 times the reference's CPU time on this case, "
                               "at least 1 s)", "ran out of time (10 s)")
    assert first.cpu_seconds <= hung[0].seconds < 12
    for case in hung[1:]:
        assert case.message == "not run: baum_welch already ran out of time on another case"
    for case in result.cases:
        if case.function != "baum_welch":
            assert case.verdict == "passed", (case.number, case.message)
    for q in result.questions:
        if q.id != "q4":
            assert q.score == pytest.approx(_code_max(q))
    assert result.question("q4").score == pytest.approx(_code_max(result.question("q4")) - 9)
    assert len(result.incidents) == 1 and "baum_welch" in result.incidents[0]
    assert result.seconds < 20  # the hang cost a second or two of CPU, not 2 x 10 s


def test_fifty_times_slower_code_is_slow_and_gets_full_marks(graded, plan):
    """Time is the students' work: a limit scaled from the reference never fails merely slow code."""
    result = _result(graded, factory.SLOW)
    assert result.score == pytest.approx(88) and result.run_failures == []
    # It really is slow: 50x the reference's CPU time on every case, which shows in the wall time.
    assert sum(c.seconds for c in result.cases) > 20 * sum(c.reference_seconds for c in plan.cases)
    fast = _result(graded, "correct_module.py")
    assert sum(c.seconds for c in result.cases) > 5 * sum(c.seconds for c in fast.cases)


WRONG_SHAPES = {  # function -> (verdict on its failing cases, what the message must say)
    "batchnorm_forward": ("shape", ["out"]),
    "batchnorm_backward": ("shape", ["dgamma", "dbeta"]),
    "reparameterize_backward": ("rejected", "returned a single dict, expected 2 values"),
    "kl_to_standard_normal": ("shape", ["kl"]),
    "svm_dual_alphas": ("shape", ["alpha"]),
    "optimal_margin_svm": ("rejected", "is a str, not a number or array"),
    "urn_emissions": ("rejected", "is None (did the function forget to return?)"),
    "forward": ("shape", ["alpha"]),
    "backward": ("rejected", "is a ragged nested list"),
    "baum_welch": ("rejected", "returned 4 values, expected 3"),
    "conv2d_valid": ("shape", ["out"]),       # channel axis kept: fails on channels-last images only
    "subpixel_conv": ("shape", ["out"]),
}


def test_wrong_shapes_and_types_are_named(graded, plan):
    result = _result(graded, "wrong_shapes_and_types.py")
    assert result.load_error is None
    expected_by_number = {c.number: c for c in plan.cases}
    for case in result.cases:
        if case.function not in WRONG_SHAPES:
            assert case.verdict == "passed", (case.number, case.message)  # e.g. a nested list is fine
            continue
        verdict, says = WRONG_SHAPES[case.function]
        planned = expected_by_number[case.number]
        if case.function in ("conv2d_valid", "subpixel_conv") and planned.args[0].ndim == 2:
            assert case.verdict == "passed", case.number  # no channel axis to keep
            continue
        assert case.verdict == verdict, (case.number, case.message)
        assert case.score < case.max_score
        if verdict == "rejected":
            # the worker's words name what the student's code returned: public cases only
            wanted = says if case.visibility == "public" else "output is not a numeric array on a hidden case"
            assert wanted in case.message, (case.number, case.message)
            continue
        for name in says:
            if case.visibility == "hidden":
                assert f"'{name}'" in case.message and "wrong shape" in case.message
                continue
            shape = planned.expected[planned.output_names.index(name)].shape
            pattern = rf"'{name}' has the wrong shape: got \([\d, ]+\), expected {re.escape(_shape_text(shape))}"
            assert re.search(pattern, case.message), (case.number, case.message)
    forward = next(c for c in result.cases if c.function == "batchnorm_forward" and c.case == "small")
    assert "'out' has the wrong shape: got (3, 2), expected (2, 3)" in forward.message


def test_rejected_outputs_are_named_by_the_rubric(graded):
    result = _result(graded, "wrong_shapes_and_types.py")
    message = {c.function: c.message for c in result.cases if c.visibility == "public"}
    assert "output 'b' is a str" in message["optimal_margin_svm"]
    assert "output 'B' is None" in message["urn_emissions"]
    assert "output 'beta' is a ragged nested list" in message["backward"]
    assert "(dmean, dlog_stddev)" in message["reparameterize_backward"]


def test_empty_template_scores_nothing(graded):
    result = _result(graded, "empty_template.py")
    assert result.load_error is None and result.cell_failures == []
    assert result.score == 0
    stubs_that_pass = {"batchnorm_forward", "batchnorm_backward", "urn_emissions", "zero_insert"}
    for case in result.cases:
        if case.function in stubs_that_pass:
            words = "None" if case.visibility == "public" else "output is not a numeric array on a hidden case"
            assert case.verdict == "rejected" and words in case.message, case.number
        else:
            assert case.verdict == "exception", case.number
            assert "NotImplementedError" in case.message, case.number
            if case.visibility == "public":
                assert "raise NotImplementedError" in case.traceback
    assert all(q.written.answer is None for q in result.questions if q.written)  # "" is no answer


# ----------------------------------------------------------------------------- the real CLI

@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """``python -m grader grade submissions --out OUT --jobs 2`` on the whole folder, real rubric."""
    tmp = tmp_path_factory.mktemp("cli")
    out = tmp / "out"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", "submissions", "--out", str(out),
                           "--jobs", str(JOBS)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    return proc, out, time.monotonic() - started


def test_cli_grades_the_folder(cli_run, graded):
    proc, out, seconds = cli_run
    assert proc.returncode == 0, proc.stderr
    students = sorted(s.student for s in discover([SUBMISSIONS]).sources)
    with (out / "grades.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["student", "q1", "q2", "q3", "q4", "q5", "total", "pending"]
    assert sorted(r[0] for r in rows[1:]) == students
    by_student = {r[0]: r for r in rows[1:]}
    for name, result in graded.items():
        if name == "__seconds__":
            continue
        row = by_student[result.student]
        assert [float(x) for x in row[1:6]] == pytest.approx([q.score for q in result.questions], abs=1e-4), name
        assert float(row[6]) == pytest.approx(result.score, abs=1e-4), name
    assert (out / "index.html").is_file()
    for student in students:
        assert (out / student / "report.html").is_file(), student


def test_cli_writes_gradescope_results(cli_run, plan):
    _, out, _ = cli_run
    numbers = {c.number for c in plan.cases}
    for path in (Path(s.origin) for s in discover([SUBMISSIONS]).sources):
        data = json.loads((out / path.stem / "results.json").read_text(encoding="utf-8"))
        assert {"score", "execution_time", "output", "tests"} <= set(data), path.name
        assert isinstance(data["execution_time"], (int, float)) and isinstance(data["output"], str)
        tests = data["tests"]
        assert len(tests) == len(plan.cases) + 2
        assert len({t["number"] for t in tests}) == len(tests)
        for t in tests:
            assert {"name", "number", "score", "max_score", "status", "output", "tags", "visibility"} <= set(t)
            assert re.fullmatch(r"q[1-5]\.\d+", t["number"]), t["number"]
            assert t["number"].split(".")[0] in t["tags"]
            assert t["status"] in ("passed", "failed")
            assert 0 <= t["score"] <= t["max_score"]
            assert isinstance(t["output"], str) and t["output"]
        manual = [t for t in tests if "manual" in t["tags"]]
        assert sorted(t["number"].split(".")[0] for t in manual) == ["q1", "q2"]
        assert all(t["score"] == 0 for t in manual)
        assert {t["number"] for t in tests if "manual" not in t["tags"]} == numbers
        assert data["score"] == pytest.approx(sum(t["score"] for t in tests), abs=1e-4)
        assert all(t["status"] == "passed" for t in tests if "manual" not in t["tags"]) \
            == (path.name in CORRECT), path.name
    for example in factory.MISTAKES:
        data = json.loads((out / example.filename[:-3] / "results.json").read_text(encoding="utf-8"))
        tagged = [t for t in data["tests"] if example.id in t["tags"]]
        assert tagged and all(t["status"] == "failed" for t in tagged), example.id


def test_cli_keeps_written_answers_in_results(cli_run):
    _, out, _ = cli_run
    data = json.loads((out / "colab_notebook" / "results.json").read_text(encoding="utf-8"))
    q2 = next(t for t in data["tests"] if t["number"].startswith("q2.") and "manual" in t["tags"])
    assert "如果直接從 N(μ, σ²) 取樣 z" in q2["output"] and "0 / 6" in q2["output"]
    assert "Loading cell 3 raised ModuleNotFoundError" in data["output"]
