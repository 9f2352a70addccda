"""Time is the students' work: CPU-time limits scaled from the reference, a wall-clock ceiling.

A function stuck in a loop is stopped after its CPU-time limit (about a second on this homework),
one that sleeps by the wall-clock ``call_seconds``; the limits come from the rubric and the plan.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from grader.assignment.plan import build_plan, load_plan_json, save_plan_json
from grader.assignment.rubric import CallTiming, load_rubric, parse_rubric
from grader.errors import RubricError
from grader.sandbox import launch as sandbox
from grader.sandbox.launch import Limits
from grader.sandbox.session import WorkerSession

ROOT = Path(__file__).resolve().parents[1]
RUBRIC = ROOT / "rubrics" / "homework.yaml"

SOURCE = '''
import time
def spin(x):
    while True:
        pass
def nap(x):
    time.sleep(100)
def quick(x):
    return x
def busy(x, seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return x
'''


def _isolation() -> str:
    best = sandbox.detect_isolation()
    return best if best in sandbox.FULL_ISOLATIONS else "process"


def _session(limits: Limits) -> WorkerSession:
    return WorkerSession([{"cell": 0, "filename": "s.py", "source": SOURCE}], [], limits, isolation=_isolation())


def test_cpu_limit_stops_a_busy_loop_quickly_and_names_cpu_time():
    limits = Limits(call_seconds=10, load_seconds=10, submission_seconds=60, memory_mb=512)
    with _session(limits) as s:
        assert s.load().ok
        started = time.monotonic()
        out = s.call("spin", [1.0], {}, ["x"], 1, cpu_seconds=0.5)
        spent = time.monotonic() - started
        assert out.verdict == "timeout", out.message
        assert out.message == "ran out of time (0.5 s of CPU time)"
        assert spent < 8, spent  # not the 10 s wall clock (0.5 s of CPU, on a machine that may be loaded)
        # the next call gets a fresh worker and works
        ok = s.call("quick", [2.0], {}, ["x"], 1, cpu_seconds=0.5)
        assert ok.verdict == "ok" and float(ok.outputs[0]) == 2.0


def test_work_below_the_cpu_limit_passes_however_long_it_waits_for_a_core():
    limits = Limits(call_seconds=30, load_seconds=10, submission_seconds=60, memory_mb=512)
    with _session(limits) as s:
        assert s.load().ok
        done = s.call("busy", [3.0, 0.4], {}, ["x", "seconds"], 1, cpu_seconds=1.0)
        assert done.verdict == "ok", done.message


def test_a_sleeping_call_meets_the_wall_clock_ceiling():
    limits = Limits(call_seconds=1.5, load_seconds=10, submission_seconds=60, memory_mb=512)
    with _session(limits) as s:
        assert s.load().ok
        started = time.monotonic()
        nap = s.call("nap", [1.0], {}, ["x"], 1)
        assert nap.verdict == "timeout" and nap.message == "ran out of time (1.5 s)"
        assert 1.4 < time.monotonic() - started < 6


def test_plan_limits_scale_with_the_reference_and_stay_in_bounds():
    plan = build_plan(load_rubric(RUBRIC))
    timing = plan.timing
    assert timing == CallTiming()  # the homework uses the defaults
    for case in plan.cases:
        assert case.reference_seconds > 0
        assert case.cpu_seconds == pytest.approx(
            min(plan.limits.call_seconds, max(timing.cpu_floor_seconds, timing.cpu_factor * case.reference_seconds)),
            abs=1e-3)
        # 50 times the reference's CPU time always fits, with room for a cold start
        assert case.cpu_seconds >= 1.9 * 50 * case.reference_seconds or case.cpu_seconds == plan.limits.call_seconds


def test_kit_keeps_the_cpu_limits(tmp_path):
    plan = build_plan(load_rubric(RUBRIC), public_only=True)
    save_plan_json(plan, tmp_path / "cases.json")
    back = load_plan_json(tmp_path / "cases.json")
    assert [c.cpu_seconds for c in back.cases] == [c.cpu_seconds for c in plan.cases]
    assert back.timing == plan.timing


def _rubric(limits: dict, part_extra: dict | None = None) -> dict:
    part = {"id": "p", "function": "f", "args": {"x": "array"}, "outputs": ["y"], "rtol": 0, "atol": 0,
            "cases": [{"id": "c", "visibility": "public", "points": 1, "values": {"x": [1.0]}}]}
    part.update(part_extra or {})
    return {"schema": 1, "title": "t", "reference": ".", "limits": limits,
            "questions": [{"id": "q1", "title": "Q", "points": 1, "parts": [part]}]}


def test_rubric_sets_its_own_timing_and_fixed_part_limits(tmp_path):
    rubric = parse_rubric(_rubric({"call_cpu_factor": 20, "call_cpu_floor_seconds": 0.5, "timeout_strikes": 2,
                                   "call_seconds": 4}, {"call_cpu_seconds": 3}), tmp_path / "r.yaml")
    assert rubric.timing == CallTiming(cpu_factor=20, cpu_floor_seconds=0.5, strikes=2)
    assert rubric.limits.call_seconds == 4
    assert rubric.questions[0].parts[0].call_cpu_seconds == 3
    assert CallTiming(cpu_factor=0).cpu_limit(1.0, 10) is None
    assert CallTiming().cpu_limit(0.5, 10) == 10  # never above the wall-clock ceiling


@pytest.mark.parametrize("limits, part, key, problem", [
    ({"timeout_strikes": 0}, None, "limits.timeout_strikes", "must be at least 1"),
    ({"call_cpu_factor": -1}, None, "limits.call_cpu_factor", "must not be negative"),
    ({"call_cpu_floor_seconds": 0}, None, "limits.call_cpu_floor_seconds", "must be positive"),
    ({"timeout_strikes": 1.5}, None, "limits.timeout_strikes", "must be an integer"),
    ({}, {"call_cpu_seconds": 0}, "questions.q1.parts.p.call_cpu_seconds", "must be positive"),
])
def test_bad_timing_keys_are_named(tmp_path, limits, part, key, problem):
    with pytest.raises(RubricError) as err:
        parse_rubric(_rubric(limits, part), tmp_path / "r.yaml")
    assert key in str(err.value) and problem in str(err.value)
