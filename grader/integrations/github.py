"""``check --github``: a GitHub Actions step summary, annotations, and the points line GitHub Classroom reads.

- **Step summary**: Markdown appended to ``$GITHUB_STEP_SUMMARY`` (GitHub
  caps it at 1 MiB per step; this one stays far below): the points, a table
  per question and the details of each failed test.
- **Annotations**: workflow commands on stdout, ``::error file=F,line=L,title=T::message``,
  at most one per question (GitHub shows only 10 per kind per step), on the
  ``def`` of the function that failed (or the traceback's line), with the hint.
- **Points**: the two notices GitHub Classroom's reporter
  (classroom-resources/autograding-grading-reporter) emits and Classroom reads:
  ``::notice title=Autograding complete::Points X/Y`` and
  ``::notice title=Autograding report::{"totalPoints":X,"maxPoints":Y}``.
  X/Y are the public tests' points; written answers are graded by a person
  and are not in either number.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional, Sequence, TextIO

from grader.grading.results import QuestionResult, SubmissionResult, fmt_points
from grader.integrations.failures import failure_details, function_lines, load_error_line, traceback_line
from grader.integrations.text import one_line, visible

MAX_SUMMARY_BYTES = 900_000  # GitHub refuses a step summary over 1 MiB


def command_data(text: str) -> str:
    """Escape a workflow command's message (GitHub's toolkit: ``%``, CR, LF)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def command_property(text: str) -> str:
    """Escape a workflow command's property value (also ``:`` and ``,``)."""
    return command_data(text).replace(":", "%3A").replace(",", "%2C")


def workflow_command(kind: str, message: str, **props: Optional[object]) -> str:
    """``::kind key=value,...::message`` with every part escaped."""
    given = ",".join(f"{k}={command_property(str(v))}" for k, v in props.items() if v is not None)
    return f"::{kind}{' ' + given if given else ''}::{command_data(message)}"


def public_points(result: SubmissionResult) -> tuple[float, float]:
    """(scored, possible) over the tests the workflow ran; written answers excluded."""
    return (round(sum(c.score for c in result.cases), 6), round(sum(c.max_score for c in result.cases), 6))


def annotations(result: SubmissionResult, source: str) -> list[str]:
    """At most one ``::error`` per question, plus one when the submission could not be loaded."""
    defs = function_lines(Path(source)) if Path(source).is_file() else {}
    out = []
    if result.load_error:
        out.append(workflow_command("error", visible(result.load_error), file=source,
                                    line=load_error_line(result.load_error),
                                    title="hwgrader: the submission could not be loaded"))
        return out
    for q in result.questions:
        failed = [c for c in q.cases if c.status == "failed"]
        if not failed:
            continue
        first = failed[0]
        lines = [f"{first.number} {first.name}: {one_line(first.message, 1000)}"]
        if first.diagnosis:
            lines.append(f"Hint: {visible(first.diagnosis.hint)}")
        if len(failed) > 1:
            lines.append("Also failed: " + ", ".join(f"{c.number} {c.name}" for c in failed[1:]))
        out.append(workflow_command(
            "error", "\n".join(lines), file=source,
            line=traceback_line(first.traceback, result.file) or defs.get(first.function),
            title=f"{q.id.upper()} {q.title}: {len(failed)} of {len(q.cases)} public tests failed"))
    return out


def points_notices(result: SubmissionResult) -> list[str]:
    scored, possible = public_points(result)
    x, y = fmt_points(scored), fmt_points(possible)
    report = json.dumps({"totalPoints": _number(x), "maxPoints": _number(y)}, separators=(",", ":"))
    return [workflow_command("notice", f"Points {x}/{y}", title="Autograding complete"),
            workflow_command("notice", report, title="Autograding report")]


def _number(text: str) -> float | int:
    value = float(text)
    return int(value) if value == int(value) else value


def _md(text: str) -> str:
    """Text safe in a Markdown table cell or heading: no HTML, no table breaks, no emphasis."""
    text = visible(text).replace("\n", " ")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    for ch in "\\`*_[]|#":
        text = text.replace(ch, "\\" + ch)
    return text


def _html(text: str) -> str:
    """Text inside raw HTML (``<summary>``), where Markdown escapes are not read: entities only."""
    return visible(text).replace("\n", " ").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _fence(text: str) -> str:
    """A fenced block longer than any run of backticks inside ``text`` (it cannot be closed early)."""
    longest, run = 0, 0
    for ch in text:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _question_row(q: QuestionResult) -> str:
    passed = sum(c.status == "passed" for c in q.cases)
    scored = sum(c.score for c in q.cases)
    mark = "✅" if passed == len(q.cases) else "❌"
    return (f"| {mark} {q.id.upper()} {_md(q.title)} | {passed}/{len(q.cases)} | "
            f"{fmt_points(scored)}/{fmt_points(q.code_max_score)} |")


def step_summary(result: SubmissionResult, source: str) -> str:
    """The Markdown a student reads on the workflow run's page."""
    scored, possible = public_points(result)
    cases = result.cases
    good = sum(c.status == "passed" for c in cases)
    lines = [f"## hwgrader self-check: {_md(source)}", "",
             f"**{fmt_points(scored)} / {fmt_points(possible)} points** on the public tests · "
             f"{good} of {len(cases)} tests passed · sandbox: `{result.isolation}`", ""]
    if result.load_error:
        lines += [f"> **Your submission could not be loaded:** {_md(result.load_error)}", ""]
    for cell in result.cell_failures:
        where = f"Cell {cell.cell}" if cell.cell else "Your module"
        lines += [f"> {where} raised {_md(cell.summary)}", ""]
    lines += ["| question | tests passed | points |", "|---|---|---|"]
    lines += [_question_row(q) for q in result.questions if q.cases]
    written = [q for q in result.questions if q.written]
    if written:
        lines += ["", "Written answers (" + ", ".join(q.id.upper() for q in written) +
                  ") are graded by a person and are not counted here."]
    failed = [c for c in cases if c.status == "failed"]
    if failed:
        lines += ["", "### What to fix", ""]
        size = sum(len(s) for s in lines)
        for case in failed:
            block = [f"<details><summary>{_html(case.number)} {_html(case.name)}: "
                     f"{_html(case.verdict.label)}</summary>", "", _fence(failure_details(case)), "",
                     "</details>", ""]
            size += sum(len(s.encode()) + 1 for s in block)
            if size > MAX_SUMMARY_BYTES:
                lines.append(f"(further failures left out: the summary would exceed GitHub's limit)")
                break
            lines += block
    for incident in result.incidents:
        lines += ["", f"Note: {_md(incident)}"]
    return "\n".join(lines) + "\n"


class GitHubWriter:
    """A writer (``grader.outputs.writers.Writer``) for a GitHub Actions step.

    Annotations and the points notices go to ``stream`` (stdout: the runner
    reads workflow commands there); the summary is appended to
    ``summary_path`` (default ``$GITHUB_STEP_SUMMARY``; without it, only the
    commands are written and a note says so on stderr).
    """

    def __init__(self, sources: Optional[dict[str, str]] = None, stream: TextIO = sys.stdout,
                 summary_path: Optional[Path] = None):
        self.sources = dict(sources or {})
        self.stream = stream
        env = os.environ.get("GITHUB_STEP_SUMMARY")
        self.summary_path = summary_path or (Path(env) if env else None)

    def submission(self, result: SubmissionResult) -> None:
        source = self.sources.get(result.student, result.file)
        for line in annotations(result, source) + points_notices(result):
            self.stream.write(line + "\n")
        self.stream.flush()
        if self.summary_path is None:
            print("hwgrader: GITHUB_STEP_SUMMARY is not set (not in GitHub Actions?): "
                  "no step summary written", file=sys.stderr)
            return
        with open(self.summary_path, "a", encoding="utf-8") as fh:
            fh.write(step_summary(result, source))

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        pass
