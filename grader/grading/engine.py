"""Grading one submission: load it in a worker, run every planned case, compare, diagnose, score.

The engine is the only place where a worker's reply meets an expected
output, and it does so in the parent on plain float arrays. Nothing here is
specific to a question: a case's function, inputs, tolerances and known
mistakes all come from the plan.
"""

from __future__ import annotations

import builtins
import time
from pathlib import Path
from typing import Optional, Union

import numpy as np

from grader.grading.compare import compare_outputs, outputs_match
from grader.assignment.intake import SubmissionSource, read_source
from grader.assignment.submission import Submission, read_submission
from grader.assignment.plan import Plan, PlannedCase
from grader.grading.results import (CaseResult, Diagnosis, QuestionResult, SubmissionResult,
                            WrittenResult)
from grader.grading.verdicts import Verdict
from grader.sandbox.replies import Outcome
from grader.sandbox.session import CallOutcome, WorkerSession

#: The parent's memory for one reply is bounded by this multiple of the case's expected output
#: size (float64 bytes of every output), and never less than ``REPLY_BYTES_FLOOR``: a reply
#: larger than that is not read (the output is ``rejected`` as far too large), so a student whose
#: replies sit at the protocol's 80 MB-per-array cap costs the parent a few MB per call.
REPLY_BYTES_PER_EXPECTED = 16
REPLY_BYTES_FLOOR = 4 << 20

#: Exception names a hidden case's message may show: Python's own (``ValueError``), never a
#: name the student's code made up (a class named after the hidden input would leak it).
BUILTIN_EXCEPTIONS = frozenset(name for name, obj in vars(builtins).items()
                               if isinstance(obj, type) and issubclass(obj, BaseException))


def grade_submission(path: Union[Path, SubmissionSource], plan: Plan, *, isolation: Optional[str] = None,
                     slot: int = 0) -> SubmissionResult:
    """Grade one submission (what intake found, or the file at ``path``); a broken or hostile
    submission is graded as such, never raised."""
    started = time.monotonic()
    if isinstance(path, Submission):  # read in the batch's parent (a Dask task carries it)
        submission = path
        result = SubmissionResult(student=submission.student, file=submission.path.name, isolation="none")
    elif isinstance(path, SubmissionSource):
        submission = read_source(path)
        result = SubmissionResult(student=path.student, file=path.main.file_name, isolation="none",
                                  display_name=path.display_name, lms_id=path.lms_id)
    else:
        submission = read_submission(path)
        result = SubmissionResult(student=submission.student, file=Path(path).name, isolation="none")
    result.sources = list(submission.units)
    if submission.load_error:
        result.load_error = submission.load_error
        _fill(result, plan, submission, answers={}, run=None)
    else:
        with WorkerSession(submission.units, plan.answer_names, plan.limits,
                           isolation=isolation, slot=slot) as session:
            result.isolation = session.isolation
            report = session.load()
            result.cell_failures = list(report.cell_failures)
            wanted = {c.function for c in plan.cases}
            if not report.ok:
                result.load_error = report.error or f"the submission could not be loaded ({report.verdict})"
                _fill(result, plan, submission, answers=report.answers, run=None)
            elif not wanted & set(report.functions):
                # Nothing of the homework survived loading (a syntax error, a crash before the
                # first def) or was ever there (a helper module, an empty file): that is a load
                # error, not fifty "missing function" failures.
                if report.cell_failures:
                    first = report.cell_failures[0]
                    where = f"cell {first.cell}" if first.cell else "the module"
                    result.load_error = f"{submission.path.name}: {where} raised {first.summary}"
                else:
                    result.load_error = (f"{submission.path.name} defines none of the homework's functions "
                                         f"({', '.join(sorted(wanted))})")
                _fill(result, plan, submission, answers=report.answers, run=None)
            else:
                runner = _CaseRunner(session, set(report.functions), result.cell_failures, plan.timing.strikes)
                _fill(result, plan, submission, answers=report.answers, run=runner.run)
        # After the session closed: its output pipe has been read to the end. What was printed
        # once a hidden case had started is the instructor's only (SubmissionResult.hidden_output).
        result.output, result.output_truncated = session.output()
        result.hidden_output, result.hidden_output_truncated = session.hidden_output()
        result.incidents = list(session.incidents)
        result.hidden_incidents = list(session.hidden_incidents)
    result.seconds = round(time.monotonic() - started, 3)
    return result


def _fill(result: SubmissionResult, plan: Plan, submission: Submission, *, answers: dict, run) -> None:
    # Every public case runs before the first hidden one. Whatever a worker learns on a hidden
    # case (kept in a global, a thread, a file) could otherwise come back in a later public
    # case's printed output, message or values, which the student sees in full.
    done: dict[str, CaseResult] = {}
    if run:
        for case in sorted(plan.cases, key=lambda c: c.visibility != "public"):  # stable sort
            done[case.number] = run(case)
    for q in plan.questions:
        question = QuestionResult(id=q.id, title=q.title, max_score=q.points)
        for case in q.cases:
            question.cases.append(done[case.number] if run else _not_run(case))
        if q.written:
            answer = answers.get(q.written.answer) or submission.markdown_answers.get(q.written.answer)
            question.written = WrittenResult(
                question=q.id, number=f"{q.id}.{len(q.cases) + 1}", title=f"{q.title}: written answer",
                prompt=q.written.prompt, criteria=list(q.written.criteria),
                max_score=q.written.points, answer=answer)
        result.questions.append(question)


def _base(case: PlannedCase, verdict: Verdict, message: str, **extra) -> CaseResult:
    public = case.visibility == "public"
    return CaseResult(question=case.question, part=case.part, case=case.case, number=case.number,
                      function=case.function, visibility=case.visibility, max_score=case.points,
                      score=extra.pop("score", 0.0), verdict=verdict, message=message,
                      inputs=case.inputs if public else None, **extra)


def _not_run(case: PlannedCase) -> CaseResult:
    return _base(case, Verdict.SKIPPED, "not run: the submission could not be loaded")


class _CaseRunner:
    """Runs one submission's cases in its session, remembering which functions keep hanging.

    Each call gets its case's own CPU-time limit (``PlannedCase.cpu_seconds``, scaled from the
    reference's time) under the wall-clock ceiling ``Limits.call_seconds``; after
    ``plan.timing.strikes`` timeouts of one function its remaining cases are not run, since they
    would only spend the batch's time waiting again.
    """

    def __init__(self, session: WorkerSession, defined: set[str], cell_failures: list, strikes: int):
        self.session, self.defined, self.cell_failures = session, defined, cell_failures
        self.strikes = strikes
        self.timeouts: dict[str, int] = {}

    def run(self, case: PlannedCase) -> CaseResult:
        if case.function not in self.defined:
            why = "check its name"
            if self.cell_failures:
                first = self.cell_failures[0]
                where = f"cell {first.cell}" if first.cell else "your module"
                why = f"loading {where} raised {first.summary}"
            return _base(case, Verdict.MISSING, f"{case.function} is not defined in your submission ({why})")
        if self.timeouts.get(case.function, 0) >= self.strikes:
            cases = "another case" if self.strikes == 1 else f"{self.strikes} other cases"
            return _base(case, Verdict.TIMEOUT, f"not run: {case.function} already ran out of time on {cases}")
        outcome = self.session.call(case.function, list(case.args), dict(case.kwargs),
                                    list(case.arg_names) + list(case.kwargs), len(case.output_names),
                                    output_names=list(case.output_names),
                                    hidden=case.visibility != "public", max_reply_bytes=reply_bytes(case),
                                    cpu_seconds=case.cpu_seconds, cpu_limit_text=case.cpu_limit_text)
        if outcome.verdict == Outcome.TIMEOUT:
            self.timeouts[case.function] = self.timeouts.get(case.function, 0) + 1
        if outcome.verdict != Outcome.OK:
            return _failed_call(case, outcome)
        return _judge(case, outcome)


def reply_bytes(case: PlannedCase) -> int:
    """The most the parent reads of one reply to ``case`` (see ``REPLY_BYTES_PER_EXPECTED``)."""
    expected = sum(8 * int(np.size(e)) for e in case.expected)
    return max(REPLY_BYTES_FLOOR, REPLY_BYTES_PER_EXPECTED * expected)


def _hidden_failure(case: PlannedCase, verdict: Verdict, outcome: CallOutcome) -> str:
    """A hidden case's failure in words that carry nothing the student's code chose."""
    if verdict is Verdict.EXCEPTION:
        name = outcome.message.split(":", 1)[0].strip()
        return f"{case.function} raised {name if name in BUILTIN_EXCEPTIONS else 'an exception'} on a hidden case"
    return f"{case.function}: {verdict.label} on a hidden case"


def _failed_call(case: PlannedCase, outcome: CallOutcome) -> CaseResult:
    public = case.visibility == "public"
    verdict = Verdict(outcome.verdict.value)
    message, traceback = outcome.message, outcome.traceback
    if not public:
        # Messages, tracebacks, exception names, exit codes: all chosen by code that saw the
        # hidden inputs. Only the verdict (and a builtin exception name) is shown.
        message, traceback = _hidden_failure(case, verdict, outcome), None
    return _base(case, verdict, message, traceback=traceback, mutated=list(outcome.mutated),
                 seconds=outcome.seconds)


def _judge(case: PlannedCase, outcome: CallOutcome) -> CaseResult:
    public = case.visibility == "public"
    checks, verdict = compare_outputs(case.output_names, outcome.outputs, case.expected,
                                      rtol=case.rtol, atol=case.atol, keep_values=public)
    share = sum(c.passed for c in checks) / len(checks)
    diagnosis = None if verdict is Verdict.PASSED else _diagnose(case, outcome)
    notes = []
    if outcome.mutated:
        names = ", ".join(f"'{n}'" for n in outcome.mutated)
        notes.append(f"{case.function} modified its argument{'s' if len(outcome.mutated) > 1 else ''} "
                     f"{names} in place")
        if case.must_not_modify_inputs:
            verdict, share = Verdict.MUTATED, 0.0
            notes[-1] += "; it must leave its inputs unchanged"
    if verdict is Verdict.PASSED:
        message = "passed"
    elif public:
        message = "; ".join(c.message for c in checks if not c.passed) or verdict.label
    else:
        wrong = [c.name for c in checks if not c.passed]
        message = f"{verdict.label} in {', '.join(repr(n) for n in wrong)} on a hidden case" \
            if wrong else f"{verdict.label} on a hidden case"
    if diagnosis:
        message += f" (this looks like: {diagnosis.title})"
    if notes:
        message = "; ".join([message] + notes)
    if not public:
        for c in checks:  # keep the verdict, drop anything derived from hidden values
            c.message = "correct" if c.passed else "wrong"
            c.worst_index = c.worst_error = None
    # Wrong outputs are kept for the instructor's class analysis (never for a student's files).
    received = None if all(c.passed for c in checks) else tuple(outcome.outputs)
    return _base(case, verdict, message, score=round(case.points * share, 6), outputs=checks,
                 diagnosis=diagnosis, mutated=list(outcome.mutated), seconds=outcome.seconds,
                 received=received)


def _diagnose(case: PlannedCase, outcome: CallOutcome) -> Optional[Diagnosis]:
    rtol, atol = max(case.rtol, 1e-6), max(case.atol, 1e-9)
    for mistake in case.mistakes:
        if mistake.outputs is not None and outputs_match(outcome.outputs, mistake.outputs, rtol=rtol, atol=atol):
            return Diagnosis(mistake.id, mistake.title, mistake.hint)
    return None
