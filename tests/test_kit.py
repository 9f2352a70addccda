"""The student kit holds the grader and the public cases, and nothing a student may not have."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.assignment.plan import build_plan, load_plan_json
from grader.assignment.rubric import load_rubric

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def full_plan():
    return build_plan(load_rubric(ROOT / "rubrics" / "homework.yaml"))


@pytest.fixture(scope="module")
def kit(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("kit") / "hwgrader-kit"
    proc = subprocess.run([sys.executable, "-m", "grader", "kit", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


def _arrays(node):
    if isinstance(node, dict) and "dtype" in node and "shape" in node:
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from _arrays(v)
    elif isinstance(node, list):
        for v in node:
            yield from _arrays(v)


def test_kit_contains_no_reference_source(kit, full_plan):
    files = [p for p in kit.rglob("*") if p.is_file()]
    assert not any(part in ("reference", "rubrics") for p in files for part in p.relative_to(kit).parts)
    assert not [p for p in files if p.suffix in (".yaml", ".yml")]
    reference_defs = {f"def {c.function}(" for c in full_plan.cases}
    for path in files:
        if path.suffix in (".py", ".json", ".md", ".toml", ".html"):
            text = path.read_text(encoding="utf-8")
            leaked = [d for d in reference_defs if d in text]
            assert not leaked, f"{path} contains reference code: {leaked}"
    assert (kit / "handout.md").is_file() and (kit / "grader" / "public-cases.json").is_file()


def test_kit_contains_no_hidden_case(kit, full_plan):
    data = json.loads((kit / "grader" / "public-cases.json").read_text(encoding="utf-8"))
    shipped = [np.array(a["data"], dtype=float).reshape(a["shape"]) for a in _arrays(data) if None not in a["data"]]
    hidden = [c for c in full_plan.cases if c.visibility == "hidden"]
    assert hidden, "the rubric has hidden cases"
    numbers = {c["number"] for q in data["questions"] for c in q["cases"]}
    assert numbers.isdisjoint({c.number for c in hidden})
    for case in hidden:
        for name, value in case.inputs.items():
            if isinstance(value, np.ndarray) and value.size > 2:
                assert not any(s.shape == value.shape and np.array_equal(s, value) for s in shipped), \
                    f"hidden input {case.number} {name} is in the kit"


def test_kit_public_cases_round_trip(kit, full_plan):
    loaded = load_plan_json(kit / "grader" / "public-cases.json")
    public = full_plan.public_only()
    assert [c.number for c in loaded.cases] == [c.number for c in public.cases]
    for mine, theirs in zip(public.cases, loaded.cases):
        for a, b in zip(mine.expected, theirs.expected):
            assert a.shape == b.shape and np.array_equal(a, b)  # exact: JSON keeps every float's bits
        for a, b in zip(mine.args, theirs.args):
            assert np.array_equal(np.asarray(a), np.asarray(b)) and np.asarray(a).dtype == np.asarray(b).dtype
        assert [m.id for m in mine.mistakes] == [m.id for m in theirs.mistakes]


def test_check_runs_from_the_kit_alone(kit, tmp_path):
    """A student with only the kit (no repository) self-checks a submission."""
    student = tmp_path / "me.py"
    student.write_text("def zero_insert(x, factor=2):\n    return x\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONPATH": str(kit)}
    proc = subprocess.run([sys.executable, "-m", "grader", "check", str(student), "--question", "q5",
                           "--report", str(tmp_path / "r.html")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "zero_insert" in proc.stdout and "has the wrong shape" in proc.stdout
    assert (tmp_path / "r.html").is_file()
