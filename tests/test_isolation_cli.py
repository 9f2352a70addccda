"""Fail closed, as a user meets it: `--isolation` is a requirement, the level is printed before
grading and recorded, no silent downgrade, unsandboxed only when asked for (or by `check`,
which says so), and never as root.

A machine without a sandbox is simulated by running the CLI with a PATH that holds no bwrap,
unshare or mount (the interpreter is started by its absolute path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import isolation_levels
from grader.sandbox import detect, levels
from grader.sandbox.levels import Isolation

ROOT = Path(__file__).resolve().parent.parent
CORRECT = ROOT / "submissions" / "correct_module.py"
NO_SANDBOX_PATH = "/nonexistent-hwgrader-path"


def hwgrader(*args: str, path: str | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if path is not None:
        env["PATH"] = path
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture
def one_submission(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(CORRECT, subs / "alice.py")
    return subs


def test_required_level_that_cannot_run_exits_2_with_the_reason(one_submission, tmp_path):
    out = tmp_path / "out"
    proc = hwgrader("grade", str(one_submission), "--out", str(out), "--isolation", "bwrap", path=NO_SANDBOX_PATH)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("hwgrader: error: --isolation bwrap cannot run here: bwrap is not installed "
                                   "(apt-get install bubblewrap)")
    assert not (out / "alice").exists()  # nothing graded


def test_no_sandbox_refuses_without_process(one_submission, tmp_path):
    proc = hwgrader("grade", str(one_submission), "--out", str(tmp_path / "out"), path=NO_SANDBOX_PATH)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("hwgrader: error: no sandbox works here (bwrap-fork: ")
    assert "bwrap: bwrap is not installed (apt-get install bubblewrap)" in line
    assert "unshare: unshare is not installed" in line
    assert "or grade unsandboxed with --isolation process" in line
    assert not (tmp_path / "out" / "alice").exists()


def test_check_falls_back_to_process_and_says_so():
    why_not = detect.probe(Isolation.PROCESS)
    proc = hwgrader("check", str(CORRECT), "--report", os.devnull, path=NO_SANDBOX_PATH)
    if why_not is None:
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.splitlines()
        assert lines[0].startswith("hwgrader: isolation: process (bwrap-fork unavailable: ")
        assert "student code runs UNSANDBOXED because no sandbox works on this machine" in lines[1]
        assert "public tests passed" in proc.stdout
    else:  # root with a Python an unprivileged uid cannot read: refused, never run as root
        assert proc.returncode == 2
        assert "never run as root" in proc.stderr and "no sandbox works here" in proc.stderr


@pytest.mark.parametrize("iso", isolation_levels.params(sandboxed_only=True))
def test_required_level_is_used_and_recorded(iso, one_submission, tmp_path):
    isolation_levels.require_working(iso)
    out = tmp_path / "out"
    proc = hwgrader("grade", str(one_submission), "--out", str(out), "--isolation", iso.value)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"hwgrader: isolation: {iso}"  # before grading starts (progress lines come later)
    assert any(line.startswith("[1/1] alice") for line in lines[1:]), proc.stderr
    results = json.loads((out / "alice" / "results.json").read_text())
    assert results["extra_data"]["isolation"] == iso.value
    assert results["score"] > 0


def test_default_level_is_the_strongest_that_works(one_submission, tmp_path):
    best = detect.choose().level  # raises (exit 2 in the CLI) when no sandbox works: covered above
    proc = hwgrader("grade", str(one_submission), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines()[0].startswith(f"hwgrader: isolation: {best}")
    stronger = list(Isolation)[: list(Isolation).index(best)]
    for level in stronger:  # each stronger level is named with the reason it was not used
        assert f"{level} unavailable: " in proc.stderr.splitlines()[0]


def test_process_is_never_root():
    why_not = detect.probe(Isolation.PROCESS)
    if why_not is not None:
        assert os.geteuid() == 0 and "never run as root" in why_not
        return
    from grader.sandbox.limits import Limits
    from grader.sandbox.session import WorkerSession
    units = [{"cell": 0, "filename": "a.py", "source": "import os\ndef uid(x):\n    return float(os.getuid())\n"}]
    with WorkerSession(units, [], Limits(), isolation=Isolation.PROCESS) as s:
        s.load()
        out = s.call("uid", [0.0], {}, ["x"], 1)
    assert out.verdict == "ok" and out.outputs[0] != 0
    if os.geteuid() != 0:
        assert out.outputs[0] == os.geteuid()  # an ordinary user's worker keeps its uid


def test_a_probe_bug_is_an_error_not_a_downgrade(monkeypatch):
    def broken(self):
        raise RuntimeError("a bug in the bwrap level")

    monkeypatch.setattr(levels.Bwrap, "requirements", broken)
    detect.reset()
    try:
        with pytest.raises(RuntimeError, match="a bug in the bwrap level"):
            detect.probe(Isolation.BWRAP)
        with pytest.raises(RuntimeError, match="a bug in the bwrap level"):
            detect.choose()  # not a silent step down to unshare
    finally:
        monkeypatch.undo()
        detect.reset()
