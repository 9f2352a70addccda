"""The grading plan: every case made concrete, once per batch.

Building a plan runs the generators and the references in the trusted
parent: inputs, expected outputs and the outputs of every known mistake (for
diagnosis). Students' workers only ever receive a case's inputs. A plan's
public cases can be saved as JSON for the student kit and loaded back
without the reference code.
"""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from grader.errors import KitError, RubricError
from grader.assignment.registry import ReferenceSet
from grader.assignment.rubric import CallTiming, Case, Part, Rubric, Written
from grader.sandbox.launch import Limits

Value = Union[np.ndarray, int, float]
KIT_FORMAT = "hwgrader-public-cases/1"


@dataclass(frozen=True)
class KnownMistake:
    """A mistake's outputs on one case; ``outputs`` is None when the variant itself failed there."""

    id: str
    title: str
    hint: str
    outputs: Optional[tuple[np.ndarray, ...]]


@dataclass(frozen=True)
class PlannedCase:
    question: str
    part: str
    case: str
    number: str                       # "q1.3": question id, a dot, position in the question
    function: str
    visibility: str
    points: float
    arg_names: tuple[str, ...]
    args: tuple[Value, ...]
    kwargs: dict[str, Value]
    output_names: tuple[str, ...]
    expected: tuple[np.ndarray, ...]
    rtol: float
    atol: float
    must_not_modify_inputs: bool
    mistakes: tuple[KnownMistake, ...] = ()
    cpu_seconds: Optional[float] = None   # CPU time a call may use on this case (rubric ``CallTiming``)
    reference_seconds: float = 0.0        # CPU time the reference took on it when the plan was built
    cpu_limit_text: Optional[str] = None  # that limit in words, for a student ("150 times the reference's...")

    @property
    def inputs(self) -> dict[str, Value]:
        return {**dict(zip(self.arg_names, self.args)), **self.kwargs}


@dataclass(frozen=True)
class PlannedQuestion:
    id: str
    title: str
    points: float
    written: Optional[Written]
    cases: tuple[PlannedCase, ...]


@dataclass(frozen=True)
class Plan:
    title: str
    limits: Limits
    questions: tuple[PlannedQuestion, ...]
    reference_dir: Optional[Path] = None   # the reference package it was built from (None for a kit)
    timing: CallTiming = CallTiming()

    @property
    def cases(self) -> list[PlannedCase]:
        return [c for q in self.questions for c in q.cases]

    @property
    def answer_names(self) -> list[str]:
        return [q.written.answer for q in self.questions if q.written]

    def public_only(self) -> "Plan":
        """The plan a student may see: hidden cases dropped (their points no longer count)."""
        questions = []
        for q in self.questions:
            public = tuple(c for c in q.cases if c.visibility == "public")
            points = sum(c.points for c in public) + (q.written.points if q.written else 0)
            questions.append(replace(q, cases=public, points=points))
        return replace(self, questions=tuple(questions))

    def select(self, qid: str) -> "Plan":
        chosen = tuple(q for q in self.questions if q.id == qid)
        if not chosen:
            known = ", ".join(q.id for q in self.questions)
            raise KitError(f"no question {qid!r} in this homework (known: {known})")
        return replace(self, questions=chosen)


# --------------------------------------------------------------------------- building

def build_plan(rubric: Rubric, refs: Optional[ReferenceSet] = None, *, public_only: bool = False) -> Plan:
    """Generate every case's inputs and compute the expected and mistaken outputs."""
    refs = refs or ReferenceSet.load(rubric.reference_dir)
    questions = []
    for q in rubric.questions:
        cases = []
        for part in q.parts:
            key = f"questions.{q.id}.parts.{part.id}"
            if part.function not in refs.functions:
                raise RubricError(rubric.path, f"{key}.function",
                                  f"no reference function {part.function!r} in {refs.root}")
            for case in part.cases:
                if public_only and case.visibility != "public":
                    continue
                number = f"{q.id}.{len(cases) + 1}"
                cases.append(_plan_case(rubric, refs, q.id, part, case, number, f"{key}.cases.{case.id}"))
        points = sum(c.points for c in cases) + (q.written.points if q.written else 0)
        questions.append(PlannedQuestion(q.id, q.title, points if public_only else q.points,
                                         q.written, tuple(cases)))
    return Plan(rubric.title, rubric.limits, tuple(questions), reference_dir=Path(refs.root), timing=rubric.timing)


def _plan_case(rubric: Rubric, refs: ReferenceSet, qid: str, part: Part, case: Case,
               number: str, key: str) -> PlannedCase:
    instance = _instance(rubric, refs, case, key)
    for name, source in part.bind.items():
        if source in instance:
            instance[name] = instance[source]
    args = tuple(_convert(rubric, f"{key}.{n}", n, t, instance) for n, t in part.args.items())
    kwargs = {n: _convert(rubric, f"{key}.{n}", n, t, instance)
              for n, t in part.kwargs.items() if n in instance}
    started = time.thread_time()  # this thread's CPU time: other grading threads do not count
    expected = _outputs_of(refs.function(part.function), args, kwargs, part)
    reference_seconds = time.thread_time() - started  # one cold run: errs on the generous side
    if expected is None or isinstance(expected, str):
        raise RubricError(rubric.path, key, f"the reference {part.function} fails on this case: {expected}")
    for name, out in zip(part.outputs, expected):
        if not np.isfinite(out).all():
            raise RubricError(rubric.path, key, f"the reference gives non-finite {name!r} on this case")
    mistakes = []
    for m in refs.mistakes_of(part.function):
        outputs = _outputs_of(m.function, args, kwargs, part)
        mistakes.append(KnownMistake(m.id, m.title, m.hint, outputs if isinstance(outputs, tuple) else None))
    return PlannedCase(
        question=qid, part=part.id, case=case.id, number=number, function=part.function,
        visibility=case.visibility, points=case.points, arg_names=tuple(part.args), args=args,
        kwargs=kwargs, output_names=part.outputs, expected=expected, rtol=part.rtol, atol=part.atol,
        must_not_modify_inputs=part.must_not_modify_inputs, mistakes=tuple(mistakes),
        cpu_seconds=part.call_cpu_seconds or rubric.timing.cpu_limit(reference_seconds, rubric.limits.call_seconds),
        reference_seconds=round(reference_seconds, 6),
        cpu_limit_text=None if part.call_cpu_seconds or rubric.timing.cpu_factor <= 0 else rubric.timing.describe())


def _instance(rubric: Rubric, refs: ReferenceSet, case: Case, key: str) -> dict[str, Any]:
    instance: dict[str, Any] = {}
    if case.generator is not None:
        generate = refs.generators.get(case.generator)
        if generate is None:
            known = ", ".join(sorted(refs.generators)) or "none"
            raise RubricError(rubric.path, f"{key}.generator",
                              f"unknown generator {case.generator!r} (known: {known})")
        try:
            instance.update(generate(np.random.default_rng(case.seed), **case.params))
        except TypeError as exc:
            raise RubricError(rubric.path, f"{key}.params", f"do not fit {case.generator}: {exc}") from exc
    instance.update(case.values)
    return instance


def _convert(rubric: Rubric, key: str, name: str, kind: str, instance: dict) -> Value:
    if name not in instance:
        raise RubricError(rubric.path, key, "no value for this argument (not in values, "
                                            "and the generator does not produce it)")
    value = instance[name]
    try:
        if kind == "array":
            out = np.array(value, dtype=np.float64)
        elif kind == "int_array":
            out = np.array(value)
            if out.dtype.kind not in "iu" and not (out.dtype.kind == "f" and np.all(out == np.round(out))):
                raise ValueError("not integers")
            out = out.astype(np.int64)
        elif kind == "int":
            if float(value) != int(value):
                raise ValueError("not an integer")
            out = int(value)
        else:
            out = float(value)
    except (TypeError, ValueError) as exc:
        raise RubricError(rubric.path, key, f"cannot be read as {kind}: {exc}") from exc
    if isinstance(out, np.ndarray) and out.dtype.kind == "f" and not np.isfinite(out).all():
        raise RubricError(rubric.path, key, "contains NaN or inf")
    return out


def _outputs_of(fn, args: tuple, kwargs: dict, part: Part):
    """Call a reference or mistake on private copies; a tuple of float arrays, or an error string."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            result = fn(*copy.deepcopy(args), **copy.deepcopy(kwargs))
        values = [result] if len(part.outputs) == 1 else list(result)
        if len(values) != len(part.outputs):
            return f"returned {len(values)} values, the rubric names {len(part.outputs)}"
        return tuple(np.array(v, dtype=np.float64) for v in values)
    except Exception as exc:  # a mistake variant may legitimately blow up on some inputs
        return f"{type(exc).__name__}: {exc}"


# --------------------------------------------------------------------------- kit (JSON) form

def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        flat = [None if not math.isfinite(x) else x for x in value.ravel().tolist()] \
            if value.dtype.kind == "f" else value.ravel().tolist()
        special = {} if value.dtype.kind != "f" else {
            "nan": np.flatnonzero(np.isnan(value)).tolist(),
            "posinf": np.flatnonzero(np.isposinf(value)).tolist(),
            "neginf": np.flatnonzero(np.isneginf(value)).tolist()}
        return {"dtype": "i8" if value.dtype.kind in "iu" else "f8", "shape": list(value.shape),
                "data": flat, **{k: v for k, v in special.items() if v}}
    return value


def _decode(value: Any) -> Value:
    if isinstance(value, dict):
        dtype = np.int64 if value["dtype"] == "i8" else np.float64
        data = [0 if x is None else x for x in value["data"]]
        arr = np.array(data, dtype=dtype).reshape(value["shape"])
        flat = arr.reshape(-1)
        for key, fill in (("nan", np.nan), ("posinf", np.inf), ("neginf", -np.inf)):
            if value.get(key):
                flat[np.asarray(value[key], dtype=np.int64)] = fill
        return arr
    return value


def plan_to_json(plan: Plan) -> dict:
    """The public cases of ``plan`` with expected and mistaken outputs; hidden cases are never written."""
    public = plan.public_only()
    return {
        "format": KIT_FORMAT,
        "title": public.title,
        "limits": vars(public.limits),
        "timing": vars(public.timing),
        "questions": [{
            "id": q.id, "title": q.title, "points": q.points,
            "written": vars(q.written) | {"criteria": list(q.written.criteria)} if q.written else None,
            "cases": [{
                "part": c.part, "case": c.case, "number": c.number, "function": c.function,
                "points": c.points, "arg_names": list(c.arg_names),
                "args": [_encode(a) for a in c.args],
                "kwargs": {k: _encode(v) for k, v in c.kwargs.items()},
                "output_names": list(c.output_names),
                "expected": [_encode(e) for e in c.expected],
                "rtol": c.rtol, "atol": c.atol, "must_not_modify_inputs": c.must_not_modify_inputs,
                "cpu_seconds": c.cpu_seconds, "reference_seconds": c.reference_seconds,
                "cpu_limit_text": c.cpu_limit_text,
                "mistakes": [{"id": m.id, "title": m.title, "hint": m.hint,
                              "outputs": None if m.outputs is None else [_encode(o) for o in m.outputs]}
                             for m in c.mistakes],
            } for c in q.cases],
        } for q in public.questions],
    }


def load_plan_json(path: Path) -> Plan:
    """Read a kit's public cases; a broken file is a ``KitError`` naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        if data.get("format") != KIT_FORMAT:
            raise ValueError(f"not a {KIT_FORMAT} file")
        limits = Limits(**data["limits"])
        questions = []
        for q in data["questions"]:
            written = Written(**(q["written"] | {"criteria": tuple(q["written"]["criteria"])})) \
                if q["written"] else None
            cases = tuple(PlannedCase(
                question=q["id"], part=c["part"], case=c["case"], number=c["number"],
                function=c["function"], visibility="public", points=float(c["points"]),
                arg_names=tuple(c["arg_names"]), args=tuple(_decode(a) for a in c["args"]),
                kwargs={k: _decode(v) for k, v in c["kwargs"].items()},
                output_names=tuple(c["output_names"]),
                expected=tuple(_decode(e) for e in c["expected"]),
                rtol=float(c["rtol"]), atol=float(c["atol"]),
                must_not_modify_inputs=bool(c["must_not_modify_inputs"]),
                cpu_seconds=None if c.get("cpu_seconds") is None else float(c["cpu_seconds"]),
                reference_seconds=float(c.get("reference_seconds", 0.0)),
                cpu_limit_text=c.get("cpu_limit_text"),
                mistakes=tuple(KnownMistake(m["id"], m["title"], m["hint"],
                                            None if m["outputs"] is None
                                            else tuple(_decode(o) for o in m["outputs"]))
                               for m in c["mistakes"]))
                for c in q["cases"])
            questions.append(PlannedQuestion(q["id"], q["title"], float(q["points"]), written, cases))
        return Plan(data["title"], limits, tuple(questions), CallTiming(**data.get("timing", {})))
    except OSError as exc:
        raise KitError(f"{path}: cannot read the public cases: {exc.strerror or exc}") from exc
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise KitError(f"{path}: not a valid public-cases file: {exc}") from exc


def save_plan_json(plan: Plan, path: Path) -> None:
    Path(path).write_text(json.dumps(plan_to_json(plan), allow_nan=False), encoding="utf-8")
