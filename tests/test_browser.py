"""The reports opened in real headless Chromium (file://): visible content, no script errors,
no XSS, working sort, non-blank screenshots.

Chromium's set-up (and when it is skipped) is ``chromium.py``'s.
Screenshots go to ``HWGRADER_SCREENSHOT_DIR`` if set, else to a temporary folder.
"""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest

import fixtures_results as fx  # noqa: I001  (puts the repo root on sys.path)
from chromium import browser  # noqa: F401  (the fixture)
from grader.outputs import report

pytestmark = pytest.mark.browser

@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    batch = fx.class_batch()
    for r in batch:
        report.write_student_report(r, out / r.student / "report.html", title="DL Homework")
    report.write_index(batch, out, title="DL Homework")
    return out


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = os.environ.get("HWGRADER_SCREENSHOT_DIR")
    if d:
        Path(d).mkdir(parents=True, exist_ok=True)
        return Path(d)
    return tmp_path_factory.mktemp("shots")


class Page:
    """A page with its console errors and page errors collected."""

    def __init__(self, browser, path: Path):
        self.ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.ctx.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.requests: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri())
        self.page.wait_for_load_state("load")

    def close(self):
        self.ctx.close()


@pytest.fixture
def open_page(browser):
    opened: list[Page] = []

    def _open(path: Path) -> Page:
        p = Page(browser, path)
        opened.append(p)
        return p

    yield _open
    for p in opened:
        p.close()


def _assert_clean(p: Page):
    assert p.errors == []
    assert p.page.evaluate("typeof window.__pwned") == "undefined"
    # nothing but the page itself (and data: URIs) was ever requested
    assert all(u.startswith(("file://", "data:")) for u in p.requests), p.requests


def _screenshot_stats(browser, png: bytes) -> dict:
    """Decode the PNG in a blank page's canvas (no Pillow needed) and count pixels."""
    page = browser.new_page()
    try:
        return page.evaluate(
            """async (b64) => {
                const img = new Image();
                img.src = "data:image/png;base64," + b64;
                await img.decode();
                const c = document.createElement("canvas");
                c.width = img.width; c.height = img.height;
                const g = c.getContext("2d");
                g.drawImage(img, 0, 0);
                const d = g.getImageData(0, 0, c.width, c.height).data;
                let ink = 0, vermillion = 0; const colours = new Set();
                for (let i = 0; i < d.length; i += 16) {   // every 4th pixel
                    const r = d[i], gg = d[i + 1], b = d[i + 2];
                    if (r < 235 || gg < 235 || b < 235) ink++;
                    if (Math.abs(r - 213) < 20 && Math.abs(gg - 94) < 25 && b < 40) vermillion++;
                    if (colours.size < 500) colours.add((r >> 4) + "," + (gg >> 4) + "," + (b >> 4));
                }
                return {w: c.width, h: c.height, ink: ink, sampled: d.length / 16,
                        vermillion: vermillion, colours: colours.size};
            }""",
            base64.b64encode(png).decode("ascii"),
        )
    finally:
        page.close()


def _check_screenshot(browser, p: Page, path: Path) -> dict:
    png = p.page.screenshot(path=str(path), full_page=True)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    stats = _screenshot_stats(browser, png)
    assert stats["w"] == 1280 and stats["h"] > 900
    assert stats["ink"] > 0.02 * stats["sampled"], stats   # not blank
    assert stats["colours"] > 20, stats
    return stats


# --------------------------------------------------------------------------


def test_index_page(browser, open_page, site, shots):
    p = open_page(site / "index.html")
    page = p.page
    _assert_clean(p)
    rows = page.locator("#scores tbody tr")
    assert rows.count() == 6
    row = page.locator('#scores tbody tr[data-student="103590451"]')
    assert row.locator("td.total-cell").inner_text().strip() == "70"
    assert [c.strip() for c in row.locator("td.qcell").all_inner_texts()] == ["12", "14", "20", "14", "10"]
    assert page.locator("#overview-line").is_visible()
    assert "mean total 63 / 100" in page.locator("#overview-line").inner_text()
    # the XSS name is shown as text; no element was injected
    link = page.get_by_role("link", name=fx.XSS_NAME, exact=True)
    assert link.count() >= 1 and link.first.is_visible()
    assert page.evaluate("document.images.length") == 0
    assert page.evaluate("document.scripts.length") == 1
    # problems listed apart, charts drawn
    assert page.locator("#run-problems").is_visible()
    assert page.locator('#run-problems [data-student="103590452"]').is_visible()
    assert page.locator('#run-problems [data-student="103590453"]').inner_text().count("load error") >= 1
    assert page.locator("#histogram rect.hist-bar").count() == 10
    assert page.locator("#question-means rect.mean-bar").count() == 5
    assert page.locator('#question-stats tr[data-question="total"] td.mean').inner_text().strip() == "63"
    assert page.locator('#failed-tests tr[data-number="q5.3"]').is_visible()
    assert page.locator('table.mistakes tr[data-mistake="q5.no_relu"] td.students').inner_text() == "1"
    _check_screenshot(browser, p, shots / "index.png")


def test_index_sorts_by_column(open_page, site):
    p = open_page(site / "index.html")
    page = p.page

    def order():
        return page.locator("#scores tbody tr").evaluate_all("rs => rs.map(r => r.dataset.student)")

    before = order()
    assert before == sorted(before)
    total = page.locator("#scores thead th", has_text="Total").locator("button")
    total.click()
    desc = order()
    assert desc != before
    assert desc[:3] == ["103590450", fx.CHINESE_NAME, fx.XSS_NAME] and desc[-1] == "103590453"
    assert page.locator("#scores thead th", has_text="Total").get_attribute("aria-sort") == "descending"
    total.click()
    asc = order()
    assert asc[0] == "103590453" and asc[-1] == "103590450"
    page.locator("#scores thead th", has_text="Q5").locator("button").click()
    q5 = page.locator("#scores tbody tr td.qcell:nth-child(6)").all_inner_texts()
    assert [float(x) for x in q5] == sorted((float(x) for x in q5), reverse=True)
    _assert_clean(p)


def test_index_links_reach_non_ascii_and_hostile_names(open_page, site):
    p = open_page(site / "index.html")
    page = p.page
    for name in (fx.CHINESE_NAME, fx.XSS_NAME):
        page.goto((site / "index.html").as_uri())
        page.get_by_role("link", name=name, exact=True).first.click()
        page.wait_for_load_state("load")
        assert page.locator("#student-name").inner_text() == name
        assert page.url.endswith("/report.html")
    _assert_clean(p)


def test_student_report_wrong_grid(browser, open_page, site, shots):
    p = open_page(site / "103590451" / "report.html")
    page = p.page
    _assert_clean(p)
    assert page.locator("#total-score .score-value").inner_text() == "70"
    assert page.locator('#question-scores tr[data-question="q5"] td.qs').inner_text().strip() == "10 / 20"
    case = page.locator("#case-q5-3")
    assert case.is_visible()
    wrong = case.locator("table.grid.got td.wrong")
    assert wrong.count() == 4
    assert case.locator("table.grid.expected td.wrong").count() == 4
    for i in range(4):
        assert wrong.nth(i).is_visible()
    assert sorted(t.replace("✗", "").replace("(wrong)", "").strip() for t in wrong.all_inner_texts()) \
        == ["-1.5", "-3", "-4.5", "-6"]
    # colour AND marker: the wrong cell's background differs from a normal cell and it has a ✗
    bg = case.locator("table.grid.got td.wrong").first.evaluate("e => getComputedStyle(e).backgroundColor")
    normal = case.locator("table.grid.got td:not(.wrong)").first.evaluate(
        "e => getComputedStyle(e).backgroundColor")
    assert bg != normal
    assert case.locator("table.grid.got td.wrong .mark").first.is_visible()
    assert case.locator("table.grid.got td").count() == 121
    assert case.locator(".wrong-count").inner_text() == "4 of 121"
    assert case.locator(".worst-index").inner_text() == "[10, 9]"
    hint = case.locator(".diagnosis .hint")
    assert hint.is_visible() and hint.inner_text() == fx.NO_RELU.hint
    assert case.locator(".diagnosis .dtitle").inner_text() == fx.NO_RELU.title
    # hidden case: status only
    hidden = page.locator("#case-q4-4")
    assert hidden.is_visible() and "wrong values" in hidden.inner_text()
    assert hidden.locator("table").count() == 0
    assert page.locator("#written-q2 .status-pending").inner_text().strip() == \
        "pending: waiting for a grader (0 / 6 until graded)"
    stats = _check_screenshot(browser, p, shots / "report.png")
    assert stats["vermillion"] > 50, stats   # the failed/wrong highlighting actually shows


def test_student_report_hostile_content_shown_as_text(browser, open_page, site, shots):
    p = open_page(site / fx.XSS_NAME / "report.html")
    page = p.page
    _assert_clean(p)
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("document.images.length") == 0
    answer = page.locator("#written-q1 pre.answer")
    assert answer.is_visible()
    text = answer.inner_text()
    assert fx.XSS_SCRIPT in text and fx.XSS_IMG in text and fx.CHINESE in text
    assert page.locator("#written-q2 pre.answer").inner_text() == fx.XSS_IMG
    assert fx.XSS_SCRIPT in page.locator("#output pre.captured").inner_text()
    assert fx.XSS_IMG in page.locator("#cell-failures").inner_text()
    assert fx.XSS_IMG in page.locator("#incidents").inner_text()
    assert fx.XSS_SCRIPT in page.locator("#case-q2-1 pre.traceback").inner_text()
    assert page.locator("#student-name").inner_text() == fx.XSS_NAME
    _check_screenshot(browser, p, shots / "report-xss.png")


def test_student_report_run_problems_and_load_error(open_page, site):
    p = open_page(site / "103590452" / "report.html")
    page = p.page
    _assert_clean(p)
    inc = page.locator("#incidents")
    assert inc.is_visible()
    for words in ("ran out of time", "ran out of memory", "the worker process crashed"):
        assert words in inc.inner_text()
    assert "ValueError: matmul" in page.locator("#case-q1-3 pre.traceback").inner_text()
    assert page.locator("#output-truncated").is_visible()
    assert "weaker isolation" in page.locator("#isolation").inner_text()

    p2 = open_page(site / "103590453" / "report.html")
    assert p2.page.locator("#load-error").is_visible()
    assert "SyntaxError" in p2.page.locator("#load-error pre").inner_text()
    _assert_clean(p2)


def test_chinese_student_report(open_page, site):
    p = open_page(site / fx.CHINESE_NAME / "report.html")
    page = p.page
    _assert_clean(p)
    assert page.locator("#student-name").inner_text() == fx.CHINESE_NAME
    assert "反向傳播" in page.locator("#written-q1 pre.answer").inner_text()
    assert page.locator("#written-q2 .no-answer").is_visible()
    assert page.locator("#cell-failures").is_visible()
    hidden = page.locator("#case-q1-2")
    assert "failed" in hidden.inner_text() and "wrong values" in hidden.inner_text()
    assert hidden.locator("table").count() == 0


# -------------------------------------------------------------------------- a real graded batch

REAL = ["correct_module.py", "colab_notebook.ipynb", "xss_in_answers.py", "syntax_error.py",
        "mistake_q5_subpixel_missing_relu.py", "學生_103590450.py"]


@pytest.fixture(scope="module")
def real_site(tmp_path_factory):
    """Grade real example submissions with the CLI, as an instructor would."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    subs = tmp_path_factory.mktemp("subs")
    for name in REAL:
        shutil.copy(root / "submissions" / name, subs / name)
    out = tmp_path_factory.mktemp("real")
    proc = subprocess.run([sys.executable, "-m", "grader", "grade", str(subs), "--out", str(out),
                           "--jobs", "2"], cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out


def test_real_batch_pages_are_clean(open_page, real_site):
    for page_path in [real_site / "index.html", *sorted(real_site.glob("*/report.html"))]:
        p = open_page(page_path)
        _assert_clean(p)
        assert p.page.locator("#student-name, #scores").first.is_visible(), page_path


def test_real_xss_submission_shows_its_text_as_text(browser, open_page, real_site, shots):
    p = open_page(real_site / "xss_in_answers" / "report.html")
    page = p.page
    _assert_clean(p)
    assert page.evaluate("document.scripts.length") == 0
    assert page.evaluate("document.images.length") == 0
    assert page.evaluate("document.querySelectorAll('svg[onload], a[href^=javascript]').length") == 0
    assert "<script>window.__pwned = 1</script>" in page.locator("#written-q1 pre.answer").inner_text()
    assert "可學習的參數" in page.locator("#written-q1 pre.answer").inner_text()
    assert '<svg onload="window.__pwned = 1">' in page.locator("#written-q2 pre.answer").inner_text()
    assert "<script>window.__pwned = 1</script>" in page.locator("#output pre.captured").inner_text()
    _check_screenshot(browser, p, shots / "real-xss.png")


def test_real_wrong_subpixel_grid_and_diagnosis(open_page, real_site):
    p = open_page(real_site / "mistake_q5_subpixel_missing_relu" / "report.html")
    page = p.page
    _assert_clean(p)
    lecture = page.locator("#case-q5-9")  # subpixel_conv on the lecture's 5x5 image
    assert lecture.is_visible()
    assert lecture.locator("table.grid.got td").count() == 121
    wrong = lecture.locator("table.grid.got td.wrong").count()
    assert wrong > 0 and lecture.locator(".wrong-count").inner_text() == f"{wrong} of 121"
    assert lecture.locator(".diagnosis .dtitle").inner_text() == "missing ReLU"
    assert "np.maximum(out, 0)" in lecture.locator(".diagnosis .hint").inner_text()


def test_real_index_lists_everyone_and_the_broken_apart(open_page, real_site):
    p = open_page(real_site / "index.html")
    page = p.page
    _assert_clean(p)
    assert page.locator("#scores tbody tr").count() == len(REAL)
    assert page.locator('#run-problems [data-student="syntax_error"]').is_visible()
    assert page.locator('#scores tbody tr[data-student="correct_module"] td.total-cell').inner_text().strip() == "88"
