"""``check --junit PATH``: the public tests as JUnit XML for GitLab's and GitHub's test-report readers.

There is no official JUnit schema; this writes what the common readers use
(GitLab's unit-test reports, dorny/test-reporter, mikepenz/action-junit-report,
``junitparser``; Jenkins' junit-10.xsd):

- ``testsuites`` with ``tests``/``failures``/``errors``/``skipped``/``time``;
- one ``testsuite`` per question (``name`` = ``q1 Batch normalization``), with
  its points as a suite ``property`` (test-case properties are not
  xunit2-valid);
- one ``testcase`` per public test: ``classname`` = ``q1.batchnorm_forward``
  (GitLab shows the classname as the suite; cases without one are merged),
  ``name`` = ``q1.1 small`` (unique: GitLab keeps only the first of duplicate
  names), ``time``, ``file`` and ``line`` (the function's ``def``, or the
  traceback's line);
- a wrong answer is a ``failure`` and a test that could not run to the end
  (exception, timeout, memory, crash, not loaded) an ``error``, each with a
  one-line ``message``, the verdict as ``type`` and the got/expected text,
  hint and traceback as content.

Written answers are not tests here: a person grades them.
"""

from __future__ import annotations

import datetime as _dt
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional, Sequence

from grader.grading.results import CaseResult, SubmissionResult, fmt_points
from grader.grading.verdicts import Verdict
from grader.integrations.failures import failure_details, function_lines, traceback_line
from grader.outputs.atomic import write_bytes_atomic
from grader.integrations.text import one_line, visible

#: Verdicts reported as ``<error>`` (the test could not run to the end) rather than ``<failure>``.
ERROR_VERDICTS = frozenset({Verdict.EXCEPTION, Verdict.SKIPPED} | {v for v in Verdict if v.run_failure})


def _case_element(case: CaseResult, result: SubmissionResult, source: str, defs: dict[str, int]) -> ET.Element:
    attrs = {"classname": f"{case.question}.{case.function}", "name": f"{case.number} {case.case}",
             "time": f"{case.seconds:.3f}", "file": visible(source)}
    line = traceback_line(case.traceback, result.file) or defs.get(case.function)
    if line:
        attrs["line"] = str(line)
    element = ET.Element("testcase", attrs)
    if case.status == "failed":
        kind = "error" if case.verdict in ERROR_VERDICTS else "failure"
        detail = ET.SubElement(element, kind, {"message": one_line(case.message), "type": case.verdict})
        message = result.load_error if case.verdict is Verdict.SKIPPED and result.load_error else None
        detail.text = failure_details(case) + (f"\n{visible(message)}" if message else "") + \
            f"\npoints: {fmt_points(case.score)}/{fmt_points(case.max_score)}"
    return element


def junit_tree(results: Sequence[SubmissionResult], sources: Optional[dict[str, str]] = None) -> ET.ElementTree:
    """The XML for ``results``; ``sources`` maps a student to the file path to name in ``file``."""
    sources = sources or {}
    root = ET.Element("testsuites", {"name": "hwgrader"})
    totals = dict(tests=0, failures=0, errors=0, skipped=0)
    total_time = 0.0
    stamp = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    for result in results:
        source = sources.get(result.student, result.file)
        defs = function_lines(Path(source)) if Path(source).is_file() else {}
        prefix = f"{visible(result.student)}: " if len(results) > 1 else ""
        for q in result.questions:
            if not q.cases:
                continue
            cases = [_case_element(c, result, source, defs) for c in q.cases]
            counts = dict(tests=len(cases),
                          failures=sum(1 for e in cases if e.find("failure") is not None),
                          errors=sum(1 for e in cases if e.find("error") is not None), skipped=0)
            seconds = sum(c.seconds for c in q.cases)
            suite = ET.SubElement(root, "testsuite", {
                "name": f"{prefix}{q.id} {q.title}", **{k: str(v) for k, v in counts.items()},
                "time": f"{seconds:.3f}", "timestamp": stamp, "file": visible(source)})
            props = ET.SubElement(suite, "properties")
            code_points = sum(c.score for c in q.cases)
            ET.SubElement(props, "property", {"name": "points",
                                              "value": f"{fmt_points(code_points)}/{fmt_points(q.code_max_score)}"})
            ET.SubElement(props, "property", {"name": "isolation", "value": result.isolation})
            suite.extend(cases)
            for k, v in counts.items():
                totals[k] += v
            total_time += seconds
    root.attrib.update({k: str(v) for k, v in totals.items()})
    root.set("time", f"{total_time:.3f}")
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(results: Sequence[SubmissionResult], path: Path, sources: Optional[dict[str, str]] = None) -> Path:
    tree = junit_tree(results, sources)
    data = ET.tostring(tree.getroot(), encoding="utf-8", xml_declaration=True) + b"\n"
    return write_bytes_atomic(Path(path), data)


class JUnitWriter:
    """A writer (``grader.outputs.writers.Writer``): collects results, writes the XML at ``finish``."""

    def __init__(self, path: Path, sources: Optional[dict[str, str]] = None):
        self.path, self.sources = Path(path), dict(sources or {})

    def submission(self, result: SubmissionResult) -> None:
        pass

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        write_junit(results, self.path, self.sources)
