"""Wrong-answer clusters: students whose outputs on a case are wrong in the same way.

A class invents mistakes the library does not know yet. When several
students fail a case with the same outputs (equal to the tolerance used to
recognise a known mistake), they very likely made the same mistake; the
instructor sees the group in ``index.html`` (largest first, with what the
shared output differs from the expected one by) and can turn it into a
registered ``@mistake`` (``hwgrader mistakes DIR``), after which the next
run names it in those students' reports.

This is instructor-side analysis in the parent: it reads the outputs
received on failed cases (``CaseResult.received``), hidden cases included,
and nothing of it reaches a student's files.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from grader.assignment.plan import Plan, PlannedCase
from grader.grading.compare import outputs_match
from grader.grading.results import SubmissionResult

#: A cluster needs at least this many students.
MIN_STUDENTS = 2
#: Clusters listed in index.html (clusters.json keeps them all).
SHOWN_CLUSTERS = 20
CLUSTERS_FORMAT = "hwgrader-clusters/1"


@dataclass
class ClusterCase:
    number: str       # "q1.3"
    case: str         # the rubric's case id, "batch-of-2"
    visibility: str   # "public" or "hidden"


@dataclass
class WrongAnswerCluster:
    """Students failing the same cases of one function with the same outputs, no known mistake matching."""

    question: str
    function: str
    students: list[str]
    cases: list[ClusterCase]
    differences: list[str] = field(default_factory=list)  # per output, on the first case

    @property
    def size(self) -> int:
        return len(self.students)


def tolerance(case: PlannedCase) -> tuple[float, float]:
    """The tolerance outputs must agree to in order to be "the same mistake" (as for diagnosis)."""
    return max(case.rtol, 1e-6), max(case.atol, 1e-9)


def _cluster_case(case: PlannedCase, received: list[tuple[str, tuple]]) -> list[tuple[list[str], tuple]]:
    """Group students whose outputs agree to the tolerance: leader clustering per shape signature."""
    rtol, atol = tolerance(case)
    groups: dict[tuple, list[tuple[tuple, list[str]]]] = {}
    for student, outputs in received:
        signature = tuple(o.shape for o in outputs)
        leaders = groups.setdefault(signature, [])
        for leader, members in leaders:
            if outputs_match(outputs, leader, rtol=rtol, atol=atol):
                members.append(student)
                break
        else:
            leaders.append((outputs, [student]))
    return [(members, leader) for leaders in groups.values() for leader, members in leaders
            if len(members) >= MIN_STUDENTS]


def wrong_answer_clusters(results: Sequence[SubmissionResult], plan: Plan) -> list[WrongAnswerCluster]:
    """Every group of students sharing a wrong output no known mistake explains, largest first."""
    planned = {c.number: c for c in plan.cases}
    by_case: dict[str, list[tuple[str, tuple]]] = {}
    for r in results:
        for c in r.cases:
            if c.received is not None and c.diagnosis is None and c.status == "failed" and c.number in planned:
                by_case.setdefault(c.number, []).append((r.student, c.received))
    merged: dict[tuple[str, tuple[str, ...]], WrongAnswerCluster] = {}
    for number, received in by_case.items():
        case = planned[number]
        for members, outputs in _cluster_case(case, received):
            students = tuple(sorted(members))
            entry = ClusterCase(number, case.case, case.visibility)
            key = (case.function, students)
            if key in merged:
                merged[key].cases.append(entry)
                continue
            merged[key] = WrongAnswerCluster(
                question=case.question, function=case.function, students=list(students), cases=[entry],
                differences=[describe_difference(name, got, want) for name, got, want
                             in zip(case.output_names, outputs, case.expected)])
    order = {c.number: i for i, c in enumerate(plan.cases)}
    clusters = list(merged.values())
    for cl in clusters:
        cl.cases.sort(key=lambda c: order[c.number])
    clusters.sort(key=lambda cl: (-cl.size, -len(cl.cases), order[cl.cases[0].number]))
    return clusters


def _g(x: float) -> str:
    return f"{x:.4g}"


def _list(values: np.ndarray, shown: int = 6) -> str:
    items = ", ".join(_g(float(v)) for v in values[:shown])
    return f"[{items}{', ...' if len(values) > shown else ''}]"


def describe_difference(name: str, got: np.ndarray, expected: np.ndarray) -> str:
    """What the shared output is, compared with the expected one, in words."""
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    if got.shape != expected.shape and not (expected.ndim == 0 and got.size == 1):
        if got.shape == expected.T.shape and np.allclose(got, expected.T, rtol=1e-6, atol=1e-9):
            return f"'{name}' is the transpose of the expected output"
        shape = lambda s: "(" + ", ".join(map(str, s)) + ")"  # noqa: E731
        return f"'{name}' has shape {shape(got.shape)} instead of {shape(expected.shape)}"
    got = got.reshape(expected.shape)
    if not np.isfinite(got).all():
        bad = int((~np.isfinite(got)).sum())
        return f"'{name}' has NaN or inf at {bad} of {got.size} entries"
    if np.allclose(got, expected, rtol=1e-6, atol=1e-9):
        return f"'{name}' is right"
    if np.allclose(got, -expected, rtol=1e-6, atol=1e-9):
        return f"'{name}' is the expected output with its sign flipped"
    diff = got - expected
    if np.allclose(diff, diff.flat[0], rtol=1e-6, atol=1e-9):
        return f"'{name}' = expected {'+' if diff.flat[0] >= 0 else '−'} {_g(abs(float(diff.flat[0])))} everywhere"
    nonzero = np.abs(expected) > 1e-12
    if nonzero.any() and np.allclose(got[~nonzero], 0.0, atol=1e-9):
        ratio = got[nonzero] / expected[nonzero]
        if np.allclose(ratio, ratio[0], rtol=1e-6, atol=1e-9):
            return f"'{name}' = expected × {_g(float(ratio[0]))} everywhere"
    if diff.ndim == 2 and min(diff.shape) > 1:
        for axis, along in ((0, "column"), (1, "row")):
            offset = diff.mean(axis=axis, keepdims=True)
            if np.allclose(diff, offset, rtol=1e-6, atol=1e-9):
                return f"'{name}' = expected + a constant per {along}: {_list(offset.ravel())}"
    wrong = ~np.isclose(got, expected, rtol=1e-6, atol=1e-9)
    worst = np.unravel_index(int(np.argmax(np.abs(diff))), diff.shape) if diff.ndim else ()
    where = f" at [{', '.join(map(str, worst))}]" if worst else ""
    count = f"at {int(wrong.sum())} of {wrong.size} entries; " if wrong.size > 1 else ""
    return (f"'{name}' is wrong {count}largest difference {_g(float(diff[worst]))}{where} "
            f"(expected {_g(float(expected[worst]))}, got {_g(float(got[worst]))})")


def clusters_json(clusters: Sequence[WrongAnswerCluster]) -> dict:
    return {"format": CLUSTERS_FORMAT, "clusters": [asdict(c) for c in clusters]}


def write_clusters_json(clusters: Sequence[WrongAnswerCluster], path: Path) -> Path:
    """``DIR/clusters.json``, instructor-side: what ``hwgrader mistakes DIR`` reads."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(clusters_json(clusters), indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)
    return path


def read_clusters_json(path: Path) -> list[WrongAnswerCluster]:
    """Read ``clusters.json``; a missing or foreign file is a ``UsageError`` naming it."""
    from grader.errors import UsageError

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") != CLUSTERS_FORMAT:
            raise ValueError(f"not a {CLUSTERS_FORMAT} file")
        return [WrongAnswerCluster(question=c["question"], function=c["function"], students=list(c["students"]),
                                   cases=[ClusterCase(**x) for x in c["cases"]],
                                   differences=list(c["differences"])) for c in data["clusters"]]
    except FileNotFoundError:
        raise UsageError(f"{path}: not found; run `hwgrader grade ... --out {path.parent}` first") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{path}: not a wrong-answer clusters file: {exc}") from exc

