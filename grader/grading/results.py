"""What grading produced, as plain data: the single input of every writer.

The engine fills these; ``gradescope``, ``report`` and the terminal summary
only read them. Hidden cases never carry inputs, expected or received
values: the engine leaves those fields ``None`` so no writer can leak them.
What the student's code printed or chose during hidden cases is kept apart in
the ``hidden_*`` fields of ``SubmissionResult``, for the instructor only.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any, Literal, Optional

import numpy as np

from grader.grading.verdicts import Verdict

def fmt_points(x: float, digits: int = 2) -> str:
    """How every writer shows points: ``20.0`` -> ``"20"``, ``13.5`` -> ``"13.5"``, ``2/3`` -> ``"0.67"``."""
    x = round(float(x), digits)
    if x == int(x):
        return str(int(x))
    return f"{x:.{digits}f}".rstrip("0").rstrip(".")


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
    #: The outputs received on a failed comparison (wrong values, shape or NaN), public or hidden,
    #: for the instructor's class analysis (wrong-answer clusters, similarity) in the parent only.
    #: No student-facing writer reads it: hidden values never reach a student.
    received: Optional[tuple[np.ndarray, ...]] = None

    def __post_init__(self) -> None:
        self.verdict = Verdict(self.verdict)  # a word that is not a verdict is a bug, found here

    @property
    def name(self) -> str:
        return f"{self.function} ({self.case})"

    @property
    def status(self) -> Literal["passed", "failed"]:
        return "passed" if self.verdict is Verdict.PASSED else "failed"


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
    # Filled from the gradebook's manual grades (grader.gradebook), never by the engine:
    items: list["AppliedItem"] = field(default_factory=list)   # rubric items the grader applied
    adjustment: float = 0.0    # free points adjustment on top of the items
    comment: str = ""          # the grader's comment to the student
    grader: str = ""           # who graded it last
    answer_changed: bool = False   # the answer was edited after it was graded (grade kept)


@dataclass
class AppliedItem:
    """A rubric item a grader applied to a written answer."""

    label: str
    points: float              # signed: credit or penalty


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
    output: str = ""                        # what the submission printed before any hidden case, capped
    output_truncated: bool = False
    incidents: list[str] = field(default_factory=list)  # "baum_welch timed out after 10 s; worker restarted"
    # Instructor only (results.json ``extra_data.instructor``; never in report.html or any text a
    # student reads): what was printed once a hidden case had started, and the full wording of
    # incidents during hidden cases (exit codes, signals), both chosen by code that saw hidden inputs.
    hidden_output: str = ""
    hidden_output_truncated: bool = False
    hidden_incidents: list[str] = field(default_factory=list)
    seconds: float = 0.0
    hwgrader_failed: bool = False           # hwgrader's own failure, not the student's: regrade on the next run
    display_name: str = ""                  # the student's name as the LMS or the file gave it
    lms_id: Optional[str] = None            # the LMS's student id (intake), for grade exports
    #: The code as read (``{"cell", "filename", "source"}`` per module or notebook code cell),
    #: for the instructor's similarity report; parsed, never run, in the parent.
    sources: list[dict] = field(default_factory=list)

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
        """Cases lost to a timeout, memory exhaustion, crash or invalid reply, not to wrong numbers."""
        return [c for c in self.cases if c.verdict.run_failure]

    def question(self, qid: str) -> QuestionResult:
        for q in self.questions:
            if q.id == qid:
                return q
        raise KeyError(qid)

    @property
    def pending(self) -> float:
        """Points of written parts still waiting for a person's grade."""
        return round(sum(q.written.max_score for q in self.questions
                         if q.written is not None and not q.written.graded), 6)

    def to_json(self) -> dict:
        """Plain, versioned JSON data (see :func:`submission_to_json`)."""
        return submission_to_json(self)

    @staticmethod
    def from_json(data: dict) -> "SubmissionResult":
        return submission_from_json(data)


# --------------------------------------------------------------------------- JSON form
# The gradebook stores each graded submission so a re-run can reuse it; the form is
# versioned (``RESULTS_JSON_VERSION``) and a stored result of another version is re-graded.

#: Bump when a field of these dataclasses changes meaning or is removed.
#: 2: ``output`` holds only what was printed before the first hidden case (``hidden_output`` the rest).
#: 3: arrays stored as raw bytes (base64) instead of lists of numbers.
RESULTS_JSON_VERSION = 3


def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        # raw bytes: exact (NaN, inf, -0.0 too) and ~10x faster than a JSON list of floats
        return {"__ndarray__": {"dtype": value.dtype.str, "shape": list(value.shape),
                                "b64": base64.b64encode(np.ascontiguousarray(value).tobytes()).decode("ascii")}}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": {"dtype": value.dtype.str, "shape": list(value.shape),
                                "data": value.ravel().tolist()}}
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "__dataclass_fields__"):
        return _fields(value)
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__ndarray__"}:
            spec = value["__ndarray__"]
            if "b64" in spec:
                raw = base64.b64decode(spec["b64"])
                return np.frombuffer(raw, dtype=np.dtype(spec["dtype"])).reshape(spec["shape"]).copy()
            return np.asarray(spec["data"], dtype=np.dtype(spec["dtype"])).reshape(spec["shape"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def _fields(obj: Any) -> dict:
    return {f: _encode(getattr(obj, f)) for f in obj.__dataclass_fields__}



def submission_to_json(result: SubmissionResult) -> dict:
    """``result`` as plain JSON data (numpy arrays tagged), with ``version``."""
    data = {"version": RESULTS_JSON_VERSION}
    for name in result.__dataclass_fields__:
        if name == "questions":
            data["questions"] = [
                {**{k: getattr(q, k) for k in ("id", "title", "max_score")},
                 "cases": [_fields(c) for c in q.cases],
                 "written": _fields(q.written) if q.written is not None else None}
                for q in result.questions]
        elif name == "cell_failures":
            data[name] = [_fields(c) for c in result.cell_failures]
        else:
            data[name] = _encode(getattr(result, name))
    return data


def _case_from_json(d: dict) -> CaseResult:
    d = dict(d)
    d["outputs"] = [OutputCheck(**{**o, **{k: _decode(o[k]) for k in ("expected", "got", "mismatch")},
                                   "worst_index": tuple(o["worst_index"]) if o.get("worst_index") is not None else None})
                    for o in d["outputs"]]
    d["inputs"] = _decode(d["inputs"]) if d.get("inputs") is not None else None
    d["diagnosis"] = Diagnosis(**d["diagnosis"]) if d.get("diagnosis") else None
    if d.get("received") is not None:
        d["received"] = tuple(_decode(r) for r in d["received"])
    return CaseResult(**d)


def _written_from_json(d: dict) -> WrittenResult:
    return WrittenResult(**{**d, "items": [AppliedItem(**i) for i in d.get("items", [])]})


def submission_from_json(data: dict) -> SubmissionResult:
    """The inverse of :func:`submission_to_json`; ``ValueError`` for another version or a bad shape."""
    if not isinstance(data, dict) or data.get("version") != RESULTS_JSON_VERSION:
        raise ValueError(f"stored results have version {data.get('version') if isinstance(data, dict) else None!r}, "
                         f"this hwgrader reads {RESULTS_JSON_VERSION}")
    try:
        questions = [QuestionResult(id=q["id"], title=q["title"], max_score=q["max_score"],
                                    cases=[_case_from_json(c) for c in q["cases"]],
                                    written=_written_from_json(q["written"]) if q["written"] else None)
                     for q in data["questions"]]
        rest = {k: v for k, v in data.items() if k not in ("version", "questions", "cell_failures")}
        return SubmissionResult(**rest, questions=questions,
                                cell_failures=[CellFailure(**c) for c in data["cell_failures"]])
    except (KeyError, TypeError) as exc:
        raise ValueError(f"stored results do not match this hwgrader's fields: {exc}") from None

