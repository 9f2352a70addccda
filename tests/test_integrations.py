"""CI integrations as users meet them: ``check --junit`` read back by junitparser, ``check --github``
as the Actions runner and a student see it, and (below) the Gradescope bundle run in a local
``/autograder``-shaped emulator and validated against a JSON Schema of Gradescope's format."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUBMISSIONS = ROOT / "submissions"
RUBRIC = ROOT / "rubrics" / "homework.yaml"
sys.path.insert(0, str(ROOT))

from grader.assignment.rubric import load_rubric  # noqa: E402
from grader.integrations.github import command_data, command_property, workflow_command  # noqa: E402


def hwgrader(*args: str, cwd: Path, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    full_env.pop("GITHUB_STEP_SUMMARY", None) if not env or "GITHUB_STEP_SUMMARY" not in env else None
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


def public_points(function: str | None = None) -> float:
    """Points of the rubric's public cases (of one function), read from the rubric itself."""
    rubric = load_rubric(RUBRIC)
    return round(sum(c.points for q in rubric.questions for p in q.parts for c in p.cases
                     if c.visibility == "public" and (function is None or p.function == function)), 6)


def def_line(path: Path, function: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(f"def {function}("):
            return number
    raise AssertionError(f"no def {function} in {path}")


@pytest.fixture
def student_dir(tmp_path):
    """A student's repository: the homework file under the name the workflow uses."""
    return tmp_path


class CheckRun:
    """One ``check hw.py --junit junit.xml --github`` in a fresh student folder, as a workflow step runs it."""

    def __init__(self, folder: Path, source: str, *extra: str):
        self.folder = folder
        shutil.copy(SUBMISSIONS / source, folder / "hw.py")
        self.summary_path = folder / "summary.md"
        self.summary_path.write_text("earlier step's summary\n", encoding="utf-8")
        self.proc = hwgrader("check", "hw.py", "--junit", "junit.xml", "--github", *extra, cwd=folder,
                             env={"GITHUB_STEP_SUMMARY": str(self.summary_path), "GITHUB_ACTIONS": "true"})
        self.commands = [line for line in self.proc.stdout.splitlines() if line.startswith("::")]
        self.summary = self.summary_path.read_text(encoding="utf-8")
        self.junit = folder / "junit.xml"


@pytest.fixture(scope="module")
def mistake_run(tmp_path_factory):
    return CheckRun(tmp_path_factory.mktemp("mistake"), "mistake_q1_unbiased_variance_forward.py")


@pytest.fixture(scope="module")
def syntax_run(tmp_path_factory):
    return CheckRun(tmp_path_factory.mktemp("syntax"), "syntax_error.py")


# --------------------------------------------------------------------------------------- JUnit

def _junit(path: Path):
    from junitparser import JUnitXml

    return JUnitXml.fromfile(str(path))


def test_junit_of_a_diagnosed_mistake_has_the_right_counts_and_the_got_expected_text(mistake_run):
    from junitparser import Failure

    assert mistake_run.proc.returncode == 1, mistake_run.proc.stderr
    student_dir = mistake_run.folder
    xml = _junit(mistake_run.junit)
    suites = list(xml)
    rubric = load_rubric(RUBRIC)
    public = {q.id: sum(c.visibility == "public" for p in q.parts for c in p.cases) for q in rubric.questions}
    assert [s.name.split()[0] for s in suites] == list(public)
    assert {s.name.split()[0]: s.tests for s in suites} == public
    assert xml.tests == sum(public.values()) and xml.failures == 2 and xml.errors == 0
    names = [(c.classname, c.name) for s in suites for c in s]
    assert len(set(names)) == len(names), "GitLab keeps only the first of duplicate names"
    failed = [c for s in suites for c in s if not c.is_passed]
    assert [c.classname for c in failed] == ["q1.batchnorm_forward"] * 2
    line = str(def_line(student_dir / "hw.py", "batchnorm_forward"))
    for case in failed:
        (failure,) = case.result
        assert isinstance(failure, Failure) and failure.type == "wrong"
        assert "unbiased variance" in failure.message
        assert "'out' expected:\n[[" in failure.text and "'out' got:\n[[" in failure.text
        assert "Hint: Training-mode batch norm uses the biased batch variance" in failure.text
        assert case._elem.get("file") == "hw.py" and case._elem.get("line") == line
        assert float(case.time) >= 0
    q1 = suites[0]
    assert q1.properties() is not None
    points = {p.name: p.value for p in q1.properties()}
    assert points["points"].endswith(f"/{public_points('batchnorm_forward') + public_points('batchnorm_backward'):g}")


def test_junit_of_a_correct_submission_has_no_failure_and_exit_0(student_dir):
    shutil.copy(SUBMISSIONS / "correct_module.py", student_dir / "hw.py")
    proc = hwgrader("check", "hw.py", "--junit", "out/junit.xml", cwd=student_dir)
    assert proc.returncode == 0, proc.stderr
    xml = _junit(student_dir / "out" / "junit.xml")
    assert xml.failures == 0 and xml.errors == 0 and xml.tests > 20
    assert all(c.is_passed for s in xml for c in s)


def test_junit_of_a_syntax_error_is_an_error_per_test_naming_the_line(syntax_run):
    assert syntax_run.proc.returncode == 1
    xml = _junit(syntax_run.junit)
    assert xml.errors == xml.tests > 20 and xml.failures == 0
    case = next(iter(next(iter(xml))))
    (error,) = case.result
    assert error.type == "skipped" and "SyntaxError" in error.text and "(line " in error.text


HOSTILE = '''
import numpy as np
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    raise ValueError("bad \\x1b[31mred\\x07 \\u202eevil <b>&amp; ]]> %0A")
'''


def test_junit_keeps_hostile_exception_text_as_visible_text(student_dir):
    (student_dir / "hw.py").write_text(HOSTILE, encoding="utf-8")
    proc = hwgrader("check", "hw.py", "--junit", "junit.xml", "--question", "q1", cwd=student_dir)
    assert proc.returncode == 1
    raw = (student_dir / "junit.xml").read_text(encoding="utf-8")
    assert "\x1b" not in raw and "\x07" not in raw and "\u202e" not in raw
    xml = _junit(student_dir / "junit.xml")
    errors = [r for s in xml for c in s for r in c.result if r.type == "exception"]
    assert errors, "an exception is a JUnit <error>"
    assert "\\x1b[31mred\\x07 \\u202eevil <b>&amp; ]]> %0A" in errors[0].text
    assert xml.errors == len(errors) and xml.failures == 1  # backward's case: function missing


# --------------------------------------------------------------------------------------- GitHub

def test_workflow_commands_are_escaped_as_github_toolkit_does():
    assert command_data("50%\r\nnext") == "50%25%0D%0Anext"
    assert command_property("a: b, c") == "a%3A b%2C c"
    assert workflow_command("error", "x\ny", file="hw.py", line=3, title="Q1: bad") == \
        "::error file=hw.py,line=3,title=Q1%3A bad::x%0Ay"
    assert workflow_command("notice", "Points 1/2", title="Autograding complete", line=None) == \
        "::notice title=Autograding complete::Points 1/2"


def test_github_annotations_one_per_failed_question_with_hint_and_line(mistake_run):
    commands, student_dir = mistake_run.commands, mistake_run.folder
    errors = [c for c in commands if c.startswith("::error ")]
    assert len(errors) == 1
    line = def_line(student_dir / "hw.py", "batchnorm_forward")
    assert errors[0].startswith(f"::error file=hw.py,line={line},title=Q1 Batch normalization%3A 2 of 3 public "
                                f"tests failed::q1.1 batchnorm_forward (small): ")
    assert "%0AHint: Training-mode batch norm uses the biased batch variance" in errors[0]
    assert "%0AAlso failed: q1.2 batchnorm_forward (random)" in errors[0]


def test_github_points_line_is_what_classroom_reads(mistake_run):
    """The two notices classroom-resources/autograding-grading-reporter emits (src/notify-classroom.js):
    ``Points ${totalPoints}/${maxPoints}`` titled "Autograding complete" and
    ``JSON.stringify({ totalPoints, maxPoints })`` titled "Autograding report"."""
    import json

    commands = mistake_run.commands
    total, lost = public_points(), public_points("batchnorm_forward")
    scored = round(total - lost, 6)
    notices = [c for c in commands if c.startswith("::notice ")]
    assert notices[0] == f"::notice title=Autograding complete::Points {scored:g}/{total:g}"
    title, _, payload = notices[1].partition("::")[2].partition("::")
    assert notices[1].startswith("::notice title=Autograding report::")
    assert json.loads(payload) == {"totalPoints": scored, "maxPoints": total}


def test_github_without_a_summary_file_still_annotates_and_says_why(student_dir):
    shutil.copy(SUBMISSIONS / "correct_module.py", student_dir / "hw.py")
    proc = hwgrader("check", "hw.py", "--github", cwd=student_dir)
    assert proc.returncode == 0
    assert "GITHUB_STEP_SUMMARY is not set" in proc.stderr
    assert not [c for c in proc.stdout.splitlines() if c.startswith("::error")]
    assert f"::notice title=Autograding complete::Points {public_points():g}/{public_points():g}" in proc.stdout


def test_github_syntax_error_is_one_annotation_on_its_line(syntax_run):
    commands, summary = syntax_run.commands, syntax_run.summary
    errors = [c for c in commands if c.startswith("::error ")]
    assert len(errors) == 1
    with pytest.raises(SyntaxError) as exc:
        compile((SUBMISSIONS / "syntax_error.py").read_text(encoding="utf-8"), "hw.py", "exec")
    assert errors[0].startswith(f"::error file=hw.py,line={exc.value.lineno},title=hwgrader%3A the submission")
    assert "**Your submission could not be loaded:**" in summary
    assert f"::notice title=Autograding complete::Points 0/{public_points():g}" in commands


def test_github_summary_is_appended_and_reads_as_a_table(mistake_run):
    summary = mistake_run.summary
    assert summary.startswith("earlier step's summary\n## hwgrader self-check: hw.py\n")
    total, lost = public_points(), public_points("batchnorm_forward")
    assert f"**{round(total - lost, 6):g} / {total:g} points** on the public tests" in summary
    assert "| ❌ Q1 Batch normalization | 1/3 |" in summary
    assert "| ✅ Q2 VAE reparameterization trick | 4/4 |" in summary
    assert "<details><summary>q1.1 batchnorm_forward (small): wrong values</summary>" in summary
    assert "Written answers (Q1, Q2) are graded by a person and are not counted here." in summary


def test_github_summary_shows_hostile_text_as_text(student_dir):
    from markdown_it import MarkdownIt

    (student_dir / "hw.py").write_text(HOSTILE.replace("<b>", "<img src=x onerror=alert(1)> ```"),
                                       encoding="utf-8")
    summary = student_dir / "summary.md"
    proc = hwgrader("check", "hw.py", "--github", "--question", "q1", cwd=student_dir,
                    env={"GITHUB_STEP_SUMMARY": str(summary)})
    assert proc.returncode == 1
    text = summary.read_text(encoding="utf-8")
    assert "\x1b" not in text and "\u202e" not in text
    html = MarkdownIt("commonmark").render(text)
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt; ```" in html
    annotations = [c for c in proc.stdout.splitlines() if c.startswith("::error")]
    assert all("\x1b" not in a and "%0A" in a or "\n" not in a for a in annotations)
    assert "\\x1b[31mred" in annotations[0] and "%250A" in annotations[0]


@pytest.mark.browser
def test_github_summary_rendered_is_readable(mistake_run, student_dir):
    """The summary as a person sees it: rendered as CommonMark (GitHub's base) in Chromium."""
    from markdown_it import MarkdownIt

    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not chromium.exists():
        if os.environ.get("HWGRADER_REQUIRE_BROWSER") == "1":
            pytest.fail("HWGRADER_REQUIRE_BROWSER=1 but Chromium or playwright is missing")
        pytest.skip("Chromium or playwright missing")
    summary = mistake_run.summary
    body = MarkdownIt("commonmark").enable("table").render(summary)
    page_file = student_dir / "summary.html"
    page_file.write_text("<!doctype html><meta charset=utf-8><style>body{font:14px sans-serif;max-width:900px;"
                         "margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
                         "pre{background:#f6f8fa;padding:8px}</style>" + body, encoding="utf-8")
    shots = Path(os.environ.get("HWGRADER_SCREENSHOT_DIR") or student_dir)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=["--headless=new", "--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 800})
            page.goto(page_file.as_uri())
            rows = page.locator("table tr")
            assert rows.count() == 1 + 5
            assert page.locator("table tr").nth(1).inner_text().split("\t")[0].strip() == "❌ Q1 Batch normalization"
            assert page.locator("details").count() == 2
            page.locator("details summary").first.click()
            assert page.locator("details pre").first.is_visible()
            assert "'out' expected:" in page.locator("details pre").first.inner_text()
            png = page.screenshot(path=str(shots / "github-summary.png"), full_page=True)
            assert len(png) > 10_000
        finally:
            browser.close()


def test_classroom_workflow_template_unblocks_bwrap_and_runs_the_check():
    import yaml

    workflow = yaml.safe_load((ROOT / "docs" / "templates" / "classroom.yml").read_text(encoding="utf-8"))
    assert workflow["permissions"]["checks"] == "write"
    job = workflow["jobs"]["self-check"]
    assert job["runs-on"] == "ubuntu-24.04"
    runs = [step.get("run", "") for step in job["steps"]]
    assert any("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0" in r for r in runs)
    assert any("apt-get install -y -qq bubblewrap" in r for r in runs)
    assert any(r.strip().startswith("hwgrader check ") and "--github" in r and "--junit" in r for r in runs)
    order = [i for i, r in enumerate(runs) if "sysctl" in r or r.strip().startswith("hwgrader check")]
    assert order == sorted(order) and len(order) == 2
