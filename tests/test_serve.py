"""``hwgrader serve``: the grading web UI's routes, its guard and its data (Starlette TestClient),
plus the real command as a subprocess. The browser walk-through is tests/test_serve_browser.py."""

from __future__ import annotations

import csv
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path

import pytest

import serve_fixtures as sf  # noqa: I001  (puts the repo root on sys.path)
from grader.gradebook.answer_groups import group_answers, normalise
from grader.gradebook.key_terms import KeyTerms
from grader.gradebook.server import Access, allowed_hosts, answer_segments, create_app
from grader.gradebook.store import Gradebook

warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient` is deprecated")
from starlette.testclient import TestClient  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PORT = 8765
ORIGIN = f"http://127.0.0.1:{PORT}"


@pytest.fixture(scope="module")
def class_dir(tmp_path_factory):
    return sf.make_gradebook(tmp_path_factory.mktemp("serve") / "out", sf.class_results())


@pytest.fixture
def out(tmp_path, class_dir):
    """A fresh copy of the class gradebook for one test."""
    import shutil

    dst = tmp_path / "out"
    shutil.copytree(class_dir, dst)
    return dst


def _client(out: Path, *, login: bool = True, refresh_delay: float = 60.0):
    access = Access("the-token", PORT, allowed_hosts("127.0.0.1", PORT))
    client = TestClient(create_app(out, access, default_grader="ta-default", refresh_delay=refresh_delay),
                        base_url=ORIGIN)
    client.access = access
    client.__enter__()
    if login:
        assert client.get("/?token=the-token", follow_redirects=False).status_code == 303
    return client


@pytest.fixture
def client(out):
    c = _client(out)
    yield c
    c.__exit__(None, None, None)


def _write_headers(client) -> dict:
    return {"Origin": ORIGIN, "X-Hwgrader-Csrf": client.access.csrf}


def _students(out: Path) -> dict[str, str]:
    """``{anon_id: student}``."""
    with Gradebook.open(out) as gb:
        return {s.anon_id: s.id for s in gb.students()}


def _anon(out: Path, student: str) -> str:
    return {v: k for k, v in _students(out).items()}[student]


def _items(out: Path, qid: str) -> list[int]:
    with Gradebook.open(out) as gb:
        return [i.id for i in gb.written_question(qid).items]


# --------------------------------------------------------------------------- the guard


def test_requests_without_the_token_are_refused(out):
    c = _client(out, login=False)
    try:
        for path in ("/", "/q/q1", "/api/q/q1/answers", "/static/serve.js", "/api/status"):
            r = c.get(path)
            assert r.status_code == 401, path
            assert "access token" in r.text
        assert c.get("/?token=wrong").status_code == 401
        r = c.post("/api/refresh", json={}, headers={"Origin": ORIGIN})
        assert r.status_code == 401
    finally:
        c.__exit__(None, None, None)


def test_the_token_is_exchanged_for_a_strict_httponly_cookie(out):
    c = _client(out, login=False)
    try:
        r = c.get("/q/q2?token=the-token", follow_redirects=False)
        assert r.status_code == 303
        assert r.headers["location"] == "/q/q2"             # the token leaves the address bar
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"hwgrader_serve_{PORT}=the-token")
        assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
        assert c.get("/q/q2").status_code == 200
    finally:
        c.__exit__(None, None, None)


@pytest.mark.parametrize("host", ["evil.example:8765", "127.0.0.1:9999", "localhost.evil.example:8765", ""])
def test_a_foreign_host_header_is_refused(client, host):
    r = client.get("/q/q1", headers={"Host": host})
    assert r.status_code == 403
    assert "Host" in r.text


def test_localhost_names_are_accepted(client):
    for host in (f"localhost:{PORT}", f"127.0.0.1:{PORT}", f"[::1]:{PORT}"):
        assert client.get("/q/q1", headers={"Host": host}).status_code == 200, host


def test_cross_origin_requests_are_refused(client, out):
    anon = _anon(out, "103590450")
    assert client.get("/api/q/q1/answers", headers={"Origin": "http://evil.example"}).status_code == 403
    body = {"items": [], "grader": "eve"}
    url = f"/api/q/q1/a/{anon}/grade"
    assert client.post(url, json=body, headers={"Origin": "http://evil.example",
                                                 "X-Hwgrader-Csrf": client.access.csrf}).status_code == 403
    assert client.post(url, json=body, headers={"X-Hwgrader-Csrf": client.access.csrf}).status_code == 403
    assert client.post(url, json=body, headers={"Origin": ORIGIN}).status_code == 403          # no CSRF token
    assert client.post(url, json=body, headers={"Origin": ORIGIN, "X-Hwgrader-Csrf": "x"}).status_code == 403
    assert client.post(url, json=body, headers={**_write_headers(client),
                                                 "Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert client.post(url, content="items=1", headers={**_write_headers(client),     # a plain form post
                       "Content-Type": "application/x-www-form-urlencoded"}).status_code == 415
    with Gradebook.open(out) as gb:
        assert gb.history("103590450", "q1") == []                 # nothing was written


def test_every_response_carries_the_security_headers(out):
    c = _client(out, login=False)
    try:
        for r in (c.get("/"), c.get("/", headers={"Host": "evil.example"}),
                  c.get("/?token=the-token", follow_redirects=False)):
            csp = r.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
            assert "unsafe-inline" not in csp
            assert r.headers["x-content-type-options"] == "nosniff"
            assert r.headers["referrer-policy"] == "no-referrer"
        assert c.get("/q/q1").headers["cache-control"] == "no-store"
    finally:
        c.__exit__(None, None, None)


def test_allowed_hosts_follow_the_listening_address():
    assert allowed_hosts("127.0.0.1", 80) >= {"127.0.0.1", "localhost", "127.0.0.1:80"}
    assert "10.0.0.5:8000" in allowed_hosts("10.0.0.5", 8000)
    assert "evil.example:8000" not in allowed_hosts("10.0.0.5", 8000)


# --------------------------------------------------------------------------- pages and data


def test_the_page_is_anonymous_and_lists_the_rubric_items(client):
    html = client.get("/q/q1").text
    assert "free parameters that let the layer undo or rescale" in html
    assert 'data-item="' in html and "<kbd>1</kbd>" in html
    for name in ("103590450", "twin_a", "張偉", "mallory"):
        assert name not in html
    rows = client.get("/api/q/q1/answers").json()["rows"]
    assert rows and all(r["name"] is None for r in rows)
    named = client.get("/api/q/q1/answers?names=1").json()["rows"]
    assert {r["name"] for r in named} >= {"twin_a", "張偉", "103590450"}


def test_answers_arrive_as_text_segments_with_hidden_characters_made_visible(client, out):
    a = client.get(f"/api/q/q1/a/{_anon(out, 'bidi')}").json()
    kinds = [s[0] for s in a["segments"]]
    assert "c" in kinds
    shown = "".join(s[1] for s in a["segments"])
    assert "\u202e" not in shown and "\u200b" not in shown and "\x07" not in shown
    assert "U+202E" in shown and "U+200B" in shown and "U+0007" in shown
    xss = client.get(f"/api/q/q1/a/{_anon(out, sf.fx.XSS_NAME)}").json()
    text = "".join(s[1] for s in xss["segments"])
    assert sf.fx.XSS_SCRIPT in text                          # as text: the page uses textContent
    assert xss["name"] is None


def test_key_terms_are_highlighted_and_tied_to_rubric_items_without_grading(client, out):
    a = client.get(f"/api/q/q2/a/{_anon(out, 'twin_a')}").json()
    terms = {s[1]: s[2] for s in a["segments"] if s[0] == "k"}
    assert "Reparameterization" in terms and "取樣" in terms and "不可微分" in terms
    assert terms["不可微分"]["items"] == [1, 2]               # criteria 1 and 2 speak of differentiability
    assert a["hints"]["1"] and a["grade"] is None            # a hint, never a grade


def test_key_terms_match_english_and_chinese_synonyms():
    kt = KeyTerms("Why is the reparameterization trick necessary?", ["gradients flow back (2 points)"])
    for text, found in [("重參數化技巧", "重參數化"), ("重参数化", "重参数化"), ("the Reparameterisation", "Reparameterisation"),
                        ("梯度無法傳回", "梯度"), ("no gradients", "gradients")]:
        assert [text[m.start:m.end] for m in kt.find(text)] == [found]
    assert kt.find("gradual") == [] and kt.find("programming") == []
    assert kt.item_hints("梯度")[0] == ["gradient / 梯度"]


def test_near_identical_answers_are_grouped():
    base = "γ 與 β 是可學習的參數，透過反向傳播 (backpropagation) 和梯度下降更新，mini-batch 的平均與變異數則是算出來的。"
    groups = group_answers({"a": base, "b": base.replace("，", ", ") + " ", "c": base.upper(),
                            "d": "完全不同的答案 about something else entirely", "e": None, "f": "", "g": "  "})
    assert groups["a"] == groups["b"] == groups["c"] == 1
    assert "d" not in groups and "e" not in groups and "f" not in groups
    assert normalise("Ａ，ｂ  C") == normalise("a, B c")


def test_grading_appends_to_the_log_and_updates_totals_and_progress(client, out):
    anon = _anon(out, "twin_a")
    items = _items(out, "q1")
    before = client.get(f"/api/q/q1/a/{anon}").json()
    assert before["grade"] is None and before["progress"]["graded"] == 0
    r = client.post(f"/api/q/q1/a/{anon}/grade", headers=_write_headers(client),
                    json={"items": items[:2], "adjustment": -0.5, "comment": "γ 的角色說明得很好 (good)", "grader": "ta1"})
    assert r.status_code == 200, r.text
    after = r.json()
    assert after["grade"]["score"] == 3.5 and after["grade"]["grader"] == "ta1"
    assert after["totals"]["score"] == pytest.approx(before["totals"]["score"] + 3.5)
    assert after["totals"]["pending"] == before["totals"]["pending"] - 6
    assert after["progress"]["graded"] == 1 and after["progress"]["text"].startswith("1 of ")
    assert after["comments"][0]["text"] == "γ 的角色說明得很好 (good)"
    # the next write must name the event it saw: a stale one is a conflict, and says no name
    stale = client.post(f"/api/q/q1/a/{anon}/grade", headers=_write_headers(client),
                        json={"items": [], "grader": "ta2", "expected_event": after["grade"]["event"] - 1})
    assert stale.status_code == 409 and "twin_a" not in stale.text
    cleared = client.post(f"/api/q/q1/a/{anon}/grade", headers=_write_headers(client),
                          json={"clear": True, "grader": "ta1", "expected_event": after["grade"]["event"]})
    assert cleared.json()["grade"] is None
    with Gradebook.open(out) as gb:
        events = gb.history("twin_a", "q1")
    assert [(e.kind, e.grader, e.adjustment) for e in events] == [("grade", "ta1", -0.5), ("clear", "ta1", 0.0)]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e.at) for e in events)


def test_bad_grades_are_refused_with_a_reason(client, out):
    url = f"/api/q/q1/a/{_anon(out, 'twin_a')}/grade"
    for body, word in [({"items": [999], "grader": "ta"}, "unknown rubric item"),
                       ({"items": "1", "grader": "ta"}, "items"),
                       ({"items": [], "adjustment": "lots", "grader": "ta"}, "adjustment"),
                       ({"items": [], "grader": "  "}, "Grader"),
                       ({"items": [], "grader": "ta\u202e"}, "visible")]:
        r = client.post(url, json=body, headers=_write_headers(client))
        assert r.status_code == 400 and word in r.json()["error"], (body, r.text)
    assert client.get("/api/q/q1/a/S-NOPE").status_code == 404
    assert client.get("/api/q/q9/answers").status_code == 404
    assert client.get("/q/q9").status_code == 404 and client.get("/q/q3").status_code == 404


def test_a_group_is_graded_in_one_step(client, out):
    anon_a, anon_b = _anon(out, "twin_a"), _anon(out, "twin_b")
    a = client.get(f"/api/q/q2/a/{anon_a}").json()
    assert a["group"] and a["group"]["size"] >= 2
    items = _items(out, "q2")
    r = client.post(f"/api/q/q2/a/{anon_a}/grade-group", headers=_write_headers(client),
                    json={"items": items, "comment": "完整", "grader": "ta1"})
    assert r.status_code == 200 and r.json()["applied_to"] == a["group"]["size"]
    b = client.get(f"/api/q/q2/a/{anon_b}").json()
    assert b["grade"]["score"] == 6 and b["grade"]["comment"] == "完整"


def test_navigation_and_next_ungraded(client, out):
    listing = client.get("/api/q/q1/answers").json()
    order = [r["anon"] for r in listing["rows"]]
    assert listing["total"] == len(order) == 9
    nxt = client.get(f"/api/q/q1/a/{order[0]}/move?to=next").json()["anon"]
    assert nxt == order[1]
    assert client.get(f"/api/q/q1/a/{order[0]}/move?to=prev").json()["anon"] is None
    client.post(f"/api/q/q1/a/{order[1]}/grade", headers=_write_headers(client), json={"items": [], "grader": "ta"})
    assert client.get(f"/api/q/q1/a/{order[0]}/move?to=next-ungraded").json()["anon"] == order[2]


def test_refresh_writes_the_final_totals_into_grades_csv(client, out):
    anon = _anon(out, "103590451")
    with Gradebook.open(out) as gb:
        automatic = gb.result("103590451")
    client.post(f"/api/q/q1/a/{anon}/grade", headers=_write_headers(client),
                json={"items": _items(out, "q1")[:1], "adjustment": 1, "grader": "ta"})
    r = client.post("/api/refresh", json={}, headers=_write_headers(client))
    assert r.status_code == 200 and r.json()["pending"] == 0
    rows = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    assert float(rows["103590451"]["q1"]) == pytest.approx(automatic.question("q1").score + 3)
    assert float(rows["103590451"]["total"]) == pytest.approx(automatic.score + 3)
    assert float(rows["103590451"]["pending"]) == pytest.approx(automatic.pending - 6)


def test_writes_are_refreshed_in_the_background_after_a_pause(out):
    c = _client(out, refresh_delay=0.2)
    try:
        csv_path = out / "grades.csv"
        assert not csv_path.exists()
        c.post(f"/api/q/q1/a/{_anon(out, 'twin_b')}/grade", headers=_write_headers(c),
               json={"items": _items(out, "q1"), "grader": "ta"})
        deadline = time.monotonic() + 20
        while not csv_path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert csv_path.exists()
        assert c.get("/api/status").json()["pending"] == 0
    finally:
        c.__exit__(None, None, None)


def test_segments_keep_text_and_terms_in_order():
    kt = KeyTerms("reparameterization", [])
    segs = answer_segments("用 reparameterization\u202e!\r\n第二行", kt)
    assert segs == [["t", "用 ", None], ["k", "reparameterization", {"concept": "reparameterization / 重參數化", "items": []}],
                    ["c", "U+202E", "U+202E RIGHT-TO-LEFT OVERRIDE"], ["t", "!\n第二行", None]]


# --------------------------------------------------------------------------- 1,000 students


def _timings(out: Path) -> dict[str, float]:
    """Median seconds of the requests a grader's page makes (page, list page, answer, grade)."""
    c = _client(out)
    try:
        timings = {}

        def timed(name, fn):
            fn()                      # the first call computes the answer groups; then the steady state
            samples = []
            for _ in range(5):
                t = time.perf_counter()
                r = fn()
                samples.append(time.perf_counter() - t)
                assert r.status_code == 200
            timings[name] = sorted(samples)[2]
            return r

        timed("page", lambda: c.get("/q/q1"))
        listing = timed("list", lambda: c.get("/api/q/q1/answers?page=2")).json()
        anon = listing["rows"][0]["anon"] if listing["rows"] else c.get("/api/q/q1/answers").json()["rows"][0]["anon"]
        timed("answer", lambda: c.get(f"/api/q/q1/a/{anon}"))
        timed("grade", lambda: c.post(f"/api/q/q1/a/{anon}/grade", headers=_write_headers(c),
                                      json={"items": [], "grader": "ta"}))
        return timings
    finally:
        c.__exit__(None, None, None)


@pytest.mark.slow
def test_a_class_of_1000_stays_responsive(tmp_path, out):
    big = sf.make_gradebook(tmp_path / "big", sf.synthetic_class(1000))
    with Gradebook.open(big) as gb:
        assert gb.progress()["q1"].total == 1000
    small, large = _timings(out), _timings(big)
    print("\nmedian of 5, seconds (9 students -> 1,000 students): " +
          ", ".join(f"{k} {small[k]:.3f} -> {large[k]:.3f}" for k in large))
    assert max(large.values()) < 1.0, large


# --------------------------------------------------------------------------- the command


def _run(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "grader", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)


def test_serve_without_a_gradebook_is_a_one_line_error(tmp_path):
    r = _run("serve", str(tmp_path))
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "gradebook" in r.stderr and str(tmp_path) in r.stderr
    r = _run("serve", str(tmp_path / "missing"))
    assert r.returncode == 2 and "no such folder" in r.stderr
    r = _run("serve", str(tmp_path), "--port", "70000")
    assert r.returncode == 2 and "--port" in r.stderr


def start_server(out: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``python -m grader serve OUT`` on a free loopback port; returns the process and its URL."""
    proc = subprocess.Popen([sys.executable, "-m", "grader", "serve", str(out), "--port", "0", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+/)\?token=([\w-]+)", line)
    if not m:
        proc.kill()
        raise AssertionError(f"no URL printed: {line!r} {proc.stderr.read()}")
    return proc, m.group(0)


def stop_server(proc: subprocess.Popen) -> str:
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return out


def test_the_real_server_prints_its_url_and_refuses_tokenless_requests(out):
    proc, url = start_server(out)
    try:
        base = url.split("?")[0]
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base + "q/q1", timeout=10)
        assert refused.value.code == 401
        req = urllib.request.Request(url, headers={"Host": "rebound.example"})
        with pytest.raises(urllib.error.HTTPError) as rebound:
            urllib.request.urlopen(req, timeout=10)
        assert rebound.value.code == 403
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        page = opener.open(url, timeout=10).read().decode()      # token -> cookie -> the page
        assert "Batch normalization" in page
    finally:
        printed = stop_server(proc)
    assert "Stopped" in printed


def test_hard_wrapped_answers_are_joined_for_reading_only(client, out):
    from grader.gradebook.server import reflow

    assert reflow("the batch\nmean is used\n\n1. a list\n2. stays\n  indented too") == \
        "the batch mean is used\n\n1. a list\n2. stays\n  indented too"
    assert reflow("不可\n微分 and\nEnglish") == "不可微分 and English"
    anon = _anon(out, "twin_a")
    with Gradebook.open(out) as gb:
        gb.store_result(sf._with_answers(sf.fx.perfect_student("twin_a"), "第一行\n第二行", None), "c2", "k")
    joined = client.get(f"/api/q/q1/a/{anon}").json()
    written = client.get(f"/api/q/q1/a/{anon}?layout=written").json()
    assert "".join(s[1] for s in joined["segments"]) == "第一行第二行" and joined["reflowed"]
    assert "".join(s[1] for s in written["segments"]) == "第一行\n第二行" and not written["reflowed"]


def test_stopping_the_server_writes_what_is_still_pending(out):
    c = _client(out, refresh_delay=600)           # no background refresh within the test
    c.post(f"/api/q/q2/a/{_anon(out, '103590451')}/grade", headers=_write_headers(c),
           json={"items": _items(out, "q2")[:2], "comment": "停止前", "grader": "ta"})
    assert c.get("/api/status").json()["pending"] == 1
    assert not (out / "grades.csv").exists()
    c.__exit__(None, None, None)                 # the server's shutdown
    rows = {row["student"]: row for row in csv.DictReader((out / "grades.csv").open(encoding="utf-8"))}
    with Gradebook.open(out) as gb:
        final = gb.result("103590451")
    assert final.question("q2").written.score == 4
    assert float(rows["103590451"]["total"]) == pytest.approx(final.score)
    assert "停止前" in (out / "103590451" / "report.html").read_text(encoding="utf-8")
