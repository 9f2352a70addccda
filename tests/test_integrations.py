"""CI integrations as users meet them: ``check --junit`` read back by junitparser, ``check --github``
as the Actions runner and a student see it, and (below) the Gradescope bundle run in a local
``/autograder``-shaped emulator and validated against a JSON Schema of Gradescope's format."""

from __future__ import annotations

import os
import re
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

    from chromium import launch

    summary = mistake_run.summary
    body = MarkdownIt("commonmark").enable("table").render(summary)
    page_file = student_dir / "summary.html"
    page_file.write_text("<!doctype html><meta charset=utf-8><style>body{font:14px sans-serif;max-width:900px;"
                         "margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px}"
                         "pre{background:#f6f8fa;padding:8px}</style>" + body, encoding="utf-8")
    shots = Path(os.environ.get("HWGRADER_SCREENSHOT_DIR") or student_dir)
    with launch() as browser:
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


# ------------------------------------------------------------------------- Gradescope bundle
#
# Gradescope's autograder specification (gradescope/autograder_samples docs/specs.md, also
# https://gradescope-autograders.readthedocs.io/en/latest/specs/), quoted:
#
#   "setup.sh: a setup (Bash) script that installs all your dependencies."
#   "run_autograder: an executable script ... that compiles and runs your autograder suite and
#    produces the output in the correct place."
#   "/autograder/source contains the extracted contents of your autograder zip file."
#   "/autograder/submission contains the student's submission, downloaded from Gradescope."
#   "/autograder/results/results.json is where you put the test output that is uploaded to
#    Gradescope. This must be produced as a result of executing run_autograder."
#   "When the autograder executes, the working directory is /autograder."
#   "score": "optional, but required if not on each test case below. Overrides total of tests if
#    specified."
#   visibility: "hidden: test case will never be shown to students"; "after_due_date: test case
#    will be shown after the assignment's due date has passed. If late submission is allowed, then
#    test will be shown only after the late due date."; "after_published: test case will be shown
#    only when the assignment is explicitly published from the 'Review Grades' page";
#    "visible (default): test case will always be shown".
#   "If test cases are hidden, students will not be able to see their total score. Test cases with
#    visibility set to hidden don't affect this, since they should only be used for tests which
#    don't contribute points to the total."
#   "By default, anything printed to standard output is recorded and only shown to instructors"
#   (stdout_visibility takes the same four values).
# tests[].status ("passed"/"failed") and the output formats (text, html, simple_format, md, ansi)
# are what gradescope-utils' json_test_runner writes and the formatting docs list.

_VISIBILITY = {"enum": ["hidden", "after_due_date", "after_published", "visible"]}
_FORMAT = {"enum": ["text", "html", "simple_format", "md", "ansi"]}
_NUMBER = {"type": "number"}
GRADESCOPE_RESULTS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Gradescope autograder results.json",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "score": _NUMBER,
        "execution_time": _NUMBER,
        "output": {"type": "string"},
        "output_format": _FORMAT,
        "test_output_format": _FORMAT,
        "test_name_format": _FORMAT,
        "visibility": _VISIBILITY,
        "stdout_visibility": _VISIBILITY,
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "score": _NUMBER, "max_score": _NUMBER,
                "status": {"enum": ["passed", "failed"]},
                "name": {"type": "string"}, "name_format": _FORMAT,
                "number": {"type": "string"},
                "output": {"type": "string"}, "output_format": _FORMAT,
                "tags": {"type": "array", "items": {"type": "string"}},
                "visibility": _VISIBILITY,
                "extra_data": {"type": "object"},
            }}},
        "leaderboard": {"type": "array", "items": {
            "type": "object", "required": ["name", "value"],
            "properties": {"name": {"type": "string"}, "value": {}, "order": {"enum": ["asc", "desc"]}}}},
    },
    # "score ... optional, but required if not on each test case"
    "anyOf": [{"required": ["score"]},
              {"required": ["tests"], "properties": {"tests": {"items": {"required": ["score"]}}}}],
}


def rubric_points() -> tuple[float, dict[str, float], dict[str, float]]:
    """(code points, points per function, written points per question) from the rubric file."""
    rubric = load_rubric(RUBRIC)
    per_function: dict[str, float] = {}
    for q in rubric.questions:
        for p in q.parts:
            per_function[p.function] = per_function.get(p.function, 0) + sum(c.points for c in p.cases)
    written = {q.id: q.written.points for q in rubric.questions if q.written}
    return round(sum(per_function.values()), 6), per_function, written


def validate_gradescope(doc: dict) -> None:
    """The document Gradescope accepts: the schema, finite numbers, score = sum of the tests' scores."""
    import jsonschema

    jsonschema.validate(doc, GRADESCOPE_RESULTS_SCHEMA)
    numbers = [doc["score"]] + [t[k] for t in doc["tests"] for k in ("score", "max_score") if k in t]
    assert all(x == x and abs(x) != float("inf") for x in numbers)
    assert doc["score"] == pytest.approx(sum(t.get("score", 0) for t in doc["tests"]), abs=1e-3)
    assert doc["output_format"] == "text"  # submission text is never read as HTML


class Autograder:
    """An ``/autograder``-shaped root (``HWGRADER_AUTOGRADER_ROOT``) holding the unpacked bundle.

    It lives under /var/tmp, not /tmp: the sandbox gives every worker a fresh, empty /tmp, so a
    Python environment under /tmp would vanish inside it (Gradescope's is /autograder/...).
    """

    def __init__(self, root: Path):
        self.root = root
        self.env = {**os.environ, "HWGRADER_AUTOGRADER_ROOT": str(root)}
        self.env.pop("PYTHONPATH", None)  # the bundle's own installation, not this checkout

    def setup(self) -> subprocess.CompletedProcess:
        """setup.sh as Gradescope runs it at image build, minus apt-get (this machine has python3-venv
        and bubblewrap) and with the dependencies taken from this interpreter's site-packages
        (numpy, scipy, cvxopt are installed here; no index is reached). hwgrader itself is installed
        from the bundle's wheel."""
        env = {**self.env, "HWGRADER_SETUP_APT": "0", "HWGRADER_PYTHON": sys.executable,
               "HWGRADER_VENV_SYSTEM_SITE_PACKAGES": "1", "PIP_NO_INDEX": "1"}
        return subprocess.run(["bash", str(self.root / "source" / "setup.sh")], env=env,
                              capture_output=True, text=True, timeout=600)

    def run(self, files: dict[str, bytes], env: dict | None = None, timeout: float = 300):
        """A fresh submission folder, then run_autograder; returns (results.json, its stdout)."""
        for name in ("submission", "results"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        (self.root / "submission").mkdir()
        for name, data in files.items():
            path = self.root / "submission" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        proc = subprocess.run([str(self.root / "source" / "run_autograder")], cwd=self.root,
                              env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        results = self.root / "results" / "results.json"
        assert results.is_file(), f"no results.json\n{proc.stdout}\n{proc.stderr}"
        import json

        return json.loads(results.read_text(encoding="utf-8")), proc.stdout


def _fast_rubric(folder: Path) -> Path:
    """The homework rubric with a 3 s call limit (a hanging function costs 2 x 3 s, not 2 x 10 s)."""
    text = RUBRIC.read_text(encoding="utf-8")
    text = re.sub(r"(?m)^reference: .*$", f"reference: {ROOT / 'reference'}", text)
    text, n = re.subn(r"(?m)^(\s*call_seconds:)\s*\d+", r"\1 3", text)
    assert n == 1
    path = folder / "fast.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bundle_zip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    proc = hwgrader("bundle", "gradescope", "autograder.zip", "--rubric", str(_fast_rubric(folder)),
                    "--deps", "pypi", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    return folder / "autograder.zip", proc.stdout


@pytest.fixture(scope="module")
def autograder(bundle_zip):
    import tempfile
    import zipfile

    base = Path(tempfile.mkdtemp(prefix="hwgrader-autograder-", dir="/var/tmp"))
    try:
        (base / "source").mkdir()
        with zipfile.ZipFile(bundle_zip[0]) as zf:
            zf.extractall(base / "source")
        for name in ("setup.sh", "run_autograder"):  # zipfile does not restore modes; Gradescope does
            (base / "source" / name).chmod(0o755)
        ag = Autograder(base)
        proc = ag.setup()
        assert proc.returncode == 0, proc.stdout + proc.stderr
        yield ag
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _correct() -> str:
    return (SUBMISSIONS / "correct_module.py").read_text(encoding="utf-8")


def _two_modules() -> dict[str, bytes]:
    """The correct homework split the way students split it: Q4-Q5 in a module the main file imports."""
    text = _correct()
    q4, demo = text.index("# ---------------------------------------------------------------- Q4"), \
        text.index("# ---------------------------------------------------------------- trying it out")
    main = text[:q4] + "from utils_hmm import *  # noqa: F401,F403\n\n" + text[demo:]
    helper = "import numpy as np\n\n" + text[q4:demo]
    return {"homework.py": main.encode(), "utils_hmm.py": helper.encode()}


def _zipped(files: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _with_crash_in(function: str) -> str:
    """The correct module whose ``function`` kills its interpreter (a segfault), as ctypes code does."""
    head = next(line for line in _correct().splitlines(True) if line.startswith(f"def {function}("))
    return _correct().replace(head, head + "    import ctypes\n    ctypes.string_at(0)\n", 1)


PRINTS_FAKE_JSON = 'print(\'{"score": 1000, "tests": []}\')\nimport sys\nsys.stdout.write("\\x00}}]")\n'

#: upload shape -> (files in /autograder/submission, points lost: functions whose cases score 0, or "all")
UPLOADS = {
    "correct-py": (lambda: {"hw.py": _correct().encode()}, ()),
    "notebook": (lambda: {"homework.ipynb": (SUBMISSIONS / "colab_notebook.ipynb").read_bytes()}, ()),
    "two-modules": (_two_modules, ()),
    "zip": (lambda: {"submission.zip": _zipped(_two_modules())}, ()),
    "wrong-name-and-prints": (lambda: {"My Homework (final) v2.PY": (PRINTS_FAKE_JSON + _correct()).encode()}, ()),
    "syntax-error": (lambda: {"hw.py": (SUBMISSIONS / "syntax_error.py").read_bytes()}, "all"),
    "hangs-in-a-function": (lambda: {"hw.py": (SUBMISSIONS / "hangs_in_one_function.py").read_bytes()},
                            ("baum_welch",)),
    "crashes-the-interpreter": (lambda: {"hw.py": _with_crash_in("kl_to_standard_normal").encode()},
                                ("kl_to_standard_normal",)),
    "crashes-at-import": (lambda: {"hw.py": ("import os\nos.abort()\n" + _correct()).encode()}, "all"),
}


@pytest.mark.slow
@pytest.mark.parametrize("shape", list(UPLOADS))
def test_gradescope_autograder_grades_every_upload_shape(autograder, shape):
    files, lost = UPLOADS[shape]
    doc, stdout = autograder.run(files())
    validate_gradescope(doc)
    code, per_function, written = rubric_points()
    expected = 0.0 if lost == "all" else code - sum(per_function[f] for f in lost)
    assert doc["score"] == pytest.approx(expected, abs=1e-3), doc["output"]
    scored = [t for t in doc["tests"] if "max_score" in t]
    assert sum(t["max_score"] for t in scored) == pytest.approx(code)  # what Gradescope's points must be
    assert doc["extra_data"]["isolation"] in ("bwrap-fork", "bwrap", "unshare")
    assert doc["extra_data"]["autograder_error"] is False if "autograder_error" in doc["extra_data"] else True
    manual = [t for t in doc["tests"] if "manual" in t.get("tags", [])]
    assert [t["number"].split(".")[0] for t in manual] == list(written)
    for t in manual:  # graded in Gradescope's manual grading: informational here, no points
        assert "score" not in t and "max_score" not in t and "status" not in t
        assert "Graded by the course staff in Gradescope's manual grading" in t["output"]
    hidden = [t for t in scored if "hidden" in t["tags"]]
    assert hidden and all(t["visibility"] == "after_due_date" for t in hidden)
    assert all(t["visibility"] == "visible" for t in scored if "public" in t["tags"])
    assert doc["output"].startswith(f"Autograder score: ")
    if lost == "all":
        assert "could not be loaded" in doc["output"]
    if shape == "syntax-error":
        assert "SyntaxError" in doc["output"]
    if shape == "hangs-in-a-function":
        assert any(t["status"] == "failed" and "timeout" in t["tags"] for t in scored)
    if shape == "crashes-the-interpreter":
        assert {t["name"].split()[1] for t in scored if "crash" in t["tags"]} == {"kl_to_standard_normal"}


@pytest.mark.slow
def test_gradescope_autograder_times_out_with_score_0_and_a_message(autograder):
    doc, stdout = autograder.run({"hw.py": b"while True:\n    pass\n"}, env={"HWGRADER_AUTOGRADER_TIMEOUT": "4"})
    validate_gradescope(doc)
    assert doc["score"] == 0 and doc["extra_data"]["error"] == "timeout"
    assert "did not finish within 4 seconds" in doc["output"]
    code, _, _ = rubric_points()
    assert [t["max_score"] for t in doc["tests"]] == [code] and doc["tests"][0]["status"] == "failed"


@pytest.mark.slow
def test_gradescope_autograder_failure_of_hwgrader_still_writes_results(autograder):
    """Otter #305: a crash in the autograder left no results.json. Here a broken rubric in the
    bundle makes ``hwgrader grade`` exit 2: the student still gets a results.json saying so."""
    rubric = autograder.root / "source" / "assignment" / "rubric.yaml"
    good = rubric.read_bytes()
    try:
        rubric.write_text("questions: [unclosed\n", encoding="utf-8")
        doc, stdout = autograder.run({"hw.py": _correct().encode()})
    finally:
        rubric.write_bytes(good)
    validate_gradescope(doc)
    assert doc["score"] == 0 and doc["extra_data"]["autograder_error"] is True
    assert "rubric.yaml" in doc["output"] and "autograder error" in doc["output"]


@pytest.mark.slow
def test_gradescope_autograder_without_code_names_what_was_uploaded(autograder):
    doc, _ = autograder.run({"notes.txt": b"I did it on paper", "scan.pdf": b"%PDF-1.4"})
    validate_gradescope(doc)
    assert doc["score"] == 0 and doc["extra_data"]["error"] == "no_submission"
    assert "notes.txt" in doc["output"] and "scan.pdf" in doc["output"]


@pytest.mark.slow
def test_gradescope_autograder_layout_after_a_run(autograder):
    """The bundle's source (rubric, references, hidden cases) is root's alone; only root writes the
    results; hwgrader ran from the bundle's wheel, not this checkout."""
    import stat

    autograder.run({"hw.py": _correct().encode()})
    source, results = autograder.root / "source", autograder.root / "results"
    assert stat.S_IMODE(source.stat().st_mode) == 0o700 and source.stat().st_uid == 0
    assert stat.S_IMODE(results.stat().st_mode) == 0o755 and results.stat().st_uid == 0
    assert (results / "results.json").stat().st_uid == 0
    assert not [p for p in results.iterdir() if p.name != "results.json"], "no temporary file left"
    python = autograder.root / "hwgrader-venv" / "bin" / "python"
    where = subprocess.run([str(python), "-I", "-c", "import grader; print(grader.__file__)"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert where.startswith(str(autograder.root / "hwgrader-venv"))


def test_bundle_zip_has_gradescope_layout_and_a_loadable_assignment(bundle_zip, tmp_path):
    import json
    import zipfile

    from grader.assignment.plan import build_plan

    path, stdout = bundle_zip
    code, _, written = rubric_points()
    assert f"set the autograder's points to {code:g}" in stdout
    assert "(" + ", ".join(f"{q.upper()} {p:g}" for q, p in written.items()) + ")" in stdout
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        zf.extractall(tmp_path)
    assert {"setup.sh", "run_autograder", "hwgrader-bundle.json", "requirements.txt",
            "assignment/rubric.yaml"} <= set(infos)  # at the zip's root, not in a folder
    for name in ("setup.sh", "run_autograder"):
        assert (infos[name].external_attr >> 16) & 0o111, f"{name} must be executable"
    assert not [n for n in infos if "__pycache__" in n or n.endswith(".pyc")]
    wheels = [n for n in infos if n.startswith("dist/") and n.endswith("-py3-none-any.whl")]
    assert len(wheels) == 1 and not [n for n in infos if n.startswith("wheels/")]  # --deps pypi
    with zipfile.ZipFile(tmp_path / wheels[0]) as wheel:
        names = set(wheel.namelist())
    assert {"grader/cli.py", "grader/integrations/templates/run_autograder",
            "grader/outputs/templates/student.html"} <= names
    assert not [n for n in names if n.startswith("reference/")], "the wheel holds hwgrader, not the answers"
    config = json.loads((tmp_path / "hwgrader-bundle.json").read_text(encoding="utf-8"))
    assert config["autograder_points"] == pytest.approx(code) and config["isolation"] == "auto"
    rubric = load_rubric(tmp_path / "assignment" / "rubric.yaml")
    assert rubric.reference_dir == (tmp_path / "assignment" / "reference").resolve()
    assert sum(c.points for c in build_plan(rubric).cases) == pytest.approx(code)


@pytest.mark.parametrize("args, message", [
    (("bundle", "gradescope", "out.tar"), "hwgrader: error: out.tar: the bundle must be a .zip file"),
    (("bundle", "gradescope", "out.zip", "--rubric", "missing.yaml"),
     "hwgrader: error: rubric not found: missing.yaml (pass --rubric FILE)"),
    (("bundle", "gradescope", "out.zip", "--deps", "pypi", "--timeout", "0"),
     "hwgrader: error: --timeout must be positive, got 0"),
], ids=["not-a-zip", "missing-rubric", "bad-timeout"])
def test_bundle_usage_errors_are_one_line_with_exit_2(tmp_path, args, message):
    proc = hwgrader(*args, cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip() == message
    assert not (tmp_path / "out.zip").exists()


def test_bundle_refuses_a_broken_rubric_naming_it(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(RUBRIC.read_text(encoding="utf-8").replace("function: batchnorm_forward",
                                                              "function: no_such_reference", 1)
                   .replace("reference: ../reference", f"reference: {ROOT / 'reference'}"), encoding="utf-8")
    proc = hwgrader("bundle", "gradescope", "out.zip", "--rubric", str(bad), "--deps", "pypi", cwd=tmp_path)
    assert proc.returncode == 2 and str(bad) in proc.stderr and "no_such_reference" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and not (tmp_path / "out.zip").exists()


def test_wheel_platforms_cover_every_older_manylinux():
    from grader.integrations.gradescope_bundle import compatible_platforms

    tags = compatible_platforms("manylinux_2_35_x86_64")
    assert tags[0] == "manylinux_2_35_x86_64" and tags[-1] == "manylinux1_x86_64"
    assert {"manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= set(tags)
    assert compatible_platforms("macosx_11_0_arm64") == ["macosx_11_0_arm64"]


@pytest.mark.parametrize("root, process_works, allowed",
                         [(False, True, False), (True, False, False), (True, True, True)])
def test_autograder_falls_back_to_process_only_as_an_unprivileged_uid(monkeypatch, root, process_works, allowed):
    """No sandbox: 'process' only where its workers drop root to a fresh uid (sandbox v2 refuses
    'process' as root otherwise; as a non-root user the worker would be the results' writer)."""
    from grader.errors import IsolationUnavailable
    from grader.integrations import autograder
    from grader.sandbox import detect, levels

    def no_sandbox(*a, **k):
        raise IsolationUnavailable("no sandbox works here (test)")

    monkeypatch.setattr(detect, "choose", no_sandbox)
    monkeypatch.setattr(detect, "probe", lambda level: None if process_works else "refused (test)")
    monkeypatch.setattr(levels, "is_root", lambda: root)
    if allowed:
        level, notes = autograder.choose_isolation("auto")
        assert level == "process" and any("unprivileged uid" in n for n in notes)
    else:
        with pytest.raises(autograder.GradingFailed) as exc:
            autograder.choose_isolation("auto")
        assert exc.value.kind == "isolation" and exc.value.autograder_error


def test_autograder_keeps_a_sandbox_when_one_starts(monkeypatch):
    from grader.integrations import autograder
    from grader.sandbox import detect
    from grader.sandbox.levels import Isolation

    monkeypatch.setattr(detect, "choose", lambda *a, **k: detect.Detection(Isolation.BWRAP))
    monkeypatch.setattr(detect, "probe", lambda level: pytest.fail("no process fallback wanted"))
    assert autograder.choose_isolation("auto") == ("bwrap", [])


def test_runner_bug_still_writes_valid_results(tmp_path, monkeypatch, capsys):
    """A bug in the runner itself (here: grade_upload raising) ends in a results.json, not a traceback only."""
    import json

    from grader.integrations import autograder

    (tmp_path / "source").mkdir()
    (tmp_path / "source" / autograder.CONFIG_NAME).write_text(json.dumps({"autograder_points": 88}))
    (tmp_path / "submission").mkdir()

    def broken(*args):
        raise KeyError("rubric")

    monkeypatch.setattr(autograder, "grade_upload", broken)
    assert autograder.main([str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "results" / "results.json").read_text(encoding="utf-8"))
    validate_gradescope(doc)
    assert doc["score"] == 0 and doc["extra_data"]["error"] == "autograder_crash"
    assert doc["tests"][0]["max_score"] == 88 and "KeyError" in doc["output"]
    assert "Traceback" in capsys.readouterr().out  # for the instructor's log


def test_to_gradescope_takes_written_parts_out_of_the_score():
    from grader.integrations.autograder import to_gradescope

    local = {"score": 3.0, "execution_time": 1.5, "output": "x", "extra_data": {"isolation": "bwrap"},
             "tests": [{"name": "a", "number": "q1.1", "score": 1.0000004, "max_score": 2, "status": "failed",
                        "output": "", "tags": ["q1", "public"], "visibility": "visible"},
                       {"name": "w", "number": "q1.2", "score": 2.0, "max_score": 6, "status": "passed",
                        "output": "Graded by a person", "tags": ["q1", "manual", "written"],
                        "visibility": "visible"}]}
    doc = to_gradescope(local, {})
    validate_gradescope(doc)
    assert doc["score"] == 1.0 and doc["tests"][0]["score"] == 1.0
    assert "score" not in doc["tests"][1] and "6 points" in doc["tests"][1]["output"]


@pytest.mark.slow
def test_gradescope_autograder_two_versions_of_the_homework_ask_for_one(autograder):
    """Two files that both define the homework are two submissions to intake: the student is told."""
    doc, _ = autograder.run({"hw.py": _correct().encode(), "hw_old.py": _correct().encode()})
    validate_gradescope(doc)
    assert doc["score"] == 0 and doc["extra_data"]["error"] == "several_submissions"
    assert "upload one homework" in doc["output"]
