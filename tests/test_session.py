"""WorkerSession against real sandboxed worker processes (bwrap / unshare / process)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from grader.sandbox import launch as sandbox
from grader.sandbox.inside import protocol
from grader.sandbox.session import WorkerSession
from grader.sandbox.launch import Limits

PROJECT = Path(__file__).resolve().parents[1]


def _available():
    best = sandbox.detect_isolation()
    out = []
    for iso in sandbox.ISOLATIONS:
        if iso == "process" or sandbox.detect_isolation(iso) == iso:
            out.append(pytest.param(iso))
        else:
            out.append(pytest.param(iso, marks=pytest.mark.skip(reason=f"{iso} does not work here (best: {best})")))
    return out


ISOLATIONS = _available()
FAST = Limits(call_seconds=2, load_seconds=10, submission_seconds=60, memory_mb=512, cpu_seconds=20)


def session(src, iso="process", limits=FAST, answers=("ANSWER_Q1", "ANSWER_Q2"), filename="alice.py"):
    units = src if isinstance(src, list) else [{"cell": 0, "filename": filename, "source": src}]
    return WorkerSession(units, list(answers), limits, isolation=iso)


GOOD = '''
import numpy as np
ANSWER_Q1 = "因为 γ 和 β 是 learned parameters"
ANSWER_Q2 = 42
def scale(x, factor=2.0):
    return x * factor
def three(x):
    return x.sum(), [[1, 2], [3, 4]], 3.5
def as_list(x):
    return [[1, 2, 3], [4, 5, 6]]
def boom(x):
    y = x + 1
    raise ValueError("bad shape " + str(y.shape))
'''


# ------------------------------------------------------------------ protocol (pure)

def test_protocol_round_trip_and_validation():
    vals = [np.arange(6.0).reshape(2, 3), np.array([1, 2, 3]), 5, 2.5, float("nan")]
    descs, payload = protocol.encode_values(vals)
    back = protocol.decode_values(descs, payload)
    assert back[0].dtype == np.float64 and back[0].shape == (2, 3) and back[0].flags.writeable
    assert back[1].dtype == np.int64 and back[2] == 5 and back[3] == 2.5 and np.isnan(back[4])
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_values(descs, payload + b"x")
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_values([{"kind": "array", "dtype": "O", "shape": [1]}], b"\0" * 8)
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_values([{"kind": "array", "dtype": "f8", "shape": [-1]}], b"")
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_values([{"kind": "array", "dtype": "f8", "shape": [10, 10]}], b"\0" * 800, max_elements=50)
    dec = protocol.FrameDecoder(max_payload=10)
    with pytest.raises(protocol.ProtocolError):
        dec.feed(protocol.encode_frame({"a": 1}, b"x" * 11))
    frame = protocol.encode_frame({"a": 1}, b"xyz")
    dec = protocol.FrameDecoder()
    assert dec.feed(frame[:5]) == [] and dec.feed(frame[5:]) == [({"a": 1, "nbytes": 3}, b"xyz")]
    with pytest.raises(protocol.ProtocolError):
        protocol.FrameDecoder().feed(b"\xff\xff\xff\xff")
    from grader.errors import ProtocolError
    assert ProtocolError is protocol.ProtocolError


# ------------------------------------------------------------------ round trips

@pytest.mark.parametrize("iso", ISOLATIONS)
def test_round_trip_answers_and_exceptions(iso):
    with session(GOOD, iso) as s:
        rep = s.load()
        assert s.isolation == iso
        assert rep.ok and rep.verdict == "ok" and rep.cell_failures == []
        assert {"scale", "three", "as_list", "boom"} <= set(rep.functions)
        assert rep.answers == {"ANSWER_Q1": "因为 γ 和 β 是 learned parameters"}  # int answer dropped
        x = np.arange(6.0).reshape(2, 3)
        out = s.call("scale", [x], {"factor": 3}, ["x"], 1)
        assert out.verdict == "ok" and np.array_equal(out.outputs[0], x * 3)
        out = s.call("three", [x], {}, ["x"], 3)
        assert out.verdict == "ok"
        assert out.outputs[0].shape == () and out.outputs[0] == 15
        assert out.outputs[1].tolist() == [[1, 2], [3, 4]] and out.outputs[2] == 3.5
        assert all(o.dtype == np.float64 for o in out.outputs)
        out = s.call("as_list", [x], {}, ["x"], 1)
        assert out.verdict == "ok" and out.outputs[0].shape == (2, 3)
        out = s.call("boom", [x], {}, ["x"], 1)
        assert out.verdict == "exception"
        assert out.message == "ValueError: bad shape (2, 3)"
        assert 'File "alice.py", line 13, in boom' in out.traceback
        assert 'raise ValueError("bad shape "' in out.traceback
        assert "worker.py" not in out.traceback
        assert s.call("nope", [x], {}, ["x"], 1).verdict == "missing"


def test_notebook_cells_failures_continue():
    units = [
        {"cell": 1, "filename": "bob.ipynb [cell 1]", "source": "import numpy as np\n"},
        {"cell": 2, "filename": "bob.ipynb [cell 2]", "source": "from keras.layers import Dense\n"},
        {"cell": 3, "filename": "bob.ipynb [cell 3]", "source": "def f(x):\n    return np.sum(x)\n"},
        {"cell": 4, "filename": "bob.ipynb [cell 4]", "source": "def broken(:\n  pass\n"},
        {"cell": 5, "filename": "bob.ipynb [cell 5]", "source": "import sys\nsys.exit(2)\n"},
        {"cell": 6, "filename": "bob.ipynb [cell 6]", "source": "ANSWER_Q2 = 'after exit'\n"},
    ]
    with session(units) as s:
        rep = s.load()
        assert rep.ok
        cells = {f.cell: f for f in rep.cell_failures}
        assert set(cells) == {2, 4, 5}
        assert cells[2].summary == "ModuleNotFoundError: No module named 'keras'"
        assert 'bob.ipynb [cell 2]", line 1' in cells[2].traceback
        assert cells[4].summary.startswith("SyntaxError")
        assert "bob.ipynb [cell 4]" in cells[4].traceback and "line 1" in cells[4].traceback
        assert cells[5].summary.startswith("SystemExit")
        assert rep.answers == {"ANSWER_Q2": "after exit"}
        out = s.call("f", [np.ones(4)], {}, ["x"], 1)
        assert out.verdict == "ok" and out.outputs[0] == 4


def test_rejected_and_wrong_count():
    src = '''
import numpy as np
def s(x): return "0.5"
def obj(x): return np.array([1, "a", None], dtype=object)
def ragged(x): return [[1, 2], [3]]
def d(x): return {"a": 1}
def none(x): pass
def cplx(x): return x + 1j
def two(x): return x, x
def single(x): return x
'''
    with session(src) as s:
        assert s.load().ok
        x = np.ones(3)
        cases = {"s": "str", "obj": "object", "ragged": "ragged", "d": "dict", "none": "None", "cplx": "complex"}
        for fn, word in cases.items():
            out = s.call(fn, [x], {}, ["x"], 1, output_names=["w"])
            assert out.verdict == "rejected", (fn, out)
            assert word in out.message and "'w'" in out.message, (fn, out.message)
        out = s.call("two", [x], {}, ["x"], 3, output_names=["dx", "dgamma", "dbeta"])
        assert out.verdict == "rejected"
        assert out.message == "returned 2 values, expected 3 (dx, dgamma, dbeta)"
        out = s.call("single", [x], {}, ["x"], 2)
        assert out.verdict == "rejected" and "expected 2 values" in out.message
        assert s.call("two", [x], {}, ["x"], 2).verdict == "ok"


def test_mutation_reported():
    src = '''
def sneaky(a, b, c):
    a[0] = 99
    c *= 2
    return a.sum()
'''
    with session(src) as s:
        s.load()
        a, b, c = np.zeros(3), np.ones(3), np.ones(2)
        out = s.call("sneaky", [a, b], {"c": c}, ["a", "b"], 1)
        assert out.verdict == "ok" and out.outputs[0] == 99
        assert sorted(out.mutated) == ["a", "c"]
        assert a[0] == 0  # the parent's arrays are never touched


# ------------------------------------------------------------------ failures + recovery

@pytest.mark.parametrize("iso", ISOLATIONS)
def test_timeout_then_restart(iso):
    src = '''
import time
print("loaded")
def hang(x):
    while True:
        pass
def sleepy(x):
    time.sleep(100)
def ok(x):
    return x + 1
def die(x):
    import os
    os._exit(3)
'''
    limits = Limits(call_seconds=1, load_seconds=10, submission_seconds=60, memory_mb=512, cpu_seconds=20)
    with session(src, iso, limits) as s:
        assert s.load().ok
        t = time.monotonic()
        out = s.call("hang", [np.ones(2)], {}, ["x"], 1)
        assert out.verdict == "timeout" and time.monotonic() - t < 3
        assert "ran out of time (1 s)" in out.message
        out = s.call("ok", [np.ones(2)], {}, ["x"], 1)
        assert out.verdict == "ok" and out.outputs[0].tolist() == [2, 2]
        assert s.call("sleepy", [np.ones(2)], {}, ["x"], 1).verdict == "timeout"
        out = s.call("die", [np.ones(2)], {}, ["x"], 1)
        assert out.verdict == "crash" and "code 3" in out.message
        assert s.call("ok", [np.ones(2)], {}, ["x"], 1).verdict == "ok"
        assert len(s.incidents) == 3 and "hang ran out of time" in s.incidents[0]
    text, truncated = s.output()  # complete once closed
    assert text.count("loaded") == 4 and not truncated


def test_submission_budget_skips():
    src = "import time\ndef slow(x):\n    time.sleep(0.7)\n    return x\n"
    limits = Limits(call_seconds=5, load_seconds=10, submission_seconds=1.5, memory_mb=512)
    with session(src, limits=limits) as s:
        s.load()
        verdicts = [s.call("slow", [1.0], {}, ["x"], 1).verdict for _ in range(4)]
    assert verdicts[0] == "ok" and verdicts[-1] == "skipped"
    assert "timeout" in verdicts or verdicts.count("ok") == 2


def test_exit_at_import_and_crash_at_import():
    with session("import sys\nsys.exit('bye')\ndef f(x): return x\n") as s:
        rep = s.load()
        assert rep.ok and rep.cell_failures[0].summary == "SystemExit: bye"
        assert s.call("f", [1.0], {}, ["x"], 1).verdict == "missing"
    with session("import os\nos._exit(7)\n") as s:
        rep = s.load()
        assert not rep.ok and rep.verdict == "crash" and "code 7" in rep.error
        out = s.call("f", [1.0], {}, ["x"], 1)
        assert out.verdict == "skipped"


@pytest.mark.parametrize("iso", ISOLATIONS)
def test_memory_bomb(iso):
    src = '''
import numpy as np
def bomb(x):
    keep = []
    while True:
        keep.append(np.ones(10_000_000))
def ok(x):
    return x
'''
    limits = Limits(call_seconds=15, load_seconds=10, memory_mb=256)
    with session(src, iso, limits) as s:
        s.load()
        t = time.monotonic()
        out = s.call("bomb", [1.0], {}, ["x"], 1)
        assert out.verdict == "memory", out
        assert time.monotonic() - t < 10
        assert s.call("ok", [1.0], {}, ["x"], 1).verdict == "ok"


def test_huge_output_is_capped():
    src = '''
import sys
for i in range(2):
    sys.stdout.write("x" * (25 << 20))
def f(x):
    print("y" * (10 << 20))
    return x
'''
    with session(src) as s:
        assert s.load().ok
        assert s.call("f", [1.0], {}, ["x"], 1).verdict == "ok"
        text, truncated = s.output()
    assert truncated and len(text) <= FAST.output_bytes


# ------------------------------------------------------------------ isolation

@pytest.mark.parametrize("iso", [p for p in ISOLATIONS if p.values[0] != "process"])
def test_sandbox_hides_project_and_reference(iso):
    ref = PROJECT / "reference" / "q1_batchnorm.py"
    assert ref.exists()
    src = f'''
import os, sys
def probe(x):
    seen = []
    for p in [{str(ref)!r}, {str(PROJECT)!r}, "/work", "/root/.bash_history", "/etc/passwd", "/home"]:
        if os.path.exists(p):
            seen.append(p)
    try:
        import reference
        seen.append("import reference")
    except ImportError:
        pass
    try:
        import grader
        seen.append("import grader")
    except ImportError:
        pass
    try:
        import socket
        socket.create_connection(("1.1.1.1", 80), timeout=1)
        seen.append("network")
    except OSError:
        pass
    if os.environ.get("PATH") or os.environ.get("PYTHONPATH"):
        seen.append("env")
    if os.getuid() == 0 and {sys.platform == "linux" and os.geteuid() == 0 and iso == "bwrap"!r}:
        seen.append("root")
    assert not seen, seen
    open("/tmp/scratch.txt", "w").write("ok")
    return float(len(os.listdir("/proc")))
'''
    with session(src, iso) as s:
        assert s.load().ok
        out = s.call("probe", [0.0], {}, ["x"], 1)
        assert out.verdict == "ok", out
        with pytest.raises(OSError):
            open(ref.parent / "nothing_here")  # sanity: host side unaffected
    with session(f"open({str(ref)!r})\n", iso) as s:
        rep = s.load()
        assert rep.cell_failures and "FileNotFoundError" in rep.cell_failures[0].summary


def _host_pids_with(marker: str) -> list[int]:
    found = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{d}/cmdline").read_bytes():
                    found.append(int(d))
            except OSError:
                pass
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="uses /proc")
@pytest.mark.parametrize("iso", ISOLATIONS)
def test_no_process_survives_close(iso):
    marker = f"987.{os.getpid()}{len(iso)}"
    src = f'''
import subprocess, os
subprocess.Popen(["sleep", "{marker}"])
def f(x):
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "{marker}1"])
    return x
'''
    with session(src, iso) as s:
        assert s.load().ok
        assert s.call("f", [1.0], {}, ["x"], 1).verdict == "ok"
        deadline = time.monotonic() + 3
        while len(_host_pids_with(marker)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(_host_pids_with(marker)) == 2
    deadline = time.monotonic() + 3
    while _host_pids_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _host_pids_with(marker) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="uses /proc/self/fd")
def test_no_fd_or_thread_leak():
    import threading
    before_fds, before_threads = len(os.listdir("/proc/self/fd")), threading.active_count()
    for i in range(30):
        with session("def f(x):\n    return x\n") as s:
            s.load()
            assert s.call("f", [float(i)], {}, ["x"], 1).outputs[0] == i
    time.sleep(0.1)
    assert len(os.listdir("/proc/self/fd")) <= before_fds
    assert threading.active_count() <= before_threads


@pytest.mark.parametrize("iso", ISOLATIONS)
def test_garbage_on_the_channel_is_an_invalid_reply_then_recovery(iso):
    src = '''
import os, sys
def garbage(x):
    os.write(int(sys.argv[2]), b"\\x00\\x00\\x00\\x05hello")
    return x
def oversized(x):
    os.write(int(sys.argv[2]), b"\\x7f\\xff\\xff\\xff")
    return x
def ok(x):
    return x
'''
    with session(src, iso) as s:
        assert s.load().ok
        for fn in ("garbage", "oversized"):
            out = s.call(fn, [1.0], {}, ["x"], 1)
            assert out.verdict == "invalid_reply" and "invalid reply" in out.message, out
            assert s.call("ok", [2.0], {}, ["x"], 1).outputs[0] == 2


@pytest.mark.parametrize("iso", [p for p in ISOLATIONS if p.values[0] != "process"])
def test_fork_bomb_is_capped(iso):
    src = '''
import os, time
def bomb(x):
    n = 0
    try:
        while n < 10_000:
            if os.fork() == 0:
                time.sleep(30)
                os._exit(0)
            n += 1
    except OSError:
        pass
    return float(n)
'''
    limits = Limits(call_seconds=5, processes=16, memory_mb=512)
    with session(src, iso, limits) as s:
        assert s.load().ok
        out = s.call("bomb", [0.0], {}, ["x"], 1)
        if os.geteuid() != 0 or iso == "bwrap" or os.path.exists("/usr/bin/setpriv"):
            assert out.verdict == "ok" and out.outputs[0] < 16, out


def test_large_source_and_many_failing_cells():
    big = "DATA = [" + ",".join(["1.5"] * 400_000) + "]\ndef f(x):\n    return float(len(DATA))\n"
    units = [{"cell": 1, "filename": "big.ipynb [cell 1]", "source": big}]
    units += [{"cell": i, "filename": f"big.ipynb [cell {i}]", "source": "def g(:\n" + "x" * 30_000 + "\n"}
              for i in range(2, 300)]
    with session(units) as s:
        rep = s.load()
        assert rep.ok and len(rep.cell_failures) == 298
        assert s.call("f", [0.0], {}, ["x"], 1).outputs[0] == 400_000


@pytest.mark.parametrize("iso", ISOLATIONS)
def test_worker_starts_in_a_fresh_directory_that_disappears(iso, tmp_path, monkeypatch):
    """Relative writes land in the worker's own scratch directory, never in the grader's cwd."""
    monkeypatch.chdir(tmp_path)
    src = "import os\ndef where(x):\n    open('big.bin', 'wb').write(b'x' * 1000)\n    return float(len(os.listdir('.')))\n"
    with session(src, iso) as s:
        s.load()
        out = s.call("where", [np.zeros(1)], {}, ["x"], 1)
        assert out.verdict == "ok", out.message
        assert out.outputs[0] == 1.0  # an empty directory of its own, with just that file
    assert list(tmp_path.iterdir()) == []


def test_ci_has_the_full_sandbox():
    if os.environ.get("HWGRADER_REQUIRE_BWRAP") != "1":
        pytest.skip("only enforced where HWGRADER_REQUIRE_BWRAP=1 (CI)")
    assert sandbox.detect_isolation() in sandbox.FULL_ISOLATIONS
    assert sandbox.detect_isolation("bwrap") == "bwrap"
