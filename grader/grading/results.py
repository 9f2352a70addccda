"""What grading produced, as plain data: the single input of every writer.

The engine fills these; ``gradescope``, ``report`` and the terminal summary
only read them. Hidden cases never carry inputs, expected or received
values: the engine leaves those fields ``None`` so no writer can leak them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np

Verdict = Literal[
    "passed",     # every output within tolerance
    "wrong",      # numbers differ beyond tolerance
    "shape",      # an output has the wrong shape or count
    "nonfinite",  # NaN or inf where a finite number was expected
    "rejected",   # not convertible to a float array (object, string, ragged, too large)
    "exception",  # the student's function raised
    "timeout",    # the call ran past its wall-clock limit
    "memory",     # the worker ran out of its memory limit
    "crash",      # the worker died or broke the protocol (exit, signal, garbage)
    "missing",    # the submission does not define the function
    "mutated",    # modified an input the rubric says it must leave alone
    "skipped",    # not run: the submission's time budget was spent, or it failed to load
]

#: Plain words for each verdict, for students and instructors.
VERDICT_WORDS: dict[str, str] = {
    "passed": "passed",
    "wrong": "wrong values",
    "shape": "wrong shape",
    "nonfinite": "NaN or infinite values",
    "rejected": "output is not a numeric array",
    "exception": "raised an exception",
    "timeout": "ran out of time",
    "memory": "ran out of memory",
    "crash": "the worker process crashed",
    "missing": "function not defined",
    "mutated": "modified its inputs",
    "skipped": "not run",
}

def fmt_points(x: float, digits: int = 2) -> str:
    """How every writer shows points: ``20.0`` -> ``"20"``, ``13.5`` -> ``"13.5"``, ``2/3`` -> ``"0.67"``."""
    x = round(float(x), digits)
    if x == int(x):
        return str(int(x))
    return f"{x:.{digits}f}".rstrip("0").rstrip(".")


#: Verdicts that mean the run itself broke, listed apart in the class overview.
RUN_FAILURES = frozenset({"timeout", "memory", "crash"})


@dataclass
class Diagnosis:
    """A known mistake whose output matches the student's."""

    mistake: str  # registry id, e.g. "q1.unbiased_variance"
    title: str    # "unbiased variance (divided by N-1)"
    hint: str     # what to fix, written for the student


@dataclass
class OutputCheck:
    """One returned value compared with the reference (e.g. ``dgamma``)."""

    name: str
    passed: bool
    message: str                                 # "'dx' max abs error 3.0 at [4, 7]"
    expected: Optional[np.ndarray] = None        # public cases only
    got: Optional[np.ndarray] = None             # public cases only
    mismatch: Optional[np.ndarray] = None        # bool mask, same shape, public only
    worst_index: Optional[tuple[int, ...]] = None
    worst_error: Optional[float] = None


@dataclass
class CaseResult:
    """One call of one student function on one rubric case."""

    question: str          # "q1"
    part: str              # "forward"
    case: str              # "lecture"
    number: str            # "q1.3", unique in the submission
    function: str          # "batchnorm_forward"
    visibility: Literal["public", "hidden"]
    max_score: float
    score: float
    verdict: Verdict
    message: str           # one line for the student; for hidden cases never mentions inputs
    outputs: list[OutputCheck] = field(default_factory=list)
    inputs: Optional[dict[str, Any]] = None      # public cases only
    diagnosis: Optional[Diagnosis] = None
    mutated: list[str] = field(default_factory=list)  # argument names the call modified
    traceback: Optional[str] = None              # student's traceback for "exception"
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.function} ({self.case})"

    @property
    def status(self) -> Literal["passed", "failed"]:
        return "passed" if self.verdict == "passed" else "failed"


@dataclass
class WrittenResult:
    """A written answer, graded later by a person (Gradescope ``manual`` test)."""

    question: str
    number: str
    title: str
    prompt: str
    criteria: list[str]
    max_score: float
    answer: Optional[str]      # None when the submission has no answer
    score: float = 0.0
    graded: bool = False


@dataclass
class CellFailure:
    """A notebook cell (or the module body) that raised while loading."""

    cell: int                  # 1-based cell number; 0 for a .py module
    summary: str               # "ModuleNotFoundError: No module named 'keras'"
    traceback: str             # points at the student's file and line


@dataclass
class QuestionResult:
    id: str
    title: str
    max_score: float
    cases: list[CaseResult] = field(default_factory=list)
    written: Optional[WrittenResult] = None

    @property
    def score(self) -> float:
        total = sum(c.score for c in self.cases)
        if self.written is not None:
            total += self.written.score
        return round(total, 6)

    @property
    def code_max_score(self) -> float:
        return sum(c.max_score for c in self.cases)


@dataclass
class SubmissionResult:
    student: str               # file name without extension
    file: str                  # file name as handed in
    isolation: str             # "bwrap", "unshare" or "process": how strongly it was sandboxed
    questions: list[QuestionResult] = field(default_factory=list)
    load_error: Optional[str] = None        # could not be loaded at all (syntax error, exit at import...)
    cell_failures: list[CellFailure] = field(default_factory=list)
    output: str = ""                        # what the submission printed, capped
    output_truncated: bool = False
    incidents: list[str] = field(default_factory=list)  # "baum_welch timed out after 10 s; worker restarted"
    seconds: float = 0.0
    display_name: str = ""                  # the student's name as the LMS or the file gave it
    lms_id: Optional[str] = None            # the LMS's student id (intake), for grade exports

    @property
    def score(self) -> float:
        return round(sum(q.score for q in self.questions), 6)

    @property
    def max_score(self) -> float:
        return sum(q.max_score for q in self.questions)

    @property
    def cases(self) -> list[CaseResult]:
        return [c for q in self.questions for c in q.cases]

    @property
    def run_failures(self) -> list[CaseResult]:
        """Cases lost to a timeout, memory exhaustion or crash, not to wrong numbers."""
        return [c for c in self.cases if c.verdict in RUN_FAILURES]

    def question(self, qid: str) -> QuestionResult:
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(qid)
