"""The command line as users meet it: real processes, real files, exit codes and one-line errors."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORRECT = ROOT / "submissions" / "correct_module.py"


def hwgrader(*args: str, cwd: Path = ROOT, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_reference_prints_the_lecture_answers():
    proc = hwgrader("reference")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "→ alpha = [0.5, 0.5]" in out
    assert "→ w = [1., 0.]" in out and "→ b = 0." in out
    assert "→ pi = [1., 0., 0.]" in out
    assert "→ A = [[0., 0., 1.],\n         [0., 0., 1.],\n         [0., 1., 0.]]" in out
    assert "→ B = [[1., 0.],\n         [0., 1.],\n         [1., 0.]]" in out
    assert "→ out = [[18.,  0.,  0.,  0.,  0.,  0.,  8.,  0.,  3.,  0.,  0.]," in out
    assert "[24.,  0., 22.,  0.,  0.,  4.,  0.,  0.,  1.,  0.,  1.]," in out


@pytest.mark.parametrize("args, message", [
    (("grade", "no-such-folder"), "hwgrader: error: submissions not found: no-such-folder (give a folder, a .py or .ipynb file, or a .zip)"),
    (("grade", "submissions", "--jobs", "0"), "hwgrader: error: --jobs must be at least 1, got 0"),
    (("grade", "submissions", "--rubric", "missing.yaml"),
     "hwgrader: error: rubric not found: missing.yaml (pass --rubric FILE)"),
    (("check", "nothing.py"), "hwgrader: error: submission not found: nothing.py"),
    (("check", "submissions/correct_module.py", "--question", "q9"),
     "hwgrader: error: no question 'q9' in this homework (known: q1, q2, q3, q4, q5)"),
], ids=["missing-folder", "bad-jobs", "missing-rubric", "missing-file", "unknown-question"])
def test_usage_errors_are_one_line_with_exit_2(args, message):
    proc = hwgrader(*args)
    assert proc.returncode == 2
    assert proc.stderr.strip() == message


def test_grade_writes_every_output_and_exits_0_whatever_the_scores(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(CORRECT, subs / "alice.py")
    (subs / "bob.py").write_text("def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    return x\n",
                                 encoding="utf-8")
    (subs / "carol.ipynb").write_text("{ this is not a notebook", encoding="utf-8")
    out = tmp_path / "out"
    proc = hwgrader("grade", str(subs), "--out", str(out), "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.reader((out / "grades.csv").open(encoding="utf-8")))
    assert rows[0] == ["student", "q1", "q2", "q3", "q4", "q5", "total", "pending"]
    scores = {r[0]: r[1:] for r in rows[1:]}
    assert scores["alice"] == ["14", "14", "20", "20", "20", "88", "12"]
    assert scores["bob"] == ["0", "0", "0", "0", "0", "0", "12"]
    assert scores["carol"] == ["0", "0", "0", "0", "0", "0", "12"]
    carol = json.loads((out / "carol" / "results.json").read_text(encoding="utf-8"))
    assert "not a readable Jupyter notebook" in carol["output"]
    for student in ("alice", "bob", "carol"):
        assert (out / student / "report.html").is_file()
    assert (out / "index.html").is_file()
    assert "alice" in proc.stdout and "Graded 3 submission(s)" in proc.stdout


def test_gradescope_results_format(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(CORRECT, subs / "alice.py")
    proc = hwgrader("grade", str(subs), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "out" / "alice" / "results.json").read_text(encoding="utf-8"))
    assert set(data) >= {"score", "execution_time", "output", "tests"}
    assert data["score"] == 88
    numbers = [t["number"] for t in data["tests"]]
    assert len(numbers) == len(set(numbers))
    for test in data["tests"]:
        assert set(test) >= {"name", "number", "score", "max_score", "status", "output", "tags", "visibility"}
        assert test["number"].split(".")[0] in test["tags"] and test["number"].startswith(test["tags"][0] + ".")
        assert test["status"] in ("passed", "failed")
        assert test["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
    manual = [t for t in data["tests"] if "manual" in t["tags"]]
    assert [t["number"].split(".")[0] for t in manual] == ["q1", "q2"]
    # pending, never a red failure: a person has not graded it yet
    assert all(t["score"] == 0 and t["status"] == "passed" and "pending" in t["tags"]
               and t["output"].startswith("pending: waiting for a grader") for t in manual)
    assert sum(t["max_score"] for t in data["tests"]) == 100


def test_check_exit_codes_and_hint(tmp_path):
    good = hwgrader("check", str(CORRECT), "--report", str(tmp_path / "good.html"))
    assert good.returncode == 0, good.stdout + good.stderr
    assert "public tests passed" in good.stdout
    buggy = tmp_path / "buggy.py"
    buggy.write_text(CORRECT.read_text(encoding="utf-8") + """

def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mean = x.mean(axis=0)
    var = x.var(axis=0, ddof=1)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta
""", encoding="utf-8")
    bad = hwgrader("check", str(buggy), "--question", "q1", "--report", str(tmp_path / "bad.html"))
    assert bad.returncode == 1
    flat = " ".join(bad.stdout.split())  # the table wraps to the terminal width
    assert "(this looks like: unbiased variance)" in flat
    assert "Hint: Training-mode batch norm uses the biased batch variance" in flat
    assert (tmp_path / "bad.html").is_file()


def test_scheduler_is_refused_plainly():
    proc = hwgrader("grade", "submissions", "--scheduler", "tcp://127.0.0.1:8786")
    assert proc.returncode == 2
    assert proc.stderr.startswith("hwgrader: error: --scheduler") and proc.stderr.count("\n") == 1
