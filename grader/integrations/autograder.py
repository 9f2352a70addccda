"""The per-submission side of the Gradescope bundle: what ``run_autograder`` runs in the container.

``python -m grader.integrations.autograder ROOT`` (ROOT defaults to
``$HWGRADER_AUTOGRADER_ROOT`` or ``/autograder``):

1. locks the layout down: ``ROOT/source`` (rubric, references, hidden cases)
   readable by root only, ``ROOT/results`` writable by root only;
2. copies ``ROOT/submission`` (whatever the student uploaded: one file,
   several modules, a notebook, a zip, any names) into a private folder as
   one student's folder, so hwgrader's own intake finds the submission;
3. runs ``hwgrader grade`` on it in a child process with a wall-clock limit,
   under the strongest isolation that works here (see ``choose_isolation``);
4. converts that student's ``results.json`` into the one Gradescope reads
   (``to_gradescope``) and writes ``ROOT/results/results.json`` atomically.

Whatever goes wrong - grading crashes, runs out of time, finds no
submission, or this runner has a bug - a results.json is written: score 0
and a message saying what happened (Otter's #305 is a crash that left none,
and the student saw only "failed to execute correctly"). The JSON is built
from data, never from anything printed, so a student's prints cannot break it.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from grader import __version__
from grader.errors import ExitCode
from grader.grading.results import fmt_points as _points
from grader.outputs.atomic import write_bytes_atomic

CONFIG_NAME = "hwgrader-bundle.json"
#: Gradescope's own limit is 10 minutes by default; the runner stops grading before it.
DEFAULT_TIMEOUT = 300.0
#: Where a staged submission goes; it becomes the student's name in hwgrader's intake.
STAGED_NAME = "submission"


@dataclass(frozen=True)
class Layout:
    """Gradescope's folders under one root (``/autograder`` in the container)."""

    root: Path

    @property
    def source(self) -> Path:
        return self.root / "source"

    @property
    def submission(self) -> Path:
        return self.root / "submission"

    @property
    def results(self) -> Path:
        return self.root / "results" / "results.json"

    @classmethod
    def from_env(cls, argv_root: Optional[str] = None) -> "Layout":
        return cls(Path(argv_root or os.environ.get("HWGRADER_AUTOGRADER_ROOT") or "/autograder"))


class GradingFailed(Exception):
    """Grading produced no result for the student; ``message`` is what they read."""

    def __init__(self, kind: str, message: str, *, autograder_error: bool):
        super().__init__(message)
        self.kind, self.message, self.autograder_error = kind, message, autograder_error


# --------------------------------------------------------------------------- isolation

def choose_isolation(required: str = "auto") -> tuple[str, list[str]]:
    """The isolation to grade with, and why: never one where student code would run as root.

    ``auto``: the strongest sandboxed level that starts here (bwrap-fork, bwrap,
    unshare). Gradescope's Docker containers usually lack the privileges these
    need; then ``process``, but only if its workers drop to an unprivileged uid
    (they do when this runs as root and the Python environment is world-readable,
    which setup.sh ensures), so student code can neither write results.json nor
    read the bundle's source. Anything else raises ``GradingFailed``.
    """
    from grader.errors import HwgraderError
    from grader.sandbox.detect import choose, probe
    from grader.sandbox.levels import is_root

    notes: list[str] = []
    if required != "auto":
        return required, [f"isolation {required} required by the bundle"]
    try:
        level = choose().level.value
    except HwgraderError as exc:  # fail-closed detection: no sandboxed level works here
        level = None
        notes.append(f"no sandboxed isolation works here: {exc.message}")
    if level and level != "process":
        return level, notes
    # process: sandbox v2 never runs it as root; as root its workers drop to a fresh uid, or it refuses
    drops = is_root() and probe("process") is None
    if not drops:
        raise GradingFailed("isolation", "The autograder cannot run submissions safely here: no sandbox "
                            "starts and a plain worker would run as the user that writes the results. "
                            "This is not a problem with your submission; your instructor has to fix the "
                            "autograder.", autograder_error=True)
    notes.append("falling back to 'process': workers run as an unprivileged uid that cannot read the "
                 "autograder's source or write its results")
    return "process", notes


# --------------------------------------------------------------------------- layout

def lock_down(layout: Layout) -> None:
    """Only root reads the source and writes the results (as root; elsewhere nothing to enforce)."""
    layout.results.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return
    os.chmod(layout.source, 0o700)
    os.chown(layout.results.parent, 0, 0)
    os.chmod(layout.results.parent, 0o755)


def uploaded_files(folder: Path, limit: int = 200) -> list[str]:
    """Relative paths of what the student uploaded (symlinks listed, never followed)."""
    if not folder.is_dir():
        return []
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            found.append(str((Path(dirpath) / name).relative_to(folder)))
            if len(found) >= limit:
                return found
    return found


def stage(layout: Layout, work: Path) -> Path:
    """Copy the upload into ``work/in/submission/``: one student's folder, whatever its shape
    (intake reads it: files at any depth, zips, notebooks). Links are copied as links, never
    followed: intake refuses them."""
    if not layout.submission.is_dir():
        raise GradingFailed("no_submission", f"No submission folder: {layout.submission} does not exist.",
                            autograder_error=True)
    folder = work / "in"
    shutil.copytree(layout.submission, folder / STAGED_NAME, symlinks=True)
    return folder


# --------------------------------------------------------------------------- grading

def run_grade(folder: Path, out: Path, rubric: Path, isolation: str, timeout: float, log: Path) -> int:
    """``hwgrader grade`` in its own process group; killed with everything it started on timeout."""
    cmd = [sys.executable, "-I", "-m", "grader", "grade", str(folder), "--out", str(out),
           "--rubric", str(rubric), "--isolation", isolation]
    with open(log, "wb") as fh:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT,
                                cwd=str(folder.parent), start_new_session=True)
        try:
            return proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise GradingFailed("timeout", f"Grading did not finish within {timeout:g} seconds and was "
                                f"stopped. Look for code that runs for a long time when your file is "
                                f"loaded or when a function is called (an endless loop, a large "
                                f"training run at the top level).", autograder_error=False) from None


def _intake_rows(out: Path) -> list[dict]:
    path = out / "intake.csv"
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _student_results(out: Path) -> list[Path]:
    return sorted(p for p in out.glob("*/results.json") if p.is_file())


# --------------------------------------------------------------------------- conversion

def _rounded(x: float) -> float:
    return round(float(x), 4)


def to_gradescope(local: dict, config: dict) -> dict:
    """Gradescope's results.json from hwgrader's own for one student.

    Gradescope semantics (autograder_samples docs/specs.md): the top-level
    ``score`` overrides the sum of the tests' scores, so it is written and
    equals that sum exactly; hidden cases are ``after_due_date`` (``hidden``
    would never show and is meant for tests that carry no points); written
    answers are graded in Gradescope's own manual grading, so they are kept
    as informational tests without ``score``/``max_score`` and count nothing here.
    """
    tests = []
    for test in local.get("tests", []):
        test = dict(test)
        if "manual" in test.get("tags", []):
            points = test.pop("max_score", 0)
            test.pop("score", None)
            test.pop("status", None)
            answer = test.get("output", "")
            if "Your answer:" in answer:
                answer = answer[answer.index("Your answer:"):]
            elif answer.startswith("No answer found"):
                answer = answer.split(" Scored 0", 1)[0]
            test["output"] = (f"Graded by the course staff in Gradescope's manual grading "
                              f"({_points(points)} points, not part of this autograder's score).\n\n{answer}")
        else:
            test["score"], test["max_score"] = _rounded(test["score"]), _rounded(test["max_score"])
        tests.append(test)
    score = _rounded(sum(t.get("score", 0.0) for t in tests))
    return {"score": score, "execution_time": local.get("execution_time", 0),
            "output": local.get("output", ""), "output_format": "text", "test_output_format": "text",
            "test_name_format": "text", "visibility": "visible", "stdout_visibility": "hidden",
            "extra_data": dict(local.get("extra_data", {})), "tests": tests}


def _summary(doc: dict, config: dict, intake: list[dict]) -> str:
    """The top-level ``output``: the score, what was graded, per-question lines, what to fix first."""
    code_points = config.get("autograder_points", 0)
    lines = [f"Autograder score: {_points(doc['score'])} / {_points(code_points)} points."]
    graded = [r["path"] for r in intake if r.get("status") == "graded"]
    others = [f"{r['path']} ({r['status']}{': ' + r['detail'] if r.get('detail') else ''})"
              for r in intake if r.get("status") != "graded"]
    if graded:
        lines.append("Graded: " + ", ".join(graded))
    if others:
        lines.append("Not graded: " + "; ".join(others))
    questions = config.get("questions", [])
    own = tuple(f"{q['id'].upper()} {q['title']}:" for q in questions)
    # hwgrader's own lines, minus its score line and per-question lines (those count written answers in)
    lines.extend(line for line in doc["output"].splitlines()[1:] if not line.startswith(own))
    for q in questions:
        tests = [t for t in doc["tests"] if t.get("number", "").split(".")[0] == q["id"] and "max_score" in t]
        failed = sum(t.get("status") == "failed" for t in tests)
        lines.append(f"{q['id'].upper()} {q['title']}: {_points(sum(t['score'] for t in tests))} / "
                     f"{_points(q['code_points'])}" + (f" ({failed} test{'s' if failed != 1 else ''} failed)"
                                                       if failed else ""))
    written = [q for q in config.get("questions", []) if q.get("written_points")]
    if written:
        lines.append("Written answers (" + ", ".join(f"{q['id'].upper()}: {_points(q['written_points'])} points"
                                                   for q in written) +
                     ") are graded by the course staff in Gradescope, not by this autograder.")
    return "\n".join(lines)


def _unstaged(path: str) -> str:
    """An intake path as the student uploaded it (without the staging folder)."""
    parts = Path(path).parts
    if STAGED_NAME in parts:
        parts = parts[parts.index(STAGED_NAME) + 1:]
    return str(Path(*parts)) if parts else path


def failure_results(failure: GradingFailed, config: dict, seconds: float, extra: dict) -> dict:
    """Score 0 with one failed test carrying the autograder's points, so the maxima still add up."""
    reason = failure.message
    if failure.autograder_error:
        reason += " (autograder error: the course staff can see its log)"
    return {"score": 0.0, "execution_time": round(seconds, 3), "output": reason, "output_format": "text",
            "test_output_format": "text", "visibility": "visible", "stdout_visibility": "hidden",
            "extra_data": {**extra, "error": failure.kind, "autograder_error": failure.autograder_error},
            "tests": [{"name": "Grading", "score": 0.0, "max_score": _rounded(config.get("autograder_points", 0)),
                       "status": "failed", "output": reason, "visibility": "visible"}]}


CODE_LIKE = (".py", ".ipynb", ".zip")


def _nothing_graded(status: int, intake: list[dict], files: list[str], log: Path) -> GradingFailed:
    """Why no student result came back: nothing gradable in the upload, or hwgrader failed."""
    graded = [r for r in intake if r.get("status") == "graded"]
    if (intake and not graded) or not any(f.lower().endswith(CODE_LIKE) for f in files):
        why = "; ".join(f"{r['path']}: {r['status']}{' (' + r['detail'] + ')' if r.get('detail') else ''}"
                        for r in intake if r.get("status") != "graded")
        return GradingFailed("no_submission",
                             "No homework found in your upload ("
                             + (", ".join(files) if files else "it was empty") + ")."
                             + (f" {why}." if why else "")
                             + " Upload your homework as a .py module (or several), a Jupyter notebook, "
                               "or a .zip of them.", autograder_error=False)
    lines = log.read_text(encoding="utf-8", errors="replace").strip().splitlines() if log.exists() else []
    errors = [line for line in lines if line.startswith("hwgrader: error:")]
    reason = (errors or lines or [f"hwgrader exited with status {status}"])[-1]
    return GradingFailed("grade_failed", f"The autograder could not grade this submission: {reason}",
                         autograder_error=True)


def grade_upload(layout: Layout, config: dict, extra: dict) -> dict:
    """Grade the upload and return Gradescope's results document (raises ``GradingFailed``)."""
    lock_down(layout)
    rubric = layout.source / config["rubric"]
    timeout = float(os.environ.get("HWGRADER_AUTOGRADER_TIMEOUT") or config.get("timeout") or DEFAULT_TIMEOUT)
    isolation, notes = choose_isolation(config.get("isolation", "auto"))
    extra["isolation"] = isolation
    extra["isolation_notes"] = notes
    for note in notes:
        print(f"hwgrader: {note}")
    work = Path(tempfile.mkdtemp(prefix="hwgrader-gradescope-"))  # mode 0700: root only
    try:
        folder = stage(layout, work)
        out, log = work / "out", work / "grade.log"
        try:
            status = run_grade(folder, out, rubric, isolation, timeout, log)
        finally:
            if log.exists():
                sys.stdout.write(log.read_text(encoding="utf-8", errors="replace"))
        extra["grade_exit_status"] = status
        intake = [{**r, "path": _unstaged(r.get("path", ""))} for r in _intake_rows(out)]
        extra["intake"] = [{k: r.get(k) for k in ("path", "status", "detail")} for r in intake]
        found = _student_results(out)
        if not found:
            raise _nothing_graded(status, intake, extra.get("uploaded_files", []), log)
        if len(found) > 1:
            raise GradingFailed("several_submissions",
                                "Your upload was read as several submissions ("
                                + ", ".join(p.parent.name for p in found) + "); upload one homework.",
                                autograder_error=False)
        local = json.loads(found[0].read_text(encoding="utf-8"))
        doc = to_gradescope(local, config)
        doc["extra_data"].update(extra)
        doc["extra_data"]["isolation"] = local.get("extra_data", {}).get("isolation", isolation)
        if doc["extra_data"].get("file"):
            doc["extra_data"]["file"] = _unstaged(doc["extra_data"]["file"])
        doc["output"] = _summary(doc, config, intake)
        if status != 0:
            doc["extra_data"]["autograder_error"] = True  # hwgrader's own failure on this student
        return doc
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Optional[list[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    layout = Layout.from_env(argv[0] if argv else None)
    started = time.monotonic()
    config: dict = {}
    extra = {"hwgrader_version": __version__, "uploaded_files": uploaded_files(layout.submission)}
    try:
        config = json.loads((layout.source / CONFIG_NAME).read_text(encoding="utf-8"))
        doc = grade_upload(layout, config, extra)
        doc["execution_time"] = round(time.monotonic() - started, 3)
    except GradingFailed as failure:
        doc = failure_results(failure, config, time.monotonic() - started, extra)
    except Exception as exc:  # noqa: BLE001 -- a bug here must still leave a results.json saying so
        traceback.print_exc(file=sys.stdout)
        failure = GradingFailed("autograder_crash", f"The autograder failed ({type(exc).__name__}: {exc}). "
                                "This is not a problem with your submission.", autograder_error=True)
        doc = failure_results(failure, config, time.monotonic() - started, extra)
    try:
        data = json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:  # a NaN score or a stray object: Gradescope would reject the file
        failure = GradingFailed("bad_results", f"The autograder produced results it cannot report ({exc}). "
                                "This is not a problem with your submission.", autograder_error=True)
        doc = failure_results(failure, config, time.monotonic() - started, extra)
        data = json.dumps(doc, indent=2, ensure_ascii=False, default=str).encode("utf-8")
    write_bytes_atomic(layout.results, data)
    print(f"hwgrader: results.json written: score {doc['score']} "
          f"(isolation: {doc['extra_data'].get('isolation', 'none')}, {doc['execution_time']} s)")
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
