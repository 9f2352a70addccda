"""Fast checks of the HTML reports (no browser): escaping, no hidden leaks, numbers, grids."""

from __future__ import annotations

import base64
import hashlib
import html as htmllib
import re
from pathlib import Path

import numpy as np
import pytest

import fixtures_results as fx  # noqa: I001  (puts the repo root on sys.path)
from grader.outputs import report, summary
from grader.grading.results import (
    CaseResult,
    Diagnosis,
    OutputCheck,
    QuestionResult,
    SubmissionResult,
)

TEMPLATES = Path(report.__file__).parent / "templates"


@pytest.fixture(scope="module")
def batch():
    return fx.class_batch()


@pytest.fixture(scope="module")
def pages(batch):
    return {r.student: report.render_student_report(r, title="DL HW") for r in batch}


@pytest.fixture(scope="module")
def index_html(batch):
    return report.render_index(batch, title="DL HW")


def _text(html: str) -> str:
    """Very rough visible text: tags removed, the style block dropped."""
    html = re.sub(r"<style>.*?</style>", "", html, flags=re.S)
    html = re.sub(r"<script>.*?</script>", "", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def _section(html: str, element_id: str) -> str:
    """The markup from the element with ``id`` up to the next case/section start."""
    start = html.index(f'id="{element_id}"')
    nxt = re.search(r'<(details|div) class="case |<section |<article ', html[start + 10:])
    return html[start: start + 10 + nxt.start()] if nxt else html[start:]


# --------------------------------------------------------------------------
# safety


def test_student_report_escapes_everything_from_the_submission(pages):
    html = pages[fx.XSS_NAME]
    assert "<script>window.__pwned" not in html
    assert "<img src=x" not in html
    assert "<script" not in html.lower()  # the student report has no script at all
    assert "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=&#34;window.__pwned=1&#34;&gt;" in html
    assert "mallory&lt;img src=x onerror=window.__pwned=1&gt;" in html  # the student name
    assert fx.CHINESE in html  # Chinese text kept as is
    assert '<meta charset="utf-8">' in html
    # the answer keeps its line breaks and spacing
    assert "\n  第二行 keeps   its spacing." in html


def test_index_escapes_names_and_quotes_links(index_html):
    assert "<img src=x" not in index_html
    assert "mallory&lt;img src=x onerror=window.__pwned=1&gt;" in index_html
    assert 'href="mallory%3Cimg%20src%3Dx%20onerror%3Dwindow.__pwned%3D1%3E/report.html"' in index_html
    assert 'href="%E5%BC%B5%E5%81%89/report.html"' in index_html
    assert ">張偉</a>" in index_html


def test_only_script_is_the_constant_sorter_allowed_by_csp(index_html):
    scripts = re.findall(r"<script>(.*?)</script>", index_html, flags=re.S)
    assert scripts == [report.SORT_JS]
    assert index_html.lower().count("<script") == 1
    digest = base64.b64encode(hashlib.sha256(report.SORT_JS.encode()).digest()).decode()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', index_html).group(1)
    assert f"script-src 'sha256-{digest}'" in htmllib.unescape(csp)
    assert "eval(" not in report.SORT_JS and "innerHTML" not in report.SORT_JS


def test_pages_are_self_contained(pages, index_html):
    for html in [index_html, *pages.values()]:
        assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', html)
        assert "url(" not in html and "@import" not in html
        assert set(re.findall(r"https?://[^\s\"'<>]+", html)) <= {"http://www.w3.org/2000/svg"}
        assert "<link rel=\"stylesheet\"" not in html


def test_templates_never_mark_data_safe():
    for t in TEMPLATES.glob("*.html"):
        src = t.read_text(encoding="utf-8")
        assert "|safe" not in src.replace(" ", ""), t.name
        assert "autoescape false" not in src, t.name
    env = report.environment()
    assert env.autoescape is True


def test_no_none_rendered(pages, index_html):
    for html in [index_html, *pages.values()]:
        assert "None" not in _text(html)


# --------------------------------------------------------------------------
# hidden cases


def test_hidden_cases_show_no_values_even_if_filled(tmp_path):
    r = fx.build_result("leaky", overrides={"q1.2": dict(message="SECRET-MSG")})
    case = next(c for c in r.cases if c.number == "q1.2")
    # a buggy engine filled the hidden case: the report must still show nothing of it
    case.inputs = {"x": np.full((2, 2), 987654.321)}
    case.outputs = [OutputCheck("out", False, "SECRET-OUT", expected=np.array([987654.321]),
                                got=np.array([123456.789]), mismatch=np.array([True]),
                                worst_index=(0,), worst_error=864197.532)]
    case.traceback = "SECRET-TB"
    case.diagnosis = Diagnosis("q1.secret", "SECRET-DIAG", "SECRET-HINT")
    case.mutated = ["SECRETARG"]
    html = report.render_student_report(r)
    for secret in ["987654", "123456", "864197", "SECRET", "SECRETARG"]:
        assert secret not in html, secret
    block = _section(html, "case-q1-2")
    assert "hidden test" in block and "wrong values" in block and "failed" in block
    assert "<table" not in block


def test_hidden_failing_case_of_chinese_student(pages):
    block = _section(pages[fx.CHINESE_NAME], "case-q1-2")
    assert 'data-verdict="wrong"' in block
    assert "Hidden test: its inputs and values are not shown." in block
    assert "0 / 3" in block
    assert "<table" not in block and "has wrong values" not in block


# --------------------------------------------------------------------------
# summary numbers on a hand-computed batch


def _mini(student, q1, q2, *, verdicts=("passed", "passed"), diag=None, load_error=None):
    """Two questions of 10 points, one 10-point case each."""
    qs = []
    for qid, score, verdict in (("q1", q1, verdicts[0]), ("q2", q2, verdicts[1])):
        c = CaseResult(qid, "p", "lecture", f"{qid}.1", f"f{qid}", "public", 10.0, score, verdict,
                       "m", diagnosis=diag if (qid == "q1" and verdict != "passed") else None)
        qs.append(QuestionResult(qid, f"Question {qid}", 10.0, [c]))
    return SubmissionResult(student, f"{student}.py", "bwrap", qs, load_error=load_error)


@pytest.fixture
def mini_batch():
    d = Diagnosis("q1.sign", "sign flipped", "check the sign")
    return [
        _mini("a", 10, 10),                                             # 20
        _mini("b", 0, 10, verdicts=("wrong", "passed"), diag=d),        # 10
        _mini("c", 0, 5, verdicts=("wrong", "wrong"), diag=d),          # 5
        _mini("d", 0, 0, verdicts=("timeout", "crash")),                # 0
        _mini("e", 0, 0, verdicts=("skipped", "skipped"), load_error="SyntaxError"),  # 0
    ]


def test_question_and_total_stats(mini_batch):
    q1, q2 = summary.question_stats(mini_batch)
    assert (q1.id, q1.mean, q1.median, q1.max, q1.min, q1.n) == ("q1", 2.0, 0.0, 10.0, 0.0, 5)
    assert (q2.mean, q2.median, q2.max) == (5.0, 5.0, 10.0)
    t = summary.total_stats(mini_batch)
    assert (t.mean, t.median, t.max, t.max_score) == (7.0, 5.0, 20.0, 20.0)


def test_histogram_bins(mini_batch):
    bins = summary.total_histogram(mini_batch, bins=4)  # width 5 over 0..20
    assert [(b.lo, b.hi) for b in bins] == [(0, 5), (5, 10), (10, 15), (15, 20)]
    assert [b.count for b in bins] == [2, 1, 1, 1]  # 0,0 | 5 | 10 | 20 (top edge in last bin)
    assert bins[-1].closed and not bins[0].closed
    assert [b.count for b in summary.histogram([-1, 0, 9.99, 10, 11], 10, bins=10)] == [2, 0, 0, 0, 0, 0, 0, 0, 0, 3]


def test_most_failed_tests(mini_batch):
    failed = summary.most_failed_tests(mini_batch)
    assert [(f.number, f.function, f.case, f.fails, f.attempts) for f in failed] == [
        ("q1.1", "fq1", "lecture", 4, 5),
        ("q2.1", "fq2", "lecture", 3, 5),
    ]
    assert dict(failed[0].verdicts) == {"wrong values": 2, "ran out of time": 1, "not run": 1}
    assert failed[0].verdicts[0] == ("wrong values", 2)


def test_common_mistakes(mini_batch):
    mistakes = summary.common_mistakes(mini_batch)
    assert list(mistakes) == ["q1"]
    (m,) = mistakes["q1"]
    assert (m.mistake, m.title, m.students, m.tests) == ("q1.sign", "sign flipped", 2, 2)


def test_run_problems_listed_apart(mini_batch):
    probs = {p.student: p for p in summary.run_problems(mini_batch)}
    assert set(probs) == {"d", "e"}
    assert [f.verdict for f in probs["d"].failures] == ["timeout", "crash"]
    assert probs["d"].kinds == ("ran out of time", "the worker process crashed")
    assert probs["e"].load_error == "SyntaxError" and probs["e"].skipped == 2
    assert probs["e"].kinds == ("load error",)


def test_code_raising_while_loading_is_a_run_problem():
    from grader.grading.results import CellFailure
    r = _mini("f", 0, 0, verdicts=("missing", "missing"))
    assert summary.run_problem(r) is None
    r.cell_failures = [CellFailure(0, "SyntaxError: invalid syntax", "tb")]
    p = summary.run_problem(r)
    assert p.cell_failures == ("module body: SyntaxError: invalid syntax",) and p.missing == 2
    assert p.kinds == ("code raised while loading",)
    html = report.render_index([r])
    assert "raised while loading, module body: SyntaxError: invalid syntax" in html
    assert "2 tests lost to functions not defined" in html
    page = report.render_student_report(r)
    assert '<section class="alert" id="cell-failures">' in page
    assert 'data-verdict="missing">' in page  # collapsed: nothing to read but the message


def test_index_shows_the_numbers(mini_batch):
    html = report.render_index(mini_batch)
    stats = _section(html, "question-stats")
    assert re.search(r'data-question="q1">.*?class="num mean">2</td><td class="num median">0<', stats)
    assert re.search(r'data-question="total">.*?<strong>7</strong>.*?<strong>5</strong>', stats)
    assert html.count('class="bar-fill hist-bar"') == 10
    assert 'id="run-problems"' in html and ">d</a>" in html and "ran out of time" in html
    assert re.search(r'data-number="q1.1">.*?class="num fails">4 / 5<', html, flags=re.S)
    assert 'data-mistake="q1.sign"' in html


# --------------------------------------------------------------------------
# grids


def test_grid_marks_exactly_the_wrong_cells():
    r = fx.subpixel_wrong_student()
    check = next(c for c in r.cases if c.number == "q5.3").outputs[0]
    view = summary.output_view(check)
    assert view.wrong_count == 4 and view.total_count == 121
    assert view.worst_index == "[10, 9]" and view.worst_error == "6"
    for side in (view.expected, view.got):
        (g,) = side
        assert g.shape == (11, 11) and not g.truncated and len(g.rows) == 11
        marked = {(i, j) for i, row in enumerate(g.rows) for j, c in enumerate(row) if c.wrong}
        assert marked == set(fx.SUBPIXEL_WRONG_CELLS)
    assert view.got[0].rows[0][4].text == "-1.5" and view.expected[0].rows[0][4].text == "0"

    html = report.render_student_report(r)
    block = _section(html, "case-q5-3")
    assert block.count('<td class="wrong"') == 8   # 4 expected + 4 got
    assert block.count("✗</span>") == 8            # a marker, not colour alone
    assert "4 of 121" in block and "ReLU not applied after the convolution" in block
    assert fx.NO_RELU.hint.replace("'", "&#39;") in block
    assert "modified its argument" in block


def test_grid_shapes_cap_and_precision():
    vec = summary.array_grid(np.arange(5.0))
    assert len(vec.rows) == 1 and [c.text for c in vec.rows[0]] == ["0", "1", "2", "3", "4"]
    sc = summary.array_grid(np.float64(2.5))
    assert [[c.text for c in row] for row in sc.rows] == [["2.5"]]
    big = np.zeros((40, 45))
    mask = np.zeros_like(big, dtype=bool)
    mask[1, 1] = mask[35, 2] = True
    g = summary.array_grid(big, mask)
    assert g.truncated and (g.shown_rows, g.shown_cols) == (30, 30) and len(g.rows[0]) == 30
    assert g.wrong_count == 2 and g.wrong_shown == 1
    # numbers that differ beyond 4 digits are shown with enough digits to differ
    v = summary.output_view(OutputCheck("x", False, "m", expected=np.array([1.000001, 2.0]),
                                        got=np.array([1.000002, 2.0]), mismatch=np.array([True, False])))
    e, gg = v.expected[0].rows[0][0].text, v.got[0].rows[0][0].text
    assert e != gg and e == "1.000001" and gg == "1.000002"
    assert summary.fmt_value(float("nan")) == "NaN" and summary.fmt_value(-np.inf) == "-inf"
    # 3-D arrays are shown per channel
    grids = summary.array_grids(np.zeros((3, 3, 2)))
    assert [gr.label for gr in grids] == ["channel 0", "channel 1"]
    # shape mismatch: both sides shown, nothing marked
    sv = summary.output_view(OutputCheck("x", False, "shape", expected=np.zeros((2, 2)), got=np.zeros(3)))
    assert sv.wrong_count == 0 and sv.expected_shape == "2×2" and sv.got_shape == "3"


def test_fmt_score():
    assert [summary.fmt_score(x) for x in (20.0, 13.5, 2 / 3, 0)] == ["20", "13.5", "0.67", "0"]


# --------------------------------------------------------------------------
# structure of the pages


def test_student_report_structure(pages):
    html = pages["103590451"]
    for element_id in ["student-name", "total-score", "question-scores", "q1", "q5", "case-q5-3",
                       "case-q1-1", "written-q1", "written-q2", "output", "isolation"]:
        assert f'id="{element_id}"' in html, element_id
    assert re.search(r'class="score-value">70<', html)
    assert re.search(r'data-question="q5">.*?<strong>10</strong> / 20', html, flags=re.S)
    assert "unbiased variance (divided by N-1)" in html
    # written: graded shows the score, ungraded the pending status
    assert 'class="written-score">4 / 6<' in _section(html, "written-q1")
    assert "pending: waiting for a grader (0 / 6 until graded)" in _section(html, "written-q2")
    assert "Warning: this submission ran with weaker isolation" not in html


def test_run_problems_in_student_report(pages):
    html = pages["103590452"]
    assert 'id="incidents"' in html and "ran out of time" in html and "ran out of memory" in html
    assert "baum_welch (long) timed out after 10 s; worker restarted" in html
    assert "ValueError: matmul" in _section(html, "case-q1-3")  # the traceback
    assert 'id="output-truncated"' in html
    assert "Warning: this submission ran with weaker isolation than bwrap (unshare)" in html
    html = pages["103590453"]
    assert 'id="load-error"' in html and "SyntaxError: invalid syntax" in html
    assert "No answer was found" in html
    html = pages[fx.CHINESE_NAME]
    assert 'id="cell-failures"' in html and "Notebook cell 2" in html
    assert "No module named &#39;keras&#39;" in html


def test_index_structure(index_html, batch):
    for element_id in ["scores", "histogram", "question-means", "question-stats", "failed-tests",
                       "mistakes", "run-problems", "isolation"]:
        assert f'id="{element_id}"' in index_html, element_id
    assert index_html.count("<tr data-student=") == len(batch)
    assert re.search(r'data-student="103590451">.*?data-value="70.0"><strong>70</strong>', index_html, flags=re.S)
    assert 'data-mistake="q5.no_relu"' in index_html and 'data-mistake="q1.unbiased_variance"' in index_html
    assert "weaker isolation than bwrap (unshare)" in index_html


def test_writers_write_files(tmp_path, batch):
    for r in batch:
        p = report.write_student_report(r, tmp_path / r.student / "report.html")
        assert p.is_file() and p.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    idx = report.write_index(batch, tmp_path, title="T")
    assert idx == tmp_path / "index.html" and "<title>T — class overview</title>" in idx.read_text("utf-8")
    assert not list(tmp_path.glob("**/.report-*"))
