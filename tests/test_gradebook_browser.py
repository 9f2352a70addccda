"""A report and the class page with graded written parts, from a real batch, in headless Chromium.

The batch is graded by the CLI, two written answers are graded through the gradebook (rubric
items, an adjustment, a comment in Chinese with markup in it), the outputs are refreshed, and the
pages are checked as a reader sees them; screenshots are saved (``HWGRADER_SCREENSHOT_DIR``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_browser import _assert_clean, _check_screenshot, browser, open_page, shots  # noqa: F401  (fixtures)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
COMMENT = "說明清楚 <b>but</b> mention the running averages 重參數化"


@pytest.fixture(scope="module")
def graded_site(tmp_path_factory):
    from grader.gradebook.incremental import refresh
    from grader.gradebook.store import Gradebook

    base = tmp_path_factory.mktemp("graded-site")
    subs = base / "subs"
    subs.mkdir()
    shutil.copy(ROOT / "submissions" / "correct_module.py", subs / "alice.py")
    shutil.copy(ROOT / "submissions" / "學生_103590450.py", subs / "學生_103590450.py")
    out = base / "out"
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    with Gradebook.open(out) as gb:
        items = gb.written_question("q1").items
        gb.record_grade("alice", "q1", grader="ta-lin", items=[items[0].id, items[1].id], adjustment=-0.5,
                        comment=COMMENT)
        gb.record_grade("學生_103590450", "q1", grader="ta-lin", items=[i.id for i in items])
        refresh(out, gradebook=gb)
    return out


def test_report_shows_a_graded_written_part(browser, open_page, graded_site, shots):  # noqa: F811
    p = open_page(graded_site / "alice" / "report.html")
    page = p.page
    _assert_clean(p)
    written = page.locator("#written-q1")
    assert written.locator(".written-score").inner_text().strip() == "3.5 / 6"
    applied = written.locator("tr.applied-item")
    assert applied.count() == 2
    assert applied.nth(0).locator("td").nth(0).inner_text().strip() == "+2"
    assert applied.nth(0).locator("td").nth(1).inner_text().startswith("γ and β are free parameters")
    assert written.locator("tr.adjustment td").nth(0).inner_text().strip() == "−0.5"
    comment = written.locator(".comment-text")
    assert comment.is_visible() and comment.inner_text() == COMMENT   # the markup is text
    assert written.locator("b").count() == 0
    # Q2 is still pending, and says so rather than failing
    assert page.locator("#written-q2 .status-pending").inner_text().strip() == \
        "pending: waiting for a grader (0 / 6 until graded)"
    assert page.locator("#total-score").inner_text().strip().startswith("91.5")
    written.scroll_into_view_if_needed()
    _check_screenshot(browser, p, shots / "report-graded-written.png")
    page.locator("#written-q1").screenshot(path=str(shots / "report-graded-written-q1.png"))


def test_index_shows_written_grading_progress(browser, open_page, graded_site, shots):  # noqa: F811
    p = open_page(graded_site / "index.html")
    page = p.page
    _assert_clean(p)
    q1 = page.locator('#written-progress tr[data-question="q1"]')
    q2 = page.locator('#written-progress tr[data-question="q2"]')
    assert q1.locator(".progress-text").inner_text() == "2 of 2 graded"
    assert q2.locator(".progress-text").inner_text() == "0 of 2 graded"
    assert q1.locator(".written-mean").inner_text() == "4.75 / 6"
    counts = [int(c) for c in q1.locator(".dist-count").all_inner_texts()]
    assert sum(counts) == 2 and counts[-1] == 1   # one full-marks answer in the top band
    row = page.locator('#scores tbody tr[data-student="alice"]')
    assert row.locator("td.total-cell").inner_text().strip() == "91.5"
    _check_screenshot(browser, p, shots / "index-written-progress.png")
