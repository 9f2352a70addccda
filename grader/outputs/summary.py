"""Pure numbers for the HTML reports: class statistics and array grids.

Everything here is a function of ``SubmissionResult`` objects (or one
``OutputCheck``) and returns frozen dataclasses that the templates display
as they are. No I/O, no HTML: escaping is the templates' job (autoescape).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from typing import Any, Iterable, NamedTuple, Optional, Sequence

import numpy as np

from grader.grading.results import (
    CaseResult,
    OutputCheck,
    SubmissionResult,
    fmt_points,
)
from grader.grading.verdicts import Verdict

# --------------------------------------------------------------------------
# formatting helpers (numbers -> short text)


fmt_score = fmt_points  # one definition of how points look, shared with the text writers


def fmt_value(x: Any, digits: int = 4) -> str:
    """One array element as short text (``NaN``, ``inf``, integers without ``.0``)."""
    if type(x) is float and math.isfinite(x):  # nearly every cell of a report: the short way
        return str(int(x)) if x == int(x) and abs(x) < 1e9 else f"{x:.{digits}g}"
    if isinstance(x, (bool, np.bool_)):
        return "True" if x else "False"
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v == int(v) and abs(v) < 1e9:
        return str(int(v))
    return f"{v:.{digits}g}"


def fmt_index(index: Optional[Sequence[int]]) -> str:
    if index is None:
        return ""
    return "[" + ", ".join(str(int(i)) for i in index) + "]"


def fmt_shape(shape: Sequence[int]) -> str:
    if len(shape) == 0:
        return "scalar"
    return "×".join(str(int(s)) for s in shape)


# --------------------------------------------------------------------------
# class statistics


@dataclass(frozen=True)
class ScoreStats:
    id: str             # "q1" or "total"
    title: str
    max_score: float    # points available
    mean: float
    median: float
    max: float          # best score reached
    min: float
    n: int              # students counted

    @property
    def mean_percent(self) -> float:
        return 100.0 * self.mean / self.max_score if self.max_score else 0.0

    @property
    def median_percent(self) -> float:
        return 100.0 * self.median / self.max_score if self.max_score else 0.0


def _stats(id: str, title: str, max_score: float, values: list[float]) -> ScoreStats:
    if not values:
        return ScoreStats(id, title, max_score, 0.0, 0.0, 0.0, 0.0, 0)
    return ScoreStats(
        id=id,
        title=title,
        max_score=max_score,
        mean=round(statistics.fmean(values), 6),
        median=round(statistics.median(values), 6),
        max=max(values),
        min=min(values),
        n=len(values),
    )


def question_ids(results: Iterable[SubmissionResult]) -> list[tuple[str, str, float]]:
    """``(id, title, max_score)`` of every question, in first-seen order."""
    seen: dict[str, tuple[str, str, float]] = {}
    for r in results:
        for q in r.questions:
            if q.id not in seen:
                seen[q.id] = (q.id, q.title, q.max_score)
    return list(seen.values())


def question_score(result: SubmissionResult, qid: str) -> Optional[float]:
    for q in result.questions:
        if q.id == qid:
            return q.score
    return None


def question_stats(results: Sequence[SubmissionResult]) -> list[ScoreStats]:
    """Mean / median / max / min per question. A student without the question counts 0."""
    out = []
    for qid, title, max_score in question_ids(results):
        values = [question_score(r, qid) or 0.0 for r in results]
        out.append(_stats(qid, title, max_score, values))
    return out


def max_total(results: Sequence[SubmissionResult]) -> float:
    """Points available in the homework (the largest ``max_score`` seen)."""
    totals = [r.max_score for r in results]
    if not totals or max(totals) == 0:
        return sum(m for _, _, m in question_ids(results))
    return max(totals)


def total_stats(results: Sequence[SubmissionResult]) -> ScoreStats:
    return _stats("total", "Total", max_total(results), [r.score for r in results])


@dataclass(frozen=True)
class HistogramBin:
    lo: float
    hi: float
    count: int
    closed: bool        # True for the last bin, which includes ``hi``

    @property
    def label(self) -> str:
        return f"{fmt_score(self.lo)}–{fmt_score(self.hi)}"


def histogram(values: Sequence[float], upper: float, bins: int = 10) -> list[HistogramBin]:
    """``bins`` equal bins over ``0..upper``; the last one includes ``upper``.

    Values below 0 go to the first bin and above ``upper`` to the last one, so
    every value is counted exactly once.
    """
    if bins < 1:
        raise ValueError("bins must be >= 1")
    if upper <= 0:
        upper = max([float(v) for v in values] + [1.0])
    width = upper / bins
    counts = [0] * bins
    for v in values:
        i = int(math.floor(float(v) / width)) if width > 0 else 0
        counts[min(max(i, 0), bins - 1)] += 1
    return [
        HistogramBin(lo=round(i * width, 6), hi=round((i + 1) * width, 6),
                     count=counts[i], closed=(i == bins - 1))
        for i in range(bins)
    ]


def total_histogram(results: Sequence[SubmissionResult], bins: int = 10) -> list[HistogramBin]:
    return histogram([r.score for r in results], max_total(results), bins)


@dataclass(frozen=True)
class FailedTest:
    number: str
    question: str
    function: str
    case: str
    visibility: str
    fails: int          # students who failed it
    attempts: int       # students who have the test at all
    verdicts: tuple[tuple[str, int], ...]  # (plain words, count), most frequent first

    @property
    def name(self) -> str:
        return f"{self.function} ({self.case})"


def most_failed_tests(results: Sequence[SubmissionResult], limit: int = 10) -> list[FailedTest]:
    """Tests failed by the most students (ties: by test number), only those failed at least once."""
    fails: Counter[tuple[str, str, str]] = Counter()
    attempts: Counter[tuple[str, str, str]] = Counter()
    verdicts: dict[tuple[str, str, str], Counter[str]] = defaultdict(Counter)
    meta: dict[tuple[str, str, str], CaseResult] = {}
    for r in results:
        for c in r.cases:
            key = (c.number, c.function, c.case)
            meta.setdefault(key, c)
            attempts[key] += 1
            if c.verdict is not Verdict.PASSED:
                fails[key] += 1
                verdicts[key][c.verdict.label] += 1
    order = sorted(fails, key=lambda k: (-fails[k], _number_key(k[0]), k[1], k[2]))
    out = []
    for key in order[:limit]:
        c = meta[key]
        out.append(FailedTest(
            number=key[0], question=c.question, function=key[1], case=key[2],
            visibility=c.visibility, fails=fails[key], attempts=attempts[key],
            verdicts=tuple(sorted(verdicts[key].items(), key=lambda kv: (-kv[1], kv[0]))),
        ))
    return out


def _number_key(number: str) -> tuple:
    """``"q1.10"`` sorts after ``"q1.9"``."""
    parts = []
    for p in number.replace("q", "").split("."):
        parts.append((0, int(p), "") if p.isdigit() else (1, 0, p))
    return tuple(parts)


@dataclass(frozen=True)
class MistakeCount:
    question: str
    mistake: str         # registry id
    title: str
    students: int        # how many students made it (once per student)
    tests: int           # how many failed tests it explained in total


def common_mistakes(results: Sequence[SubmissionResult], per_question: int = 5) -> dict[str, list[MistakeCount]]:
    """Diagnosed mistakes per question, most students first. Questions without any are left out."""
    students: dict[str, Counter[str]] = defaultdict(Counter)
    tests: dict[str, Counter[str]] = defaultdict(Counter)
    titles: dict[str, str] = {}
    for r in results:
        seen: set[tuple[str, str]] = set()
        for c in r.cases:
            if c.diagnosis is None or c.verdict is Verdict.PASSED:
                continue
            d = c.diagnosis
            titles.setdefault(d.mistake, d.title)
            tests[c.question][d.mistake] += 1
            if (c.question, d.mistake) not in seen:
                seen.add((c.question, d.mistake))
                students[c.question][d.mistake] += 1
    out: dict[str, list[MistakeCount]] = {}
    qorder = [qid for qid, _, _ in question_ids(results)]
    for qid in qorder + sorted(set(students) - set(qorder)):
        if qid not in students:
            continue
        ranked = sorted(students[qid], key=lambda m: (-students[qid][m], m))
        out[qid] = [
            MistakeCount(qid, m, titles[m], students[qid][m], tests[qid][m])
            for m in ranked[:per_question]
        ]
    return out


@dataclass(frozen=True)
class RunFailure:
    number: str
    name: str            # "baum_welch (long)"
    verdict: Verdict
    words: str           # "ran out of time"
    message: str


@dataclass(frozen=True)
class RunProblem:
    """A student whose grading run broke somewhere: never a silent zero."""

    student: str
    file: str
    load_error: Optional[str]
    failures: tuple[RunFailure, ...]     # timeout / memory / crash / invalid reply cases
    skipped: int                         # cases not run at all
    incidents: tuple[str, ...]
    cell_failures: tuple[str, ...] = ()  # "cell 3: NameError: ..." / "module body: SyntaxError: ..."
    missing: int = 0                     # cases whose function was not defined

    @property
    def kinds(self) -> tuple[str, ...]:
        """Short tags: ``("load error", "ran out of time")``."""
        tags = []
        if self.load_error:
            tags.append("load error")
        for f in self.failures:
            if f.words not in tags:
                tags.append(f.words)
        if self.skipped and not self.load_error:
            tags.append("tests not run")
        if self.cell_failures:
            tags.append("code raised while loading")
        return tuple(tags)


def run_problem(result: SubmissionResult) -> Optional[RunProblem]:
    failures = tuple(
        RunFailure(c.number, c.name, c.verdict, c.verdict.label, c.message)
        for c in result.cases if c.verdict.run_failure
    )
    skipped = sum(1 for c in result.cases if c.verdict is Verdict.SKIPPED)
    cells = tuple(
        f"{'cell ' + str(f.cell) if f.cell else 'module body'}: {f.summary}" for f in result.cell_failures
    )
    if not (result.load_error or failures or skipped or cells):
        return None
    missing = sum(1 for c in result.cases if c.verdict is Verdict.MISSING)
    return RunProblem(result.student, result.file, result.load_error, failures, skipped,
                      tuple(result.incidents), cells, missing)


def run_problems(results: Sequence[SubmissionResult]) -> list[RunProblem]:
    """Students whose submission failed to load, crashed, timed out, ran out of memory or was
    not run, plus those whose code raised while loading (functions it defined may be missing)."""
    return [p for p in (run_problem(r) for r in results) if p is not None]


# --------------------------------------------------------------------------
# arrays -> grids


class Cell(NamedTuple):
    """One displayed array element (a tuple: reports build thousands of them)."""

    text: str
    wrong: bool = False
    title: str = ""      # full precision, shown as a tooltip


@dataclass(frozen=True)
class Grid:
    rows: tuple[tuple[Cell, ...], ...]
    shape: tuple[int, ...]       # shape of the whole array
    label: str = ""              # "channel 0" for slices of a 3-D array
    truncated: bool = False      # rows or columns were cut
    shown_rows: int = 0
    shown_cols: int = 0
    wrong_count: int = 0         # wrong cells in the whole slice, shown or not
    wrong_shown: int = 0

    @property
    def shape_text(self) -> str:
        return fmt_shape(self.shape)

    @property
    def total_rows(self) -> int:
        return 1 if len(self.shape) < 2 else int(self.shape[0])

    @property
    def total_cols(self) -> int:
        if len(self.shape) == 0:
            return 1
        return int(self.shape[-1]) if len(self.shape) == 1 else int(self.shape[1])


def _as_2d(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    return a


def array_grid(
    value: Any,
    mismatch: Optional[np.ndarray] = None,
    *,
    max_rows: int = 30,
    max_cols: int = 30,
    label: str = "",
    partner: Any = None,
) -> Grid:
    """A 0-, 1- or 2-D array as rows of cells (vector = one row, scalar = 1×1).

    ``mismatch`` (same shape) marks wrong cells. ``partner`` is the array the
    value is compared with: for wrong cells, digits are added until the two
    texts differ, so a reader never sees two equal-looking "different" numbers.
    """
    a = np.asarray(value)
    if a.ndim > 2:
        raise ValueError("array_grid takes at most 2-D; use array_grids")
    shape = tuple(int(s) for s in a.shape)
    a2 = _as_2d(a)
    m2 = None
    if mismatch is not None:
        m = np.asarray(mismatch, dtype=bool)
        if m.shape == a.shape:
            m2 = _as_2d(m)
    p2 = None
    if partner is not None:
        p = np.asarray(partner)
        if p.shape == a.shape:
            p2 = _as_2d(p)
    nr, nc = a2.shape
    sr, sc = min(nr, max_rows), min(nc, max_cols)
    values = a2[:sr, :sc].tolist()  # Python numbers: formatting numpy scalars one by one is slow
    marks = m2[:sr, :sc].tolist() if m2 is not None else None
    rows = []
    wrong_shown = 0
    for i in range(sr):
        row = []
        for j in range(sc):
            v = values[i][j]
            wrong = marks[i][j] if marks is not None else False
            text = fmt_value(v)
            if wrong and p2 is not None:
                text = _distinct_text(v, p2[i, j])
            wrong_shown += wrong
            row.append(Cell(text, wrong, fmt_value(v, 17)))
        rows.append(tuple(row))
    return Grid(
        rows=tuple(rows), shape=shape, label=label,
        truncated=(sr < nr or sc < nc), shown_rows=sr, shown_cols=sc,
        wrong_count=int(m2.sum()) if m2 is not None else 0, wrong_shown=wrong_shown,
    )


def _distinct_text(v: Any, other: Any) -> str:
    for digits in range(4, 18):
        a, b = fmt_value(v, digits), fmt_value(other, digits)
        if a != b:
            return a
    return fmt_value(v, 17)


def array_grids(
    value: Any,
    mismatch: Optional[np.ndarray] = None,
    *,
    max_rows: int = 30,
    max_cols: int = 30,
    max_slices: int = 4,
    partner: Any = None,
) -> list[Grid]:
    """Like :func:`array_grid` for any rank: 3-D and higher are shown one channel
    (``a[:, :, c]`` over the flattened trailing axes) at a time, at most ``max_slices``."""
    a = np.asarray(value)
    if a.ndim <= 2:
        return [array_grid(a, mismatch, max_rows=max_rows, max_cols=max_cols, partner=partner)]

    def flat(x: Any, dtype: Any = None) -> Optional[np.ndarray]:
        if x is None:
            return None
        x = np.asarray(x, dtype=dtype)
        return x.reshape(a.shape[0], a.shape[1], -1) if x.shape == a.shape else None

    fa, fm, fp = flat(a), flat(mismatch, bool), flat(partner)
    n = fa.shape[2]
    grids = []
    for c in range(min(n, max_slices)):
        g = array_grid(
            fa[:, :, c], None if fm is None else fm[:, :, c],
            max_rows=max_rows, max_cols=max_cols, label=f"channel {c}",
            partner=None if fp is None else fp[:, :, c],
        )
        if n > max_slices and c == max_slices - 1:
            g = replace(g, truncated=True)
        grids.append(g)
    return grids


@dataclass(frozen=True)
class OutputView:
    """One ``OutputCheck`` ready to display: expected and received side by side."""

    name: str
    passed: bool
    message: str
    expected: tuple[Grid, ...]          # empty when not available (hidden)
    got: tuple[Grid, ...]
    expected_shape: str
    got_shape: str
    wrong_count: int                    # wrong elements in the whole output
    total_count: int
    worst_error: str                    # "" when unknown
    worst_index: str

    @property
    def has_values(self) -> bool:
        return bool(self.expected or self.got)

    @property
    def cut(self) -> bool:
        return any(g.truncated for g in self.expected + self.got)


def output_view(check: OutputCheck, *, max_rows: int = 30, max_cols: int = 30) -> OutputView:
    exp = _try_array(check.expected)
    got = _try_array(check.got)
    mask = None
    if check.mismatch is not None:
        mask = np.asarray(check.mismatch, dtype=bool)
    same = exp is not None and got is not None and exp.shape == got.shape
    exp_grids = tuple(array_grids(exp, mask, max_rows=max_rows, max_cols=max_cols,
                                  partner=got if same else None)) if exp is not None else ()
    got_grids = tuple(array_grids(got, mask, max_rows=max_rows, max_cols=max_cols,
                                  partner=exp if same else None)) if got is not None else ()
    ref = got if got is not None else exp
    wrong = int(mask.sum()) if (mask is not None and ref is not None and mask.shape == ref.shape) else 0
    return OutputView(
        name=check.name,
        passed=check.passed,
        message=check.message,
        expected=exp_grids,
        got=got_grids,
        expected_shape=fmt_shape(exp.shape) if exp is not None else "",
        got_shape=fmt_shape(got.shape) if got is not None else "",
        wrong_count=wrong,
        total_count=int(ref.size) if ref is not None else 0,
        worst_error=fmt_value(check.worst_error, 6) if check.worst_error is not None else "",
        worst_index=fmt_index(check.worst_index),
    )


def _try_array(value: Any) -> Optional[np.ndarray]:
    if value is None:
        return None
    try:
        a = np.asarray(value)
    except Exception:  # noqa: BLE001 - display only
        return None
    if a.dtype == object:
        return None
    return a


@dataclass(frozen=True)
class InputView:
    """One argument of a public case: a grid (arrays, numbers) or plain text."""

    name: str
    grids: tuple[Grid, ...]
    text: str            # used when the value is not numeric
    shape: str
    dtype: str


def input_view(name: str, value: Any, *, max_rows: int = 30, max_cols: int = 30) -> InputView:
    a = _try_array(value)
    if a is not None and (a.dtype.kind in "biuf"):
        return InputView(name, tuple(array_grids(a, max_rows=max_rows, max_cols=max_cols)),
                         "", fmt_shape(a.shape), _dtype_words(a))
    text = repr(value)
    if len(text) > 500:
        text = text[:500] + " …"
    return InputView(name, (), text, "", type(value).__name__)


def _dtype_words(a: np.ndarray) -> str:
    words = {"b": "bool", "i": "int", "u": "int", "f": "float"}.get(a.dtype.kind)
    return words if words is not None else str(a.dtype)  # str(dtype) is slow: only when needed
