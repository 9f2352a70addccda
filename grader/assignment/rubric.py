"""The rubric: an assignment written as data, validated when it is loaded.

Schema (``rubrics/homework.yaml`` is the worked example)::

    schema: 1
    title: str                         # shown on reports
    reference: str                     # reference package folder, relative to the rubric file
    limits:                            # optional; every key has a default
      call_seconds: 10                 # wall clock per call: the ceiling, and all a call that
                                       #   waits without computing (sleep) gets
      call_cpu_factor: 150             # CPU time per call: this many times the reference's CPU
                                       #   time on the same case (measured when the plan is
                                       #   built); 0 = no CPU limit, only call_seconds
      call_cpu_floor_seconds: 1        # ...but never less than this (nor more than call_seconds)
      timeout_strikes: 1               # after this many timeouts of a function, its other cases
                                       #   are not run (they would only wait again)
      load_seconds, submission_seconds, memory_mb, cpu_seconds, ...   # the sandbox's Limits
    questions:
      - id: q1                         # [a-z][a-z0-9_]*, unique; test numbers start with it
        title: str
        points: number                 # = written points + every case's points
        written:                       # optional: graded by a person
          points: number
          answer: ANSWER_Q1            # module-level string (or **Answer Q1** markdown cell)
          prompt: str
          criteria: [str, ...]
        parts:
          - id: forward                # unique within the question
            function: batchnorm_forward    # the student's function = the reference's name
            args: {x: array, gamma: array}  # positional, in order; types: array, int_array, int, float
            kwargs: {eps: float}       # optional, passed by name when a case provides them
            bind: {p: x}               # optional: argument p takes the instance's value named x
            outputs: [out]             # names of the returned values (1 = the whole return value)
            rtol: 1.0e-6
            atol: 1.0e-8
            must_not_modify_inputs: false
            call_cpu_seconds: 5        # optional: a fixed CPU-time limit for this part's calls
            cases:
              - id: lecture            # unique within the part
                visibility: public     # public | hidden
                points: number
                values: {x: [[...]]}   # literal inputs, and/or:
                generator: name        # a @generator of the reference package
                params: {n: 8}         # its keyword arguments
                seed: 11               # numpy.random.default_rng(seed)

How long a call may take (``CallTiming``): the time of a batch should be the students' work,
not waiting on hung code. A call may use ``call_cpu_factor`` times the CPU time the reference took
on that case, at least ``call_cpu_floor_seconds`` and at most ``call_seconds``; the wall clock
(``call_seconds``) stays the ceiling. On this homework every case gets 1-3 s of CPU, so a function
stuck in a loop costs a second or two (one strike) instead of two 10-second timeouts, while code
50 times slower than the reference still passes with 3x headroom, on a loaded machine too (CPU
time barely grows with the load, wall-clock time does). A part's ``call_cpu_seconds`` fixes its
limit.

Every problem raises ``RubricError(file, key, problem)``: one line naming the
file, the key path (``questions.q3.parts.alphas.cases.random-2.generator``)
and what is wrong. Nothing in the engine is specific to a question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

import yaml

from grader.errors import RubricError
from grader.sandbox.launch import Limits

ARG_TYPES = ("array", "int_array", "int", "float")
VISIBILITIES = ("public", "hidden")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")
_CASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: libyaml's safe loader where PyYAML was built with it (about 10x faster), else the pure-Python one.
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass(frozen=True)
class Case:
    id: str
    visibility: str
    points: float
    values: dict[str, Any] = field(default_factory=dict)
    generator: Optional[str] = None
    params: dict[str, Any] = field(default_factory=dict)
    seed: Optional[int] = None


@dataclass(frozen=True)
class CallTiming:
    """How much CPU time one call of a student function may use: a grading policy the sandbox enforces."""

    cpu_factor: float = 150.0         # limits.call_cpu_factor (0: no CPU-time limit)
    cpu_floor_seconds: float = 1.0    # limits.call_cpu_floor_seconds
    strikes: int = 1                  # limits.timeout_strikes

    def cpu_limit(self, reference_cpu_seconds: float, ceiling: float) -> Optional[float]:
        """CPU seconds for a call whose reference used ``reference_cpu_seconds`` (None: no CPU limit)."""
        if self.cpu_factor <= 0:
            return None
        return round(min(float(ceiling), max(self.cpu_floor_seconds, self.cpu_factor * reference_cpu_seconds)), 3)

    def describe(self) -> str:
        """The limit in words, the same in every run (the measured seconds vary a little)."""
        return (f"{self.cpu_factor:g} times the reference's CPU time on this case, at least "
                f"{self.cpu_floor_seconds:g} s")


#: Rubric ``limits:`` keys that set the ``CallTiming`` (the others are the sandbox's ``Limits``).
_TIMING_KEYS = {"call_cpu_factor": "cpu_factor", "call_cpu_floor_seconds": "cpu_floor_seconds",
                "timeout_strikes": "strikes"}


@dataclass(frozen=True)
class Part:
    id: str
    function: str
    args: dict[str, str]            # name -> type, in call order
    kwargs: dict[str, str]
    bind: dict[str, str]            # argument name -> instance value name, when they differ
    outputs: tuple[str, ...]
    rtol: float
    atol: float
    must_not_modify_inputs: bool
    cases: tuple[Case, ...]
    call_cpu_seconds: Optional[float] = None   # a fixed CPU-time limit per call of this part


@dataclass(frozen=True)
class Written:
    points: float
    answer: str
    prompt: str
    criteria: tuple[str, ...]


@dataclass(frozen=True)
class Question:
    id: str
    title: str
    points: float
    parts: tuple[Part, ...]
    written: Optional[Written] = None


@dataclass(frozen=True)
class Rubric:
    path: Path
    title: str
    reference_dir: Path
    limits: Limits
    questions: tuple[Question, ...]
    timing: CallTiming = CallTiming()

    def question(self, qid: str) -> Question:
        for q in self.questions:
            if q.id == qid:
                return q
        known = ", ".join(q.id for q in self.questions)
        raise RubricError(self.path, "questions", f"no question {qid!r} (known: {known})")


class _Node:
    """A mapping being validated, remembering where it sits so errors can name it."""

    def __init__(self, path: Path, key: str, value: Any):
        self.path, self.key = path, key
        if not isinstance(value, dict):
            self.fail("", f"must be a mapping, got {_kind(value)}")
        self.value = value

    def fail(self, key: str, problem: str):
        raise RubricError(self.path, ".".join(k for k in (self.key, key) if k), problem)

    def only(self, *allowed: str) -> None:
        extra = sorted(set(self.value) - set(allowed))
        if extra:
            self.fail(str(extra[0]), f"unknown key (allowed here: {', '.join(allowed)})")

    def get(self, key: str, kind, default=Ellipsis):
        if key not in self.value:
            if default is Ellipsis:
                self.fail(key, "missing required key")
            return default
        value = self.value[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            self.fail(key, f"must be {_names(kinds)}, got a boolean")
        if not isinstance(value, kinds):
            self.fail(key, f"must be {_names(kinds)}, got {_kind(value)}")
        return value

    def child(self, key: str, default=Ellipsis) -> "_Node":
        value = self.get(key, dict, default)
        return _Node(self.path, f"{self.key}.{key}" if self.key else key, value)

    def items(self, key: str) -> list:
        value = self.get(key, list)
        if not value:
            self.fail(key, "must not be empty")
        return value


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", type(None): "nothing"}.get(
        type(value), f"a {type(value).__name__}")


def _names(kinds: tuple) -> str:
    words = {int: "an integer", float: "a number", str: "a string", bool: "true/false",
             list: "a list", dict: "a mapping"}
    return " or ".join(dict.fromkeys(words.get(k, k.__name__) for k in kinds))


def load_rubric(path: str | Path) -> Rubric:
    """Read and validate a rubric file; every problem is a one-line ``RubricError``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RubricError(path, "", f"cannot read the rubric: {exc.strerror or exc}") from exc
    try:
        data = yaml.load(text, Loader=_SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RubricError(path, "", f"not valid YAML: {where}{problem}") from exc
    return parse_rubric(data, path)


def parse_rubric(data: Any, path: Path) -> Rubric:
    root = _Node(path, "", data)
    root.only("schema", "title", "reference", "limits", "questions")
    if root.get("schema", int) != 1:
        root.fail("schema", "unsupported schema version (this hwgrader reads schema 1)")
    reference_dir = (path.parent / root.get("reference", str)).resolve()
    questions = tuple(_question(path, i, q) for i, q in enumerate(root.items("questions")))
    _unique(root, "questions", [q.id for q in questions])
    limits_node = root.child("limits", {})
    return Rubric(path=path, title=root.get("title", str), reference_dir=reference_dir,
                  limits=_limits(limits_node), questions=questions, timing=_timing(limits_node))


def _limits(node: _Node) -> Limits:
    known = {f.name: f for f in fields(Limits)}
    node.only(*known, *_TIMING_KEYS)
    values = {}
    for key in node.value:
        if key in _TIMING_KEYS:
            continue
        value = node.get(key, (int, float))
        if value <= 0:
            node.fail(key, "must be positive")
        values[key] = type(getattr(Limits(), key))(value)
    return Limits(**values)


def _timing(node: _Node) -> CallTiming:
    values = {}
    for key, name in _TIMING_KEYS.items():
        if key not in node.value:
            continue
        if name == "strikes":
            value = node.get(key, int)
            if value < 1:
                node.fail(key, "must be at least 1")
        else:
            value = float(node.get(key, (int, float)))
            if value < 0 or (name == "cpu_floor_seconds" and value == 0):
                node.fail(key, "must be positive" if name == "cpu_floor_seconds" else "must not be negative")
        values[name] = value
    return CallTiming(**values)


def _question(path: Path, index: int, data: Any) -> Question:
    qid = data.get("id") if isinstance(data, dict) else None
    node = _Node(path, f"questions.{qid if isinstance(qid, str) else index}", data)
    node.only("id", "title", "points", "written", "parts")
    qid = node.get("id", str)
    if not _ID.match(qid):
        node.fail("id", f"{qid!r} is not a valid id (lowercase letters, digits, _; e.g. q1)")
    written = _written(node.child("written")) if "written" in node.value else None
    parts = tuple(_part(node, i, p) for i, p in enumerate(node.items("parts")))
    _unique(node, "parts", [p.id for p in parts])
    points = node.get("points", (int, float))
    total = sum(c.points for p in parts for c in p.cases) + (written.points if written else 0)
    if abs(total - points) > 1e-9:
        node.fail("points", f"is {points:g} but the cases and written part add up to {total:g}")
    return Question(id=qid, title=node.get("title", str), points=float(points),
                    parts=parts, written=written)


def _written(node: _Node) -> Written:
    node.only("points", "answer", "prompt", "criteria")
    answer = node.get("answer", str)
    if not _IDENTIFIER.match(answer):
        node.fail("answer", f"{answer!r} is not a Python variable name")
    criteria = node.items("criteria")
    for i, c in enumerate(criteria):
        if not isinstance(c, str):
            node.fail(f"criteria[{i}]", f"must be a string, got {_kind(c)}")
    return Written(points=float(node.get("points", (int, float))), answer=answer,
                   prompt=node.get("prompt", str), criteria=tuple(criteria))


def _signature(node: _Node, key: str) -> dict[str, str]:
    spec = node.get(key, dict, {})
    for name, kind in spec.items():
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            node.fail(key, f"{name!r} is not a Python parameter name")
        if kind not in ARG_TYPES:
            node.fail(f"{key}.{name}", f"unknown type {kind!r} (use one of: {', '.join(ARG_TYPES)})")
    return dict(spec)


def _part(question: _Node, index: int, data: Any) -> Part:
    pid = data.get("id") if isinstance(data, dict) else None
    node = _Node(question.path, f"{question.key}.parts.{pid if isinstance(pid, str) else index}", data)
    node.only("id", "function", "args", "kwargs", "bind", "outputs", "rtol", "atol",
              "must_not_modify_inputs", "call_cpu_seconds", "cases")
    pid = node.get("id", str)
    if not _ID.match(pid):
        node.fail("id", f"{pid!r} is not a valid id")
    function = node.get("function", str)
    if not _IDENTIFIER.match(function):
        node.fail("function", f"{function!r} is not a Python function name")
    args, kwargs = _signature(node, "args"), _signature(node, "kwargs")
    if not args:
        node.fail("args", "missing required key")
    bind = node.get("bind", dict, {})
    for name, source in bind.items():
        if name not in args and name not in kwargs:
            node.fail(f"bind.{name}", "is not one of this part's args or kwargs")
        if not isinstance(source, str) or not _IDENTIFIER.match(source):
            node.fail(f"bind.{name}", "must name a value of the case (e.g. x)")
    outputs = node.items("outputs")
    if not all(isinstance(o, str) and _IDENTIFIER.match(o) for o in outputs):
        node.fail("outputs", "must be a list of output names")
    tolerances = {}
    for key in ("rtol", "atol"):
        value = node.get(key, (int, float))
        if value < 0:
            node.fail(key, "must not be negative")
        tolerances[key] = float(value)
    cases = tuple(_case(node, i, c) for i, c in enumerate(node.items("cases")))
    _unique(node, "cases", [c.id for c in cases])
    cpu_seconds = node.get("call_cpu_seconds", (int, float), None)
    if cpu_seconds is not None and cpu_seconds <= 0:
        node.fail("call_cpu_seconds", "must be positive")
    return Part(id=pid, function=function, args=args, kwargs=kwargs, bind=dict(bind), outputs=tuple(outputs),
                must_not_modify_inputs=node.get("must_not_modify_inputs", bool, False),
                cases=cases, call_cpu_seconds=None if cpu_seconds is None else float(cpu_seconds), **tolerances)


def _case(part: _Node, index: int, data: Any) -> Case:
    cid = data.get("id") if isinstance(data, dict) else None
    node = _Node(part.path, f"{part.key}.cases.{cid if isinstance(cid, str) else index}", data)
    node.only("id", "visibility", "points", "values", "generator", "params", "seed")
    cid = node.get("id", str)
    if not _CASE_ID.match(cid):
        node.fail("id", f"{cid!r} is not a valid case id")
    visibility = node.get("visibility", str)
    if visibility not in VISIBILITIES:
        node.fail("visibility", f"must be public or hidden, got {visibility!r}")
    points = node.get("points", (int, float))
    if points < 0:
        node.fail("points", "must not be negative")
    generator = node.get("generator", str, None)
    values = node.get("values", dict, {})
    if generator is None and not values:
        node.fail("", "needs a generator or literal values")
    if generator is not None and "seed" not in node.value:
        node.fail("seed", "missing required key (a generated case needs a seed to be reproducible)")
    if generator is None and ("params" in node.value or "seed" in node.value):
        node.fail("params" if "params" in node.value else "seed", "only makes sense with a generator")
    return Case(id=cid, visibility=visibility, points=float(points), values=dict(values),
                generator=generator, params=dict(node.get("params", dict, {})),
                seed=node.get("seed", int, None))


def _unique(node: _Node, key: str, ids: list[str]) -> None:
    seen = set()
    for i in ids:
        if i in seen:
            node.fail(key, f"id {i!r} is used twice")
        seen.add(i)
