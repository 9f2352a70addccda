"""Wrong-answer clusters and the rubric audit, end to end through the CLI.

A batch where several students share a mistake no one has registered shows it in
index.html; ``hwgrader mistakes`` prints a skeleton; once it is filled in and added
to (a copy of) the reference package, the next run names it in their reports.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from grader.grading.clusters import describe_difference

ROOT = Path(__file__).resolve().parent.parent

Q1_HEAD = "import numpy as np\n\n"
BACKWARD = '''
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    n = x.shape[0]
    xc = x - x.mean(axis=0)
    inv = 1.0 / np.sqrt((xc ** 2).mean(axis=0) + eps)
    xh = xc * inv
    g = dout * gamma
    return inv / n * (n * g - g.sum(axis=0) - xh * (g * xh).sum(axis=0)), (dout * xh).sum(axis=0), dout.sum(axis=0)
'''
# Three students forget beta, each in their own words: the same wrong output on every case.
NO_BETA = [
    "def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    mu = x.mean(axis=0)\n"
    "    return gamma * (x - mu) / np.sqrt(x.var(axis=0) + eps)\n",
    "def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    xhat = (x - np.mean(x, 0)) / np.sqrt(np.var(x, 0) + eps)\n"
    "    out = xhat * gamma\n    return out\n",
    "def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    n = len(x)\n    m = x.sum(axis=0) / n\n"
    "    v = ((x - m) ** 2).sum(axis=0) / n\n    return gamma * ((x - m) / (v + eps) ** 0.5)\n",
]
KNOWN = ("def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    mu = x.mean(axis=0)\n"
         "    return gamma * (x - mu) / np.sqrt(x.var(axis=0, ddof=1) + eps) + beta\n")
LONER = ("def batchnorm_forward(x, gamma, beta, eps=1e-5):\n"
         "    return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + 1.0) + beta\n")
RIGHT = ("def batchnorm_forward(x, gamma, beta, eps=1e-5):\n"
         "    return gamma * (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps) + beta\n")


def hwgrader(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)


def _clusters(index_html: str) -> list[tuple[str, int, list[str]]]:
    section = index_html[index_html.index('<section id="clusters">'):]
    section = section[:section.index("</section>")]
    rows = re.findall(r'<tr class="cluster" data-function="([^"]+)" data-size="(\d+)">(.*?)</tr>', section, re.S)
    return [(f, int(n), re.findall(r'<a href="[^"]+">([^<]+)</a>', body)) for f, n, body in rows]


@pytest.fixture(scope="module")
def assignment(tmp_path_factory):
    """A private copy of the reference package and rubric that the test may extend."""
    root = tmp_path_factory.mktemp("assignment")
    shutil.copytree(ROOT / "reference", root / "reference", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "rubrics").mkdir()
    shutil.copy(ROOT / "rubrics" / "homework.yaml", root / "rubrics" / "homework.yaml")
    subs = root / "subs"
    subs.mkdir()
    for i, code in enumerate(NO_BETA):
        (subs / f"nobeta_{i + 1}.py").write_text(Q1_HEAD + code + BACKWARD, encoding="utf-8")
    for name in ("known_1", "known_2"):
        (subs / f"{name}.py").write_text(Q1_HEAD + KNOWN + BACKWARD, encoding="utf-8")
    (subs / "loner.py").write_text(Q1_HEAD + LONER + BACKWARD, encoding="utf-8")
    (subs / "right.py").write_text(Q1_HEAD + RIGHT + BACKWARD, encoding="utf-8")
    return root


def test_shared_unknown_mistake_becomes_a_named_mistake(assignment):
    rubric = assignment / "rubrics" / "homework.yaml"
    out = assignment / "out"
    proc = hwgrader("grade", str(assignment / "subs"), "--out", str(out), "--rubric", str(rubric), "--jobs", "2")
    assert proc.returncode == 0, proc.stderr

    # 1. index.html lists the unknown cluster, and only it, with every student and case
    index = (out / "index.html").read_text(encoding="utf-8")
    clusters = _clusters(index)
    assert clusters == [("batchnorm_forward", 3, ["nobeta_1", "nobeta_2", "nobeta_3"])]
    row = index[index.index('data-function="batchnorm_forward"'):]
    row = row[:row.index("</tr>")]
    assert "q1.1 (small, public)" in row and "q1.5 (wide, hidden)" in row
    # how the shared output differs from the expected: beta (one value per column) is missing
    assert "&#39;out&#39; = expected + a constant per column: [" in row

    # 2. the skeleton: the reference's signature, an id and a title to fill in
    proc = hwgrader("mistakes", str(out), "--rubric", str(rubric))
    assert proc.returncode == 0, proc.stderr
    skeleton = proc.stdout
    assert '@mistake("q1.new_batchnorm_forward_1", of="batchnorm_forward",' in skeleton
    assert "def _new_batchnorm_forward_1(x, gamma, beta, eps=1e-5):" in skeleton
    assert "Shared by 3 students (nobeta_1, nobeta_2, nobeta_3)" in skeleton
    block = skeleton[skeleton.index("# Shared by"):]

    # Left as printed it is the reference itself: the audit says no case catches it.
    module = assignment / "reference" / "q1_batchnorm.py"
    original = module.read_text(encoding="utf-8")
    module.write_text(original + "\n\n" + block, encoding="utf-8")
    audit = hwgrader("audit", "--rubric", str(rubric))
    assert audit.returncode == 1, audit.stdout + audit.stderr
    assert "NOT CAUGHT: `q1.new_batchnorm_forward_1`" in audit.stdout

    # 3. the instructor writes the mistake and its words
    filled = block.replace("TODO: what these students did, in a few words", "forgot to add beta")
    filled = filled.replace("TODO: what to change, written for the student", "The output is gamma * x_hat + beta.")
    filled = filled.replace(" + np.asarray(beta, dtype=float)", "")
    assert filled.count("forgot to add beta") == 1 and "+ np.asarray(beta" not in filled
    module.write_text(original + "\n\n" + filled, encoding="utf-8")
    assert hwgrader("audit", "--rubric", str(rubric)).returncode == 0

    # 4. the next run names it in their reports, and the cluster is gone
    proc = hwgrader("grade", str(assignment / "subs"), "--out", str(out), "--rubric", str(rubric), "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    for i in (1, 2, 3):
        data = json.loads((out / f"nobeta_{i}" / "results.json").read_text(encoding="utf-8"))
        forward = [t for t in data["tests"] if "batchnorm_forward" in t["name"]]
        assert len(forward) == 5 and all("forgot to add beta" in t["output"] and "q1.new_batchnorm_forward_1" in t["tags"]
                                         for t in forward), forward
        assert "forgot to add beta" in (out / f"nobeta_{i}" / "report.html").read_text(encoding="utf-8")
    known = json.loads((out / "known_1" / "results.json").read_text(encoding="utf-8"))
    assert "forgot to add beta" not in json.dumps(known)
    assert _clusters((out / "index.html").read_text(encoding="utf-8")) == []
    assert "q1.new_batchnorm_forward_1" in (out / "index.html").read_text(encoding="utf-8")


def test_mistakes_without_a_graded_folder_is_a_one_line_error(tmp_path):
    proc = hwgrader("mistakes", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"hwgrader: error: {tmp_path / 'clusters.json'}: not found; "
                                   f"run `hwgrader grade ... --out {tmp_path}` first")


def test_audit_of_the_homework_rubric_passes_and_is_the_readme_table():
    proc = hwgrader("audit")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = [line for line in proc.stdout.splitlines() if line.startswith("| `")]
    assert len(table) == 32  # every registered mistake has a row
    assert all("yes (" in line for line in table)  # each is caught by a public case
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert proc.stdout.strip() in readme, "README's audit table is out of date: paste `hwgrader audit`"


@pytest.mark.parametrize("got, expected, words", [
    (np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([[1.0, 3.0], [2.0, 4.0]]).T.T, "is wrong at 2 of 4 entries"),
    (np.array([[1.0, 3.0], [2.0, 4.0]]).T.copy(), np.array([[1.0, 3.0], [2.0, 4.0]]), "is wrong at 2 of 4"),
    (np.arange(6.0).reshape(2, 3).T, np.arange(6.0).reshape(2, 3), "is the transpose of the expected output"),
    (np.arange(6.0).reshape(3, 2), np.arange(4.0).reshape(2, 2), "has shape (3, 2) instead of (2, 2)"),
    (np.array([2.0, 4.0, -6.0]), np.array([1.0, 2.0, -3.0]), "= expected × 2 everywhere"),
    (np.array([1.5, 2.5, -2.5]), np.array([1.0, 2.0, -3.0]), "= expected + 0.5 everywhere"),
    (np.array([-1.0, -2.0, 3.0]), np.array([1.0, 2.0, -3.0]), "with its sign flipped"),
    (np.array([1.0, np.nan]), np.array([1.0, 2.0]), "has NaN or inf at 1 of 2 entries"),
    (np.array([[1.0, 2.0], [3.0, 5.0]]), np.array([[1.0, 3.0], [3.0, 6.0]]), "a constant per column: [0, -1]"),
])
def test_differences_are_described_in_words(got, expected, words):
    assert words in describe_difference("out", got, expected)
