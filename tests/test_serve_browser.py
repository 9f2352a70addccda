"""``hwgrader serve`` in headless Chromium, the way a grader uses it: grade a batch with the CLI,
start the server as a real process on loopback, grade Q1 of two students with the keyboard
alone, and find the final totals in grades.csv, index.html, report.html and results.json.

Screenshots go to ``HWGRADER_SCREENSHOT_DIR`` if set, else to a temporary folder (printed).
"""

from __future__ import annotations

import csv
import getpass
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from chromium import browser  # noqa: F401, I001  (the fixture: same Chromium set-up as the reports)
from test_serve import start_server, stop_server
from grader.gradebook.store import Gradebook
from grader.grading.results import fmt_points

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[1]
#: A small real batch: English and Chinese answers, two identical answers, an XSS attempt, a notebook.
BATCH = ["correct_module.py", "mistake_q1_dgamma_dbeta_swapped.py", "學生_103590450.py",
         "xss_in_answers.py", "colab_notebook.ipynb"]


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    d = os.environ.get("HWGRADER_SCREENSHOT_DIR")
    path = Path(d) if d else tmp_path_factory.mktemp("serve-shots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots of the grading page: {path}")
    return path


@pytest.fixture(scope="module")
def graded_batch(tmp_path_factory):
    """``hwgrader grade`` on the small batch, once; each test grades a copy of its output."""
    base = tmp_path_factory.mktemp("serve-batch")
    src = base / "submissions"
    src.mkdir()
    for name in BATCH:
        shutil.copy(ROOT / "submissions" / name, src / name)
    out = base / "out"
    r = subprocess.run([sys.executable, "-m", "grader", "grade", str(src), "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert (out / "gradebook.sqlite").is_file()
    return out


@pytest.fixture
def out(graded_batch, tmp_path):
    dst = tmp_path / "out"
    shutil.copytree(graded_batch, dst)
    return dst


class Server:
    def __init__(self, out: Path):
        self.proc, self.url = start_server(out)
        self.base = self.url.split("?")[0].rstrip("/")
        self.output = ""

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.output = stop_server(self.proc)
        return self.output


@pytest.fixture
def server(out):
    s = Server(out)
    yield s
    if s.proc.poll() is None:      # a failed test still stops its server
        s.proc.kill()
        s.proc.wait(timeout=30)


@pytest.fixture
def page(browser):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    p = ctx.new_page()
    p.errors = []
    p.on("console", lambda m: p.errors.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    p.on("pageerror", lambda e: p.errors.append(f"pageerror: {e}"))
    yield p
    ctx.close()


def _grades_csv(out: Path) -> dict[str, dict[str, str]]:
    with (out / "grades.csv").open(encoding="utf-8", newline="") as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def _saved(page, text: str) -> None:
    page.wait_for_function("t => document.getElementById('message').textContent.startsWith(t)", arg=text)


def _wait_score(page, score: str) -> None:
    page.wait_for_function(
        "s => document.getElementById('score').textContent === s && "
        "document.getElementById('message').textContent.startsWith('Saved: ' + s)", arg=score)


def test_grade_two_answers_with_the_keyboard_and_find_the_totals_everywhere(server, page, out, shots):
    before = _grades_csv(out)
    with Gradebook.open(out) as gb:
        by_anon = {s.anon_id: s.id for s in gb.students()}
        q1_items = [i.points for i in gb.written_question("q1").items]
    assert q1_items[:3] == [2.0, 2.0, 2.0]

    page.goto(server.url)
    page.wait_for_selector("#answer-list li.current")
    assert "token=" not in page.url                                  # traded for the cookie
    assert page.locator("#progress-text").text_content() == f"0 of {len(BATCH)} graded"
    assert page.locator("#grader").input_value() == getpass.getuser()
    # anonymous: no student name anywhere on the page
    body = page.locator("body").inner_text()
    for student in by_anon.values():
        assert student not in body

    # ---- first answer: items 1 and 3, adjustment -0.5, a comment
    first = page.evaluate("location.hash.slice(1)")
    total_before = page.locator("#student-total").text_content()
    page.keyboard.press("1")
    page.keyboard.press("3")           # at once: the second key arrives while the first is saved
    _wait_score(page, "4")
    page.keyboard.press("a")
    page.keyboard.press("Control+a")
    page.keyboard.type("-0.5")
    page.keyboard.press("Enter")
    _wait_score(page, "3.5")
    page.keyboard.press("c")
    page.keyboard.type("γ/β 的角色講得清楚; mention running averages at test time.")
    page.keyboard.press("Escape")
    page.wait_for_function("() => document.querySelector('#bank li .bank-text')")
    assert page.locator("#progress-text").text_content() == f"1 of {len(BATCH)} graded"
    assert page.locator("#student-total").text_content() != total_before
    assert page.locator(".item[aria-pressed=true]").count() == 2
    assert page.locator("#answer mark.term").count() > 0            # key terms highlighted
    page.screenshot(path=str(shots / "serve-graded-first.png"))

    # ---- next ungraded: item 2, +0.5 twice, the bank's comment with Shift+1
    page.keyboard.press("n")
    page.wait_for_function("a => location.hash.slice(1) !== a", arg=first)
    second = page.evaluate("location.hash.slice(1)")
    page.keyboard.press("2")
    _wait_score(page, "2")
    page.keyboard.press("+")
    _wait_score(page, "2.5")
    page.keyboard.press("Shift+Digit1")
    page.wait_for_function("() => document.getElementById('comment').value.includes('running averages')")
    _saved(page, "Saved: 2.5")
    assert page.locator("#progress-text").text_content() == f"2 of {len(BATCH)} graded"
    page.keyboard.press("r")
    page.wait_for_function("() => document.getElementById('report-status').textContent.startsWith('reports updated')")
    page.screenshot(path=str(shots / "serve-graded-second.png"))
    assert page.errors == []
    assert page.evaluate("typeof window.__pwned") == "undefined"

    # ---- back to the first answer with k/j: the grade is still there
    page.keyboard.press("k" if page.locator("#answer-title").text_content() != "Answer 1 of 5" else "j")
    page.wait_for_function("a => location.hash.slice(1) === a", arg=first)
    assert page.locator("#score").text_content() == "3.5"
    assert page.errors == []
    page.goto("about:blank")            # the page stops polling before its server goes away

    printed = server.stop()
    assert "Stopped" in printed

    a, b = by_anon[first], by_anon[second]
    with Gradebook.open(out) as gb:
        history = gb.history(a, "q1")
        assert all(e.grader == getpass.getuser() for e in history) and len(history) >= 4
        final = {s: gb.result(s) for s in (a, b)}
    expected = {a: 3.5, b: 2.5}
    after = _grades_csv(out)
    index = (out / "index.html").read_text(encoding="utf-8")
    for student, manual in expected.items():
        q1_auto = float(before[student]["q1"])
        assert float(after[student]["q1"]) == pytest.approx(q1_auto + manual)
        assert float(after[student]["total"]) == pytest.approx(float(before[student]["total"]) + manual)
        assert float(after[student]["pending"]) == pytest.approx(float(before[student]["pending"]) - 6)
        assert final[student].score == pytest.approx(float(after[student]["total"]))
        results = json.loads((out / student / "results.json").read_text(encoding="utf-8"))
        assert results["score"] == pytest.approx(final[student].score)
        written = [t for t in results["tests"] if "manual" in t.get("tags", []) and t["number"].startswith("q1.")]
        assert len(written) == 1 and written[0]["score"] == pytest.approx(manual)
        report = (out / student / "report.html").read_text(encoding="utf-8")
        assert "running averages at test time" in report
        total_text = fmt_points(final[student].score)         # as every writer shows points
        assert total_text in report and total_text in index

    # what the student sees: the report with the graded written part
    page.goto((out / a / "report.html").as_uri())
    written = page.locator("text=running averages at test time").first
    written.scroll_into_view_if_needed()
    page.screenshot(path=str(shots / "serve-report-written-part.png"))
    assert page.errors == []


def test_the_real_server_refuses_requests_without_token_or_from_elsewhere(server):
    for path in ("/", "/q/q1", "/api/q/q1/answers", "/static/serve.js"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(server.base + path, timeout=10)
        assert refused.value.code in (401, 403), path
    host, port = server.base.removeprefix("http://").split(":")
    # DNS rebinding: the right address under another name; a write from another origin
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    token = server.url.split("token=")[1]
    conn.request("GET", f"/?token={token}", headers={"Host": f"attacker.example:{port}"})
    assert conn.getresponse().status == 403
    conn.close()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", f"/?token={token}")
    r = conn.getresponse()
    assert r.status == 303
    cookie = r.getheader("Set-Cookie").split(";")[0]
    r.read()
    conn.request("POST", "/api/refresh", body="{}", headers={
        "Cookie": cookie, "Content-Type": "application/json", "Origin": "http://attacker.example"})
    assert conn.getresponse().status == 403
    conn.close()
    server.stop()


def test_answers_are_shown_as_text_in_chinese_and_english(server, page, shots, out):
    page.goto(server.url)
    page.wait_for_selector("#answer-list li.current")
    with Gradebook.open(out) as gb:
        xss = next(a for a in gb.answers("q1") if "<" in (a.text or ""))
        chinese = next(a for a in gb.answers("q2") if "重參數化" in (a.text or "") or "取樣" in (a.text or ""))
    page.goto(server.base + "/q/q1#" + xss.anon_id)
    page.wait_for_function("a => location.hash.slice(1) === a && document.getElementById('answer').textContent", arg=xss.anon_id)
    shown = page.locator("#answer").text_content()
    assert "<" in shown                                               # markup shown as text...
    assert page.evaluate("typeof window.__pwned") == "undefined"     # ...and never run
    page.goto(server.base + "/q/q2#" + chinese.anon_id)
    page.wait_for_selector("#answer mark.term")
    marks = page.locator("#answer mark.term").all_text_contents()
    assert any(re.search(r"[\u4e00-\u9fff]", m) for m in marks) and any(re.search("[A-Za-z]", m) for m in marks)
    page.keyboard.press("s")                                          # names on
    page.wait_for_function("() => document.getElementById('answer-name').textContent !== ''")
    page.screenshot(path=str(shots / "serve-chinese-names.png"))
    # the group of near-identical answers, graded in one step
    group_size = int(re.search(r"(\d+) near-identical", page.locator("#group-banner").text_content()).group(1))
    assert group_size >= 3
    page.keyboard.press("1")
    page.keyboard.press("2")
    _wait_score(page, "4")
    page.keyboard.press("g")
    assert page.locator("#confirm").is_visible()
    page.keyboard.press("y")
    _saved(page, f"Graded {group_size} answers of group")
    assert page.locator("#answer-list li.graded .grp").count() == group_size
    assert page.locator("#progress-text").text_content() == f"{group_size} of {len(BATCH)} graded"
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.screenshot(path=str(shots / "serve-help.png"))
    assert page.errors == []
    server.stop()
