"""Similarity as instructors meet it: renamed, reordered, re-commented copies rank first;
independent solutions of the same small functions do not; the files are safe to open."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STYLES = ROOT / "tests" / "similarity"
sys.path.insert(0, str(STYLES))

from disguise import disguise  # noqa: E402

from grader.assignment.submission import read_submission  # noqa: E402
from grader.similarity.fingerprint import OTHER, fingerprint_sources  # noqa: E402
from grader.similarity.index import Base, rank_pairs  # noqa: E402
from grader.similarity.report import CSV_COLUMNS, safe_cell, similarity_csv, visible  # noqa: E402
from grader.similarity.writer import load_base  # noqa: E402

HANDOUT = ["batchnorm_forward", "batchnorm_backward", "reparameterize", "reparameterize_backward",
           "kl_to_standard_normal", "svm_dual_alphas", "optimal_margin_svm", "urn_emissions", "forward",
           "backward", "baum_welch", "zero_insert", "conv2d_valid", "subpixel_conv"]
INDEPENDENT = {"correct_module": ROOT / "submissions" / "correct_module.py",
               "style_loops": STYLES / "style_loops.py", "style_vector": STYLES / "style_vector.py",
               "style_steps": STYLES / "style_steps.py"}


def _print(student: str, source: str, filename: str = "x.py"):
    return fingerprint_sources(student, [{"cell": 0, "filename": filename, "source": source}], HANDOUT)


def _base() -> Base:
    return load_base([ROOT / "reference"])


def test_fingerprints_survive_renaming_reordering_and_new_comments():
    source = (STYLES / "style_loops.py").read_text(encoding="utf-8")
    copy = disguise(source)
    assert copy != source and "grad_gamma" not in copy  # really disguised
    a, b = _print("a", source), _print("b", copy)
    assert set(a.units) == set(b.units) == set(HANDOUT) | {OTHER}
    for name in a.units:
        assert set(a.units[name].spans) == set(b.units[name].spans), name
    assert not a.units["batchnorm_backward"].identifiers & b.units["batchnorm_backward"].identifiers


def test_disguised_copy_ranks_first_and_independent_solutions_stay_low():
    prints = [_print(s, p.read_text(encoding="utf-8")) for s, p in INDEPENDENT.items()]
    prints.append(_print("zed_copy", disguise((STYLES / "style_vector.py").read_text(encoding="utf-8"))))
    ranking = rank_pairs(prints, _base())
    top = ranking.pairs[0]
    assert (top.a, top.b) == ("style_vector", "zed_copy")
    assert top.score > 0.9 and len(top.similar_functions) >= 12
    independent = [p for p in ranking.pairs if "zed_copy" not in (p.a, p.b)]
    assert independent, "independent solutions share some code: there must be pairs to compare"
    assert max(p.score for p in independent) < 0.15
    assert all(not p.similar_functions for p in independent)


def test_a_function_everyone_writes_alike_weighs_nothing():
    shared = "import numpy as np\n\ndef reparameterize(mean, log_stddev, noise):\n    return mean + np.exp(log_stddev) * noise\n"
    prints = []
    for student, path in INDEPENDENT.items():
        prints.append(_print(student, path.read_text(encoding="utf-8") + "\n\n" + shared))
    for student in ("plain1", "plain2", "plain3", "plain4"):
        prints.append(_print(student, shared))
    ranking = rank_pairs(prints, Base())
    for pair in ranking.pairs:
        assert "reparameterize" not in {f.name for f in pair.functions}
    # the plain ones share nothing but that function: they are not even candidates
    assert not [p for p in ranking.pairs if p.a.startswith("plain") and p.b.startswith("plain")]


def test_reference_code_is_not_evidence():
    q1 = (ROOT / "reference" / "q1_batchnorm.py").read_text(encoding="utf-8")
    body = q1[q1.index("def _normalize"):q1.index("# ------")]
    pasted = "import numpy as np\n\n" + body
    ranking = rank_pairs([_print("a", pasted), _print("b", pasted)], _base())
    assert ranking.pairs == [] or all(f.union == 0 for p in ranking.pairs for f in p.functions)
    without_base = rank_pairs([_print("a", pasted), _print("b", pasted)], Base())
    assert without_base.pairs[0].code_score == pytest.approx(1.0)


def test_rare_identifiers_and_comments_are_extra_evidence():
    def student(name: str, ident: str, comment: str) -> str:
        return (f"import numpy as np\n\ndef batchnorm_forward(x, gamma, beta, eps=1e-5):\n"
                f"    # {comment}\n    {ident} = x.mean(axis=0)\n    var = x.var(axis=0)\n"
                f"    return gamma * (x - {ident}) / np.sqrt(var + eps) + beta\n")
    prints = [_print("a", student("a", "the_centre_thing", "my grandmother's trick for centring")),
              _print("b", student("b", "the_centre_thing", "My  grandmother's trick for centring")),
              _print("c", student("c", "mu", "subtract the mean first")),
              _print("d", student("d", "m", "centre the batch"))]
    ranking = rank_pairs(prints, Base())
    top = ranking.pairs[0]
    assert (top.a, top.b) == ("a", "b")
    assert top.identifiers == ["the_centre_thing"]
    assert top.comments == ["my grandmother's trick for centring"]
    assert top.evidence_score > 0 and top.score > top.code_score


def test_identical_wrong_hidden_outputs_are_evidence():
    a, b, c = _print("a", "x = 1\n"), _print("b", "y = 2\n"), _print("c", "z = 3\n")
    a.wrong_outputs = {"q1.3": 1234, "q4.12": 99}
    b.wrong_outputs = {"q1.3": 1234, "q4.12": 99}
    c.wrong_outputs = {"q1.3": 777}
    ranking = rank_pairs([a, b, c], Base())
    assert [(p.a, p.b) for p in ranking.pairs] == [("a", "b")]
    assert ranking.pairs[0].wrong_outputs == ["q1.3", "q4.12"]


def test_notebook_cells_are_compared_with_modules():
    nb = read_submission(ROOT / "submissions" / "colab_notebook.ipynb")
    notebook = fingerprint_sources("nb", nb.units, HANDOUT)
    module = _print("py", (ROOT / "submissions" / "correct_module.py").read_text(encoding="utf-8"))
    assert notebook.units["baum_welch"].where == "colab_notebook.ipynb [cell 16]"
    for name in HANDOUT:
        assert set(notebook.units[name].spans) == set(module.units[name].spans), name


def test_unparsable_cells_are_skipped_and_listed():
    units = [{"cell": 1, "filename": "n.ipynb [cell 1]", "source": "def batchnorm_forward(x, gamma, beta, eps=1e-5:\n"},
             {"cell": 2, "filename": "n.ipynb [cell 2]", "source": "def reparameterize(mean, log_stddev, noise):\n    return mean\n"}]
    printed = fingerprint_sources("n", units, HANDOUT)
    assert set(printed.units) == {"reparameterize"}
    assert printed.unparsable and printed.unparsable[0].startswith("n.ipynb [cell 1]: ")


def test_csv_cells_are_never_formulas_and_controls_are_visible():
    assert safe_cell("=HYPERLINK(\"x\")") == "'=HYPERLINK(\"x\")"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)" and safe_cell("+cmd") == "'+cmd" and safe_cell("-1") == "'-1"
    assert safe_cell("alice") == "alice"
    assert visible("bob\u202eexe.py\x1b[2J") == "bob\\u202eexe.py\\x1b[2J"
    prints = [_print("=evil", "def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    q_unusual_name = x * 2 + 17\n    return q_unusual_name\n"),
              _print("@other", "def batchnorm_forward(x, gamma, beta, eps=1e-5):\n    q_unusual_name = x * 2 + 17\n    return q_unusual_name\n")]
    rows = list(csv.reader(similarity_csv(rank_pairs(prints, Base())).splitlines()))
    assert rows[0] == CSV_COLUMNS
    assert rows[1][:2] == ["'=evil", "'@other"] or rows[1][:2] == ["'@other", "'=evil"]


def _hwgrader(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _as_notebook(source: str, path: Path) -> None:
    """The same code as a notebook, one cell per top-level block, with a magic and markdown."""
    blocks = source.split("\n\n\n")
    cells = [{"cell_type": "markdown", "metadata": {}, "source": "# My homework"},
             {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
              "source": "%matplotlib inline"}]
    cells += [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": b}
              for b in blocks]
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": cells}),
                    encoding="utf-8")


@pytest.fixture(scope="module")
def graded_batch(tmp_path_factory):
    """A batch graded by the CLI: four independent solutions and a disguised notebook copy."""
    root = tmp_path_factory.mktemp("similarity")
    subs = root / "subs"
    subs.mkdir()
    for student, path in INDEPENDENT.items():
        shutil.copy(path, subs / f"{student}.py")
    _as_notebook(disguise((STYLES / "style_loops.py").read_text(encoding="utf-8")), subs / "yolanda.ipynb")
    out = root / "out"
    proc = _hwgrader("grade", str(subs), "--out", str(out), "--jobs", "2")
    assert proc.returncode == 0, proc.stderr
    return out


def test_grade_writes_similarity_files_most_similar_first(graded_batch):
    rows = list(csv.DictReader((graded_batch / "similarity.csv").open(encoding="utf-8")))
    assert list(rows[0]) == CSV_COLUMNS
    assert {rows[0]["student_a"], rows[0]["student_b"]} == {"style_loops", "yolanda"}
    assert float(rows[0]["score"]) > 0.9
    scores = [float(r["score"]) for r in rows]
    assert scores == sorted(scores, reverse=True)
    assert all(float(r["score"]) < 0.15 for r in rows[1:])
    html = (graded_batch / "similarity.html").read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "<script" not in html
    assert "similar" in html
    for verdict in ("copied", "plagiar", "cheat"):
        assert verdict not in html.lower()


def test_a_rerun_that_reuses_every_result_gives_the_same_similarity(graded_batch, tmp_path):
    before = (graded_batch / "similarity.csv").read_text(encoding="utf-8")
    subs = graded_batch.parent / "subs"
    proc = _hwgrader("grade", str(subs), "--out", str(graded_batch))
    assert proc.returncode == 0, proc.stderr
    assert "reused 5 unchanged" in proc.stdout
    assert (graded_batch / "similarity.csv").read_text(encoding="utf-8") == before


@pytest.mark.browser
def test_similarity_page_in_a_browser(graded_batch, tmp_path):
    from chromium import launch
    from test_browser import Page, _assert_clean, _check_screenshot

    shots = Path(os.environ.get("HWGRADER_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    with launch() as browser:
        p = Page(browser, graded_batch / "similarity.html")
        _assert_clean(p)  # no console error (a CSP violation is one), nothing fetched
        page = p.page
        first = page.locator("#pair-table tbody tr").first
        assert {first.get_attribute("data-a"), first.get_attribute("data-b")} == {"style_loops", "yolanda"}
        assert page.locator("#pair-table tbody tr").count() >= 4
        first.locator("a").first.click()
        assert page.url.endswith("#pair-1")
        detail = page.locator("#pair-1")
        assert detail.locator("h3").count() >= 5     # functions side by side
        assert detail.locator("li.rare").count() > 50  # the shared rare lines, marked
        assert "yolanda.ipynb [cell" in detail.inner_text()
        text = page.locator("main").inner_text().lower()
        assert "similar" in text and "copied" not in text
        _check_screenshot(browser, p, shots / "similarity.png")
        p.close()
        index = Page(browser, graded_batch / "index.html")
        _assert_clean(index)
        assert index.page.locator("#clusters").count() == 1
        index.close()
