"""Hidden means hidden, and the student's reply is data (issue 8, items 4 and 5).

* the reply schema (``grader.sandbox.replies``): depth guard, types, shapes, bounded reader;
* forged replies through a real worker: the call's ``invalid_reply`` outcome, then recovery;
* hidden-case output, exception names and exit codes kept from the student under every
  isolation level that works here, kept for the instructor (``extra_data.instructor``);
* malformed notebooks and forged replies graded by the CLI: exit 0, the student's verdict;
* the parent's peak memory for a student whose replies sit at the protocol's cap.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import struct
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import hidden_leaks
from grader.assignment.plan import build_plan
from grader.assignment.rubric import load_rubric
from grader.grading import engine
from grader.grading.engine import grade_submission
from grader.grading.verdicts import Verdict
from grader.outputs.writers import WriterChain, default_writers
from grader.sandbox import launch as sandbox
from grader.sandbox import replies
from grader.sandbox.capture import SplitOutput
from grader.sandbox.launch import Limits
from grader.sandbox.replies import InvalidReply, Outcome, ReplyReader, ReplyTooLarge
from grader.sandbox.session import WorkerSession

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = ROOT / "tests" / "attacks"
FAST = Limits(call_seconds=3, load_seconds=10, submission_seconds=60, memory_mb=512, cpu_seconds=20)
LIMITS = dict(call_seconds=3, load_seconds=10, submission_seconds=30, memory_mb=512, cpu_seconds=10)


def _levels():
    out = []
    for iso in sandbox.ISOLATIONS:
        if iso == "process" or sandbox.detect_isolation(iso) == iso:
            out.append(pytest.param(iso))
        else:
            out.append(pytest.param(iso, marks=pytest.mark.skip(reason=f"{iso} does not work here")))
    return out


LEVELS = _levels()


@pytest.fixture(scope="module")
def plan():
    p = build_plan(load_rubric(ROOT / "rubrics" / "homework.yaml"))
    return replace(p, limits=replace(p.limits, **LIMITS))


# ------------------------------------------------------------------ the schema (pure)

def test_json_depth_is_measured_before_json_recursion():
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match="200000 levels"):
        replies.loads_bounded(b"[" * 200_000)
    assert time.perf_counter() - t0 < 1.0
    # brackets inside strings and escaped quotes do not count
    assert replies.loads_bounded(b'{"a": "[[[[[[[[[[[[[[[[\\"[[[[[[[["}') == {"a": '[[[[[[[[[[[[[[[["[[[[[[[['}
    assert replies.json_depth(b'[[["\\\\"]]]') == 3
    with pytest.raises(ValueError):
        replies.loads_bounded(b"[NaN]")
    with pytest.raises(ValueError):
        replies.loads_bounded(b'"\xff"')


@pytest.mark.parametrize("header, why", [
    ({"ok": True, "id": 7, "outputs": [{"shape": [0, 2 ** 70]}], "nbytes": 0}, "shape"),
    ({"ok": True, "id": 7, "outputs": [{"shape": [2, 2]}], "mutated": 5, "nbytes": 32}, "mutated"),
    ({"ok": False, "id": 7, "kind": ["exception"], "message": "x"}, "kind"),
    ({"ok": False, "id": 7, "kind": "exception", "message": {"a": 1}}, "message"),
    ({"ok": True, "id": "7", "outputs": [{"shape": [2, 2]}], "nbytes": 32}, "id"),
    ({"ok": True, "id": 8, "outputs": [{"shape": [2, 2]}], "nbytes": 32}, "id"),
    ({"ok": True, "id": 7, "outputs": {"shape": [2, 2]}, "nbytes": 32}, "outputs"),
    ({"ok": True, "id": 7, "outputs": [{"shape": [True, 2]}], "nbytes": 32}, "shape"),
    ({"ok": True, "id": 7, "outputs": [{"shape": [2, 2]}], "nbytes": 24}, "payload"),
    ({"ok": True, "id": 7, "outputs": [{"shape": [5000, 5000]}], "nbytes": 8 * 25_000_000}, "elements"),
    ([1, 2], "object"),
])
def test_malformed_call_replies_are_invalid(header, why):
    with pytest.raises(InvalidReply, match=why):
        replies.parse_reply(header, "call", call_id=7, n_outputs=1)


def test_valid_replies_are_typed():
    r = replies.parse_reply({"ok": True, "id": 7, "outputs": [{"shape": [2, 3]}], "mutated": ["x"],
                             "nbytes": 48, "score": 100}, "call", call_id=7, n_outputs=1)
    arrays = r.arrays(memoryview(bytearray(np.arange(6.0).tobytes())))
    assert r.mutated == ("x",) and arrays[0].shape == (2, 3) and arrays[0][1, 2] == 5.0
    loaded = replies.parse_reply({"ok": True, "functions": ["f"], "cell_failures": [], "answers": {"A": "b"},
                                  "nbytes": 0}, "loaded")
    assert loaded.functions == ("f",) and loaded.answers == {"A": "b"}
    for bad in ({"ok": True, "functions": 5}, {"ok": True, "functions": [], "answers": []},
                {"ok": True, "functions": [], "cell_failures": [{"cell": "1", "summary": "x"}]}):
        with pytest.raises(InvalidReply):
            replies.parse_reply(bad, "loaded")


def test_reader_refuses_an_oversized_payload_before_reading_it():
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        header = json.dumps({"ok": True, "id": 1, "outputs": [{"shape": [10_000_000]}], "nbytes": 80_000_000}).encode()
        os.write(w, struct.pack("!I", len(header)) + header + b"\0" * 1000)
        reader = ReplyReader(max_header=1 << 16, max_payload=4 << 20)
        with pytest.raises(ReplyTooLarge) as info:
            while reader.read_from(r) is None:
                pass
        assert info.value.header["nbytes"] == 80_000_000
        assert os.read(r, 2000) == b"\0" * 1000  # the payload was not touched
        # a header over the cap is refused from its length alone
        os.write(w, struct.pack("!I", 1 << 20))
        with pytest.raises(InvalidReply, match="header of"):
            ReplyReader(max_header=1 << 16, max_payload=0).read_from(r)
    finally:
        os.close(r)
        os.close(w)


def test_split_output_files_what_the_pipe_holds_before_the_seal_as_visible():
    out = SplitOutput(1000)
    r, w = os.pipe()
    import threading
    t = threading.Thread(target=out.drain, args=(r,), daemon=True)
    t.start()
    os.write(w, b"public\n")
    out.seal()  # no wait: whatever is in the pipe when seal() runs is still visible
    os.write(w, b"hidden\n")
    os.close(w)
    t.join(5)
    assert out.visible() == ("public\n", False) and out.hidden() == ("hidden\n", False)


def test_a_worker_printing_without_pause_cannot_hold_up_the_seal():
    import threading
    out = SplitOutput(1000)
    r, w = os.pipe()
    drain = threading.Thread(target=out.drain, args=(r,), daemon=True)
    drain.start()
    stop = threading.Event()

    def spam():
        while not stop.is_set():
            os.write(w, b"x" * 65536)

    writer = threading.Thread(target=spam, daemon=True)
    writer.start()
    try:
        time.sleep(0.2)
        t0 = time.monotonic()
        out.seal()
        assert time.monotonic() - t0 < 1.0
        assert out.visible() == ("x" * 1000, True)
        deadline = time.monotonic() + 5
        while not out.hidden()[1] and time.monotonic() < deadline:  # the drain goes on after the seal
            time.sleep(0.05)
        assert out.hidden() == ("x" * 1000, True)
    finally:
        stop.set()
        writer.join(5)
        os.close(w)
        drain.join(5)


def test_every_failure_outcome_is_a_verdict():
    assert {o.value for o in Outcome if o is not Outcome.OK} <= {v.value for v in Verdict}
    assert Verdict.INVALID_REPLY.run_failure and Verdict.INVALID_REPLY.label == "invalid reply"
    assert Verdict.worst(["wrong", "shape", "nonfinite"]) is Verdict.SHAPE


# ------------------------------------------------------------------ real workers

FORGER = '''
import json, os, struct, sys
import numpy as np

def _channel():
    f = sys._getframe(2)
    while f is not None and not ("cid" in f.f_locals and "self" in f.f_locals):
        f = f.f_back
    return f.f_locals["self"].res_fd, f.f_locals["cid"]

def _send(header_bytes, payload=b""):
    fd, _ = _channel()
    os.write(fd, struct.pack("!I", len(header_bytes)) + header_bytes + payload)
    os._exit(0)

def deep(x):
    _send(b"[" * 200_000)

def wrong_type(x):
    _, cid = _channel()
    _send(json.dumps({"ok": True, "id": cid, "outputs": [{"shape": [1]}], "mutated": 5, "nbytes": 8}).encode(),
          np.zeros(1).tobytes())

def huge_shape(x):
    _, cid = _channel()
    _send(json.dumps({"ok": True, "id": cid, "outputs": [{"shape": [0, 2 ** 70]}], "nbytes": 0}).encode())

def kind_list(x):
    _, cid = _channel()
    _send(json.dumps({"ok": False, "id": cid, "kind": ["exception"], "message": "m"}).encode())

def at_cap(x):
    return np.zeros(10_000_000)

def ok(x):
    return x
'''


@pytest.mark.parametrize("iso", LEVELS)
def test_forged_replies_are_the_calls_invalid_reply_then_recovery(iso):
    units = [{"cell": 0, "filename": "forger.py", "source": FORGER}]
    with WorkerSession(units, [], FAST, isolation=iso) as s:
        assert s.load().ok
        for fn in ("deep", "wrong_type", "huge_shape", "kind_list"):
            out = s.call(fn, [1.0], {}, ["x"], 1)
            assert out.verdict is Outcome.INVALID_REPLY and "invalid reply" in out.message, (fn, out)
            again = s.call("ok", [2.0], {}, ["x"], 1)
            assert again.verdict is Outcome.OK and again.outputs[0] == 2.0
        big = s.call("at_cap", [1.0], {}, ["x"], 1, max_reply_bytes=4 << 20)
        assert big.verdict is Outcome.REJECTED and "10,000,000 values" in big.message, big


@pytest.mark.parametrize("iso", LEVELS)
def test_hidden_case_output_is_the_instructors_only(iso, plan, tmp_path):
    """Per-call capture under each isolation level: public prints shown, hidden prints kept apart."""
    out_dir = tmp_path / "out"
    writers = WriterChain(default_writers(out_dir, plan))
    results = []
    for name in hidden_leaks.ATTACKS:
        shutil.copyfile(ATTACKS / f"{name}.py", tmp_path / f"{name}.py")
        r = grade_submission(tmp_path / f"{name}.py", plan, isolation=iso)
        assert r.isolation == iso
        writers.submission(r)
        results.append(r)
    writers.finish(results)
    assert hidden_leaks.leak_problems(out_dir, plan, set(hidden_leaks.ATTACKS)) == []
    by_name = {r.student: r for r in results}
    hidden = [c for c in by_name["hidden_exception_name"].cases if c.function == "urn_emissions"
              and c.visibility == "hidden"]
    assert hidden and all(c.message == "urn_emissions raised an exception on a hidden case" for c in hidden)
    exit_cases = [c for c in by_name["hidden_exit_code"].cases if c.function == "urn_emissions"]
    assert {c.verdict for c in exit_cases} == {Verdict.CRASH}
    incidents = by_name["hidden_exit_code"].incidents
    assert any("exited with code" in i for i in by_name["hidden_exit_code"].hidden_incidents)
    assert "urn_emissions: the worker crashed on a hidden case; the worker was restarted" in incidents
    assert any("while running urn_emissions" in i for i in incidents)  # the public case: in full


def test_the_leak_oracle_fails_without_the_defence(plan, tmp_path, monkeypatch):
    """The oracle above can fail: with the split and the ordering switched off, it finds the leak."""
    monkeypatch.setattr(SplitOutput, "seal", lambda self: None)
    monkeypatch.setattr(engine, "_hidden_failure", lambda case, verdict, outcome: outcome.message)
    out_dir = tmp_path / "out"
    writers = WriterChain(default_writers(out_dir, plan))
    for name in ("hidden_print_echo", "hidden_exception_name"):
        shutil.copyfile(ATTACKS / f"{name}.py", tmp_path / f"{name}.py")
        writers.submission(grade_submission(tmp_path / f"{name}.py", plan, isolation="process"))
    problems = hidden_leaks.leak_problems(out_dir, plan, {"hidden_print_echo", "hidden_exception_name"})
    assert any(p.startswith("hidden_print_echo: the inputs of hidden case") for p in problems), problems
    assert any(p.startswith("hidden_exception_name: the inputs of hidden case") for p in problems), problems


def test_builtin_exception_names_stay_on_hidden_cases(plan, tmp_path):
    src = tmp_path / "raiser.py"
    src.write_text("def urn_emissions(red, blue):\n    raise ZeroDivisionError('secret ' + str(red[0]))\n")
    r = grade_submission(src, plan, isolation="process")
    hidden = [c for c in r.cases if c.function == "urn_emissions" and c.visibility == "hidden"]
    public = [c for c in r.cases if c.function == "urn_emissions" and c.visibility == "public"]
    assert [c.message for c in hidden] == ["urn_emissions raised ZeroDivisionError on a hidden case"]
    assert all("secret" in c.message and c.traceback for c in public)  # public: full feedback


# ------------------------------------------------------------------ the CLI, as a user runs it

def _deep_notebook(path: Path) -> None:
    path.write_text('{"nbformat": 4, "cells": ' + "[" * 200_000 + "]" * 200_000 + "}")


def test_cli_grades_malformed_notebooks_and_forged_replies_as_the_students(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    notebooks = ["notebook_int_source", "notebook_dict_source", "notebook_cells_not_list"]
    for name in notebooks:
        shutil.copyfile(ATTACKS / f"{name}.ipynb", subs / f"{name}.ipynb")
    _deep_notebook(subs / "notebook_deep_json.ipynb")
    (subs / "notebook_not_json.ipynb").write_text('{"cells": [')
    for name in ("forge_deep_json", "forge_huge_shape", "hidden_exception_name"):
        shutil.copyfile(ATTACKS / f"{name}.py", subs / f"{name}.py")
    shutil.copyfile(ROOT / "submissions" / "correct_module.py", subs / "ctrl_correct.py")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out), "--jobs", "2"],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "hwgrader failed" not in proc.stderr

    def results(name):
        return json.loads((out / name / "results.json").read_text())

    why = {"notebook_int_source": "cell 2's 'source' is a number, not text",
           "notebook_dict_source": "cell 2's 'source' is an object, not text",
           "notebook_cells_not_list": "'cells' is an object, not a list",
           "notebook_deep_json": "nested 200001 levels deep",
           "notebook_not_json": "not a readable Jupyter notebook"}
    for name, text in why.items():
        data = results(name)
        assert data["score"] == 0 and text in (data["extra_data"]["load_error"] or ""), (name, data["extra_data"])
        assert text in html.unescape((out / name / "report.html").read_text())
    for name in ("forge_deep_json", "forge_huge_shape"):
        urn = [t for t in results(name)["tests"] if "urn_emissions" in t["name"]]
        assert urn and all("invalid_reply" in t["tags"] and t["score"] == 0 for t in urn), urn
    assert results("ctrl_correct")["score"] > 0
    seen = hidden_leaks.student_visible(out, "hidden_exception_name")
    assert "raised an exception on a hidden case" in seen and "invalid reply" in (out / "index.html").read_text()
    assert 'id="output-hidden-note"' in seen  # the student is told why hidden-case prints are missing


# ------------------------------------------------------------------ the parent's memory

@pytest.mark.slow
def test_parent_memory_stays_bounded_for_replies_at_the_cap(tmp_path):
    script = ROOT / "benchmarks" / "bench_reply_memory.py"
    proc = subprocess.run([sys.executable, str(script), "--jobs", "2", "--functions", "baum_welch", "--json"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["rejected_cases"] > 0, figures
    # numpy, the plan and the reports take ~150 MB; one at-cap reply read whole is 80 MB per output
    assert figures["peak_rss_mb"] - figures["baseline_rss_mb"] < 150, figures
