"""``hwgrader serve DIR``: the local web UI that grades written answers by question across students.

Starlette + uvicorn + jinja2 over the gradebook of DIR (:mod:`grader.gradebook.store`). The
page is a shell; answers are fetched one at a time as JSON and put on the page with
``textContent`` (never as HTML), the answer list is paginated, so a class of 1,000 loads as
fast as a class of 10.

Security (a grading server holds every student's answers and writes grades):

- it listens on 127.0.0.1 unless ``--host`` says otherwise;
- every request needs the access token printed with the URL: ``?token=`` once, which is
  exchanged for an HttpOnly, SameSite=Strict cookie (named after the port: cookies do not
  tell ports apart) and a redirect to the same page without the token;
- the ``Host`` header must name this server (a DNS-rebinding page has its own host name) and
  an ``Origin`` header, when sent, must be this server's own origin;
- writes are POSTs with a JSON body, this server's ``Origin`` and a CSRF token from the page
  in ``X-Hwgrader-Csrf``;
- a strict Content-Security-Policy (scripts and styles only from this server, nothing inline).

Every write is a grade event in the gradebook's append-only log with the grader's name
(typed on the page, default: the OS user) and the time. Class files (grades.csv, index.html,
each student's report.html and results.json) are rewritten from the gradebook in the
background a moment after the last write (``REFRESH_DELAY_S``), on demand, and on shutdown.
"""

from __future__ import annotations

import contextlib
import getpass
import hashlib
import hmac
import json
import re
import secrets
import signal
import socket
import sys
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, TextIO
from urllib.parse import parse_qs, quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from grader.errors import ExitCode, GradebookError, UsageError
from grader.gradebook.answer_groups import group_answers
from grader.gradebook.incremental import refresh
from grader.gradebook.key_terms import KeyTerms
from grader.gradebook.store import GradeConflict, Gradebook, InvalidGrade, ManualGrade

HERE = Path(__file__).resolve().parent
#: Seconds of quiet after the last write before the class files are rewritten in the background.
REFRESH_DELAY_S = 2.0
#: Answers per page of the answer list (the list holds no answer text).
PAGE_SIZE = 50
#: Seconds a question's answer order and groups are reused before the gradebook is read again.
INDEX_SECONDS = 5.0
#: Longest grader name accepted (names go into the log and the reports).
MAX_GRADER_CHARS = 80
#: Largest request body accepted (a grade with a long comment is a few kB).
MAX_BODY_BYTES = 256 * 1024
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"cache-control", b"no-store"),
]
_WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}


# --------------------------------------------------------------------------- answer text as segments


def _control_name(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return f"U+{ord(ch):04X}" + (f" {name}" if name else "")


def _is_hidden(ch: str) -> bool:
    """Characters that would be invisible or reorder text: controls, bidi and zero-width marks."""
    return ch not in "\n\t" and unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")


#: A line that starts a list item, a quote or an indented block keeps its line break when reflowing.
_KEEPS_BREAK = re.compile(r"\s|[-*•·>#|]|\d+[.)、]|[(（]\d+[)）]|[a-zA-Z][.)]\s")


def _wide(ch: str) -> bool:
    return bool(ch) and unicodedata.east_asian_width(ch) in ("W", "F")


def reflow(text: str) -> str:
    """Join the hard line breaks inside paragraphs (answers pasted from an editor at 80 columns).

    Blank lines, list items and indented lines keep their breaks; two Chinese characters are
    joined without a space, anything else with one. Only for showing: the stored text is unchanged.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    out = [lines[0]]
    for line in lines[1:]:
        prev = out[-1]
        if prev.strip() and line.strip() and not _KEEPS_BREAK.match(line):
            head = prev.rstrip()
            out[-1] = head + ("" if _wide(head[-1:]) and _wide(line[:1]) else " ") + line
        else:
            out.append(line)
    return "\n".join(out)


def answer_segments(text: str, terms: Optional[KeyTerms], matches: Optional[list] = None) -> list[list]:
    """The answer as ``[kind, text, extra]`` runs for the page to show with ``textContent``.

    ``t`` plain text; ``k`` a key term (extra: the concept and the 1-based rubric items it
    hints at); ``c`` a hidden character made visible (extra: its code point and name).
    """
    text = text.replace("\r\n", "\n")
    if matches is None:
        matches = terms.find(text) if terms else []
    segments: list[list] = []

    def plain(chunk: str) -> None:
        run = []
        for ch in chunk:
            if _is_hidden(ch):
                if run:
                    segments.append(["t", "".join(run), None])
                    run = []
                segments.append(["c", f"U+{ord(ch):04X}", _control_name(ch)])
            else:
                run.append(ch)
        if run:
            segments.append(["t", "".join(run), None])

    at = 0
    for m in matches:
        plain(text[at:m.start])
        hidden = any(_is_hidden(ch) for ch in text[m.start:m.end])
        if hidden:
            plain(text[m.start:m.end])
        else:
            segments.append(["k", text[m.start:m.end], {"concept": m.concept, "items": [i + 1 for i in m.items]}])
        at = m.end
    plain(text[at:])
    return segments


# --------------------------------------------------------------------------- outputs


class OutputRefresher:
    """Rewrites the class files from the gradebook after writes: debounced, in one thread."""

    def __init__(self, out_dir: Path, gb: Gradebook, delay: float = REFRESH_DELAY_S):
        self.out_dir, self.gb, self.delay = out_dir, gb, delay
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._last_write = 0.0
        self._stop = False
        self._busy = threading.Lock()           # one refresh at a time (background or on demand)
        self.last_refresh: Optional[str] = None
        self.last_error: Optional[str] = None
        self._thread = threading.Thread(target=self._run, name="hwgrader-refresh", daemon=True)
        self._thread.start()

    def touched(self, students: Iterable[str]) -> None:
        with self._cond:
            self._pending.update(students)
            self._last_write = time.monotonic()
            self._cond.notify()

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._pending)

    def _take(self) -> set[str]:
        with self._cond:
            taken, self._pending = self._pending, set()
            return taken

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._pending:
                    self._cond.wait()
                if self._stop:
                    return
                wait = self._last_write + self.delay - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
            try:
                self.refresh_now()
            except (GradebookError, OSError):
                with self._cond:     # shown on the page (last_error); try again after a pause
                    self._last_write = time.monotonic()

    def refresh_now(self) -> float:
        """Rewrite the class files and the files of the students graded since; returns seconds."""
        with self._busy:
            students = self._take()
            started = time.monotonic()
            try:
                refresh(self.out_dir, sorted(students), gradebook=self.gb)
            except (GradebookError, OSError) as exc:
                self.last_error = f"could not update the reports: {exc}"
                with self._cond:
                    self._pending.update(students)
                raise
            self.last_error = None
            self.last_refresh = time.strftime("%H:%M:%S")
            return time.monotonic() - started

    def close(self) -> None:
        """Stop the thread and write what is still pending (the server is shutting down)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=30)
        if self.pending:
            self.refresh_now()


# --------------------------------------------------------------------------- the guard


@dataclass
class Access:
    token: str
    port: int
    hosts: frozenset[str]          # acceptable Host headers, lower case, with the port

    @property
    def cookie(self) -> str:
        return f"hwgrader_serve_{self.port}"

    @property
    def csrf(self) -> str:
        return hmac.new(self.token.encode(), b"csrf", hashlib.sha256).hexdigest()

    def token_ok(self, value: Optional[str]) -> bool:
        return value is not None and hmac.compare_digest(value.encode(), self.token.encode())


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The ``Host`` headers a browser sends for this server: loopback names, or the --host address."""
    names = {"127.0.0.1", "localhost", "[::1]"}
    if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::", ""):
        names.add(f"[{host}]" if ":" in host else host)
    if host in ("0.0.0.0", "::"):
        names.add(socket.gethostname())
    hosts = {f"{n}:{port}".lower() for n in names}
    if port == 80:
        hosts |= {n.lower() for n in names}
    return frozenset(hosts)


class Guard:
    """ASGI middleware: Host/Origin checks, the access token, CSRF on writes, security headers."""

    def __init__(self, app, access: Access):
        self.app, self.access = app, access

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await self.app(scope, receive, send)
        if scope["type"] != "http":
            return  # no websockets here
        refused = self._refusal(scope)
        if refused is not None:
            return await self._secured(refused)(scope, receive, send)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if "token" in query and scope["method"] in ("GET", "HEAD"):
            return await self._secured(self._login(scope, query))(scope, receive, send)

        async def send_secured(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": _with_security_headers(message.get("headers", []))}
            await send(message)

        await self.app(scope, receive, send_secured)

    @staticmethod
    def _secured(response: Response) -> Response:
        response.raw_headers = _with_security_headers(response.raw_headers)
        return response

    def _refusal(self, scope) -> Optional[Response]:
        headers = Headers(scope=scope)
        host = headers.get("host", "").lower()
        if host not in self.access.hosts:
            return PlainTextResponse("403: this grading server does not answer to that Host name "
                                     "(DNS rebinding protection); open the URL it printed\n", 403)
        origin = headers.get("origin")
        if origin is not None and origin.lower() != f"http://{host}":
            return PlainTextResponse("403: cross-origin request refused\n", 403)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        cookie_ok = self.access.token_ok(_cookie(headers, self.access.cookie))
        token_ok = "token" in query and self.access.token_ok(query["token"][0])
        if not (cookie_ok or token_ok):
            return HTMLResponse(_DENIED_PAGE, 401)
        if scope["method"] in _WRITE_METHODS:
            if origin is None:
                return PlainTextResponse("403: a write must come from the grading page (no Origin header)\n", 403)
            if headers.get("sec-fetch-site", "same-origin") != "same-origin":
                return PlainTextResponse("403: cross-site write refused\n", 403)
            if not hmac.compare_digest(headers.get("x-hwgrader-csrf", "").encode(), self.access.csrf.encode()):
                return PlainTextResponse("403: missing or wrong CSRF token; reload the page\n", 403)
            if headers.get("content-type", "").split(";")[0].strip() != "application/json":
                return PlainTextResponse("415: writes take a JSON body\n", 415)
        return None

    def _login(self, scope, query: dict) -> Response:
        """Trade the URL's token for a cookie and send the browser to the same page without it."""
        rest = {k: v for k, v in query.items() if k != "token"}
        target = quote(scope.get("path", "/")) + (("?" + urlencode(rest, doseq=True)) if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(self.access.cookie, self.access.token, httponly=True, samesite="strict", path="/")
        return response


def _cookie(headers: Headers, name: str) -> Optional[str]:
    for part in headers.get("cookie", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def _with_security_headers(raw: list) -> list:
    names = {k for k, _ in SECURITY_HEADERS}
    return [(k, v) for k, v in raw if k.lower() not in names] + SECURITY_HEADERS


_DENIED_PAGE = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Access token needed</title>
<h1>401: access token needed</h1>
<p>This grading server only answers to the URL that <code>hwgrader serve</code> printed when it
started (it carries a one-time access token). Open that URL again.</p></html>
"""


# --------------------------------------------------------------------------- the application


class ClientError(Exception):
    """A request that does not fit (unknown answer, bad field): answered with ``status``."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message, self.status = message, status


@dataclass
class _Index:
    """One question's answers as the pages walk them: order, names, groups (no grades, no text)."""

    built: float                   # time.monotonic() when read from the gradebook
    key: int                       # hash of every (student, answer): the groups are reused while equal
    order: list[tuple[str, str]]   # (anon id, student) in the gradebook's stable pseudo-random order
    position: dict[str, int]       # anon id -> index in ``order``
    names: dict[str, str]          # student -> display name
    empty: frozenset[str]          # students without an answer
    groups: dict[str, int]         # student -> group of near-identical answers
    members: dict[int, list[str]]  # group -> its students, in order


class GradingService:
    """What the pages need, on top of the gradebook: order, groups, key terms, totals.

    The order of a question's answers and their groups are kept for ``INDEX_SECONDS`` (they
    change only when ``grade`` re-runs into DIR meanwhile); answers and grades are always read
    fresh, one answer at a time, so a class of 1,000 costs little more per request than 10.
    """

    def __init__(self, out_dir: Path, gb: Gradebook, refresher: Optional[OutputRefresher]):
        self.out_dir, self.gb, self.refresher = out_dir, gb, refresher
        self._indexes: dict[str, _Index] = {}
        self._terms: dict[str, KeyTerms] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ questions

    def question(self, qid: str):
        try:
            return self.gb.written_question(qid)
        except GradebookError:
            raise ClientError(f"no written question {qid!r}", 404) from None

    def terms(self, qid: str) -> KeyTerms:
        with self._lock:
            if qid not in self._terms:
                wq = self.question(qid)
                self._terms[qid] = KeyTerms(wq.prompt, [i.label for i in wq.items])
            return self._terms[qid]

    def index(self, qid: str, *, fresh: bool = False) -> _Index:
        with self._lock:
            cached = self._indexes.get(qid)
        if cached is not None and not fresh and time.monotonic() - cached.built < INDEX_SECONDS:
            return cached
        self.question(qid)
        answers = self.gb.answers(qid)
        key = hash(tuple((a.student, a.text) for a in answers))
        groups = cached.groups if cached is not None and cached.key == key else \
            group_answers({a.student: a.text for a in answers})
        order = [(a.anon_id, a.student) for a in answers]
        members: dict[int, list[str]] = {}
        for _, student in order:
            if student in groups:
                members.setdefault(groups[student], []).append(student)
        index = _Index(time.monotonic(), key, order, {anon: i for i, (anon, _) in enumerate(order)},
                       {a.student: a.display_name for a in answers},
                       frozenset(a.student for a in answers if not (a.text or "").strip()), groups, members)
        with self._lock:
            self._indexes[qid] = index
        return index

    def _locate(self, qid: str, anon: str) -> tuple[_Index, int, str]:
        index = self.index(qid)
        if anon not in index.position:
            index = self.index(qid, fresh=True)     # graded into DIR since the index was read?
        if anon not in index.position:
            raise ClientError(f"no answer {anon!r} to {qid} (re-graded meanwhile? reload the page)", 404)
        pos = index.position[anon]
        return index, pos, index.order[pos][1]

    def grades(self, qid: str) -> dict[str, ManualGrade]:
        return {student: g for (student, q), g in self.gb.manual_grades().items() if q == qid}

    def progress(self, qid: str) -> dict:
        p = self.gb.progress().get(qid)
        return {"graded": p.graded if p else 0, "total": p.total if p else 0,
                "text": str(p) if p else "0 of 0 graded"}

    # ------------------------------------------------------------ answers

    def listing(self, qid: str, page: int, names: bool) -> dict:
        index = self.index(qid)
        grades = self.grades(qid)
        total = len(index.order)
        pages = max(1, -(-total // PAGE_SIZE))
        page = min(max(page, 1), pages)
        rows = []
        for pos in range((page - 1) * PAGE_SIZE, min(page * PAGE_SIZE, total)):
            anon, student = index.order[pos]
            grade = grades.get(student)
            rows.append({"pos": pos + 1, "anon": anon, "name": index.names[student] if names else None,
                         "graded": grade is not None, "score": grade.score if grade else None,
                         "group": index.groups.get(student), "empty": student in index.empty})
        return {"page": page, "pages": pages, "page_size": PAGE_SIZE, "total": total, "rows": rows,
                "progress": self.progress(qid)}

    def first(self, qid: str) -> Optional[str]:
        """Where the page opens: the first ungraded answer, else the first."""
        index, grades = self.index(qid), self.grades(qid)
        for anon, student in index.order:
            if student not in grades:
                return anon
        return index.order[0][0] if index.order else None

    def neighbour(self, qid: str, anon: str, step: int, ungraded: bool) -> Optional[str]:
        """The answer ``step`` places away, or the next ungraded one that way (wrapping around)."""
        index, pos, _ = self._locate(qid, anon)
        n = len(index.order)
        if not ungraded:
            return index.order[pos + step][0] if 0 <= pos + step < n else None
        grades = self.grades(qid)
        for k in range(1, n + 1):
            cand, student = index.order[(pos + step * k) % n]
            if student not in grades:
                return cand
        return None

    def detail(self, qid: str, anon: str, names: bool, as_written: bool = False) -> dict:
        wq = self.question(qid)
        index, pos, student = self._locate(qid, anon)
        try:
            a = self.gb.answer(student, qid)
        except InvalidGrade:          # left the class in a re-run since the index was read
            self.index(qid, fresh=True)
            raise ClientError("this answer is no longer in the gradebook (re-graded meanwhile); reload", 404) \
                from None
        group = index.groups.get(student)
        members = index.members.get(group, []) if group else []
        grades = self.grades(qid) if group else {}
        text = a.text or ""
        shown = text if as_written else reflow(text)
        terms = self.terms(qid)
        matches = terms.find(shown) if a.text else []
        return {
            "anon": anon, "pos": pos + 1, "count": len(index.order),
            "name": a.display_name if names else None,
            "prev": index.order[pos - 1][0] if pos > 0 else None,
            "next": index.order[pos + 1][0] if pos + 1 < len(index.order) else None,
            "missing": a.text is None,
            "segments": answer_segments(shown, terms, matches) if a.text else [],
            "reflowed": a.text is not None and shown != text.replace("\r\n", "\n"),
            "chars": len(text),
            "changed_since_graded": a.changed_since_graded,
            "grade": _grade_json(a.grade),
            "hints": {str(i + 1): concepts for i, concepts in KeyTerms.hints(matches).items()},
            "group": {"id": group, "size": len(members),
                      "graded": sum(m in grades for m in members)} if group else None,
            "totals": self.totals(student),
            "progress": self.progress(qid),
            "comments": [{"text": c.text, "uses": c.uses} for c in self.gb.comments(qid)[:9]],
            "max": wq.max_points,
        }

    def totals(self, student: str) -> dict:
        r = self.gb.result(student)
        return {"score": round(r.score, 2), "max": round(r.max_score, 2), "pending": round(r.pending, 2)}

    # ------------------------------------------------------------ writes

    def grade(self, qid: str, anon: str, body: dict) -> dict:
        wq = self.question(qid)
        _, _, student = self._locate(qid, anon)
        items, adjustment, comment, grader, expected = _grade_fields(body, {i.id for i in wq.items})
        try:
            if body.get("clear"):
                self.gb.clear_grade(student, qid, grader=grader, expected_event=expected)
            else:
                self.gb.record_grade(student, qid, grader=grader, items=items, adjustment=adjustment,
                                     comment=comment, expected_event=expected)
        except GradeConflict:   # the store's message names the student: not shown while anonymous
            raise ClientError("this answer was graded elsewhere meanwhile (another tab or grader); "
                              "it has been reloaded: check it and grade again", 409) from None
        except InvalidGrade as exc:
            raise ClientError(_anonymous(exc.message, student), 400) from None
        self._touched([student])
        return self.detail(qid, anon, bool(body.get("names")), body.get("layout") == "written")

    def grade_group(self, qid: str, anon: str, body: dict) -> dict:
        """The same items, adjustment and comment for every answer in ``anon``'s group."""
        wq = self.question(qid)
        index, _, student = self._locate(qid, anon)
        group = index.groups.get(student)
        if group is None:
            raise ClientError("this answer is in no group of near-identical answers")
        items, adjustment, comment, grader, _ = _grade_fields(body, {i.id for i in wq.items})
        members = index.members[group]
        try:
            with self.gb.transaction():
                for student in members:
                    self.gb.record_grade(student, qid, grader=grader, items=items, adjustment=adjustment,
                                         comment=comment)
        except InvalidGrade as exc:
            raise ClientError(_anonymous(exc.message, *members), 400) from None
        self._touched(members)
        result = self.detail(qid, anon, bool(body.get("names")), body.get("layout") == "written")
        result["applied_to"] = len(members)
        return result

    def _touched(self, students: list[str]) -> None:
        if self.refresher is not None:
            self.refresher.touched(students)

    def status(self) -> dict:
        r = self.refresher
        return {"pending": r.pending if r else 0, "last_refresh": r.last_refresh if r else None,
                "error": r.last_error if r else None}


def _anonymous(message: str, *students: str) -> str:
    """A store message with the students' names taken out (the page may be anonymous)."""
    for student in students:
        message = message.replace(repr(student), "this student").replace(student, "this student")
    return message


def _grade_json(g: Optional[ManualGrade]) -> Optional[dict]:
    if g is None:
        return None
    return {"score": g.score, "items": [i.id for i in g.items], "adjustment": g.adjustment,
            "comment": g.comment, "grader": g.grader, "at": g.at, "event": g.event_id}


def _grade_fields(body: dict, valid_items: set[int]):
    items = body.get("items", [])
    if not isinstance(items, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise ClientError("items must be a list of rubric item ids")
    if set(items) - valid_items:
        raise ClientError(f"unknown rubric item(s) {sorted(set(items) - valid_items)}")
    adjustment = body.get("adjustment", 0)
    if isinstance(adjustment, bool) or not isinstance(adjustment, (int, float)):
        raise ClientError("adjustment must be a number")
    comment = body.get("comment", "")
    if not isinstance(comment, str):
        raise ClientError("comment must be text")
    grader = body.get("grader", "")
    if not isinstance(grader, str) or not grader.strip():
        raise ClientError("type your name in the Grader field first")
    grader = grader.strip()
    if len(grader) > MAX_GRADER_CHARS or any(_is_hidden(ch) for ch in grader):
        raise ClientError(f"the grader's name must be at most {MAX_GRADER_CHARS} visible characters")
    expected = body.get("expected_event")
    if expected is not None and (isinstance(expected, bool) or not isinstance(expected, int)):
        raise ClientError("expected_event must be an event id")
    return items, float(adjustment), comment, grader, expected


def create_app(out_dir: Path, access: Access, *, default_grader: Optional[str] = None,
               refresh_delay: float = REFRESH_DELAY_S) -> Guard:
    """The grading application over the gradebook in ``out_dir`` (opened here, closed on shutdown)."""
    out_dir = Path(out_dir)
    gb = Gradebook.open(out_dir)
    refresher = OutputRefresher(out_dir, gb, refresh_delay)
    service = GradingService(out_dir, gb, refresher)
    env = Environment(loader=FileSystemLoader(str(HERE / "templates")),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    grader_name = default_grader if default_grader is not None else _os_user()

    def page(request: Request) -> Response:
        questions = gb.written_questions()
        if not questions:
            return HTMLResponse(env.get_template("empty.html").render(title=gb.title), 200)
        qid = request.path_params.get("qid") or questions[0].id
        try:
            wq = service.question(qid)
        except ClientError as exc:
            return PlainTextResponse(f"{exc.status}: {exc.message}\n", exc.status)
        progress = gb.progress()
        return HTMLResponse(env.get_template("grade.html").render(
            title=gb.title, question=wq, questions=questions, progress=progress,
            csrf=access.csrf, grader=grader_name, first=service.first(qid) or "",
            items=[{"id": i.id, "ord": i.ord, "label": i.label, "points": i.points} for i in wq.items]))

    def api(handler):
        async def endpoint(request: Request) -> Response:
            body = None
            if request.method == "POST":
                raw = await request.body()
                if len(raw) > MAX_BODY_BYTES:
                    return JSONResponse({"error": "request too large"}, 413)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    return JSONResponse({"error": "the body is not JSON"}, 400)
                if not isinstance(body, dict):
                    return JSONResponse({"error": "the body must be a JSON object"}, 400)
            try:
                return JSONResponse(await run_in_threadpool(handler, request, body))
            except ClientError as exc:
                return JSONResponse({"error": exc.message}, exc.status)
            except GradebookError as exc:
                return JSONResponse({"error": exc.message}, 409)
        return endpoint

    def _names(request: Request) -> bool:
        return request.query_params.get("names") == "1"

    def listing(request, _):
        try:
            number = int(request.query_params.get("page", "1"))
        except ValueError:
            raise ClientError("page must be a number") from None
        return service.listing(request.path_params["qid"], number, _names(request))

    def detail(request, _):
        return service.detail(request.path_params["qid"], request.path_params["anon"], _names(request),
                              request.query_params.get("layout") == "written")

    def move(request, _):
        qid, anon = request.path_params["qid"], request.path_params["anon"]
        where = request.query_params.get("to", "next")
        if where not in ("next", "prev", "next-ungraded"):
            raise ClientError("to must be next, prev or next-ungraded")
        return {"anon": service.neighbour(qid, anon, -1 if where == "prev" else 1, where == "next-ungraded")}

    def grade(request, body):
        return service.grade(request.path_params["qid"], request.path_params["anon"], body)

    def grade_group(request, body):
        return service.grade_group(request.path_params["qid"], request.path_params["anon"], body)

    def refresh(request, _):
        try:
            seconds = refresher.refresh_now()
        except (GradebookError, OSError) as exc:
            raise ClientError(f"could not update the reports: {exc}", 500) from None
        return {**service.status(), "seconds": round(seconds, 2)}

    def status(request, _):
        return service.status()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            try:
                refresher.close()
            finally:
                gb.close()

    routes = [
        Route("/", page),
        Route("/q/{qid}", page),
        Route("/api/q/{qid}/answers", api(listing)),
        Route("/api/q/{qid}/a/{anon}", api(detail)),
        Route("/api/q/{qid}/a/{anon}/move", api(move)),
        Route("/api/q/{qid}/a/{anon}/grade", api(grade), methods=["POST"]),
        Route("/api/q/{qid}/a/{anon}/grade-group", api(grade_group), methods=["POST"]),
        Route("/api/refresh", api(refresh), methods=["POST"]),
        Route("/api/status", api(status)),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]

    async def not_found(request, exc):
        return PlainTextResponse(f"{exc.status_code}: {exc.detail}\n", exc.status_code)

    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: not_found, 405: not_found})
    return Guard(app, access)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return ""


# --------------------------------------------------------------------------- running it


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def serve(out_dir: Path, *, host: str = "127.0.0.1", port: int = 0, out: TextIO = sys.stdout) -> int:
    """Bind, print the URL with its token, serve until interrupted; the outputs are refreshed at exit."""
    import uvicorn

    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        raise UsageError(f"{out_dir}: no such folder (pass the --out folder of `hwgrader grade`)")
    Gradebook.open(out_dir).close()    # a missing or damaged gradebook is an error before binding
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(64)
    port = sock.getsockname()[1]
    access = Access(secrets.token_urlsafe(24), port, allowed_hosts(host, port))
    app = create_app(out_dir, access)
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
    if host == "::":
        shown = "[::1]"
    print(f"Grading {out_dir} at http://{shown}:{port}/?token={access.token}", file=out, flush=True)
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"hwgrader: WARNING: listening on {host}, not only on this machine: anyone who can reach "
              f"it and has the token can read answers and enter grades", file=sys.stderr, flush=True)
    print("Press Ctrl-C to stop (the reports are brought up to date first).", file=out, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    previous = signal.signal(signal.SIGTERM, _interrupt)   # `kill` stops it as cleanly as Ctrl-C
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass   # uvicorn re-raises the signal it handled once it has shut down cleanly
    finally:
        signal.signal(signal.SIGTERM, previous)
    print("Stopped; grades.csv and the reports are up to date.", file=out, flush=True)
    return ExitCode.OK
