"""HTML reports: ``<student>/report.html`` per submission and the class ``index.html``.

The pages are self-contained (inline CSS, inline SVG charts, no external URL)
and are rendered by jinja2 with autoescape on and ``StrictUndefined``. Every
string derived from a submission (answers, printed output, tracebacks,
student names, messages) is escaped; nothing from the data is ever marked
safe. The only script is the constant column sorter of the index, allowed by
a Content-Security-Policy hash; the student report has no script at all.

Templates only display what this module and :mod:`grader.outputs.summary` prepared.
"""

from __future__ import annotations

import base64
import hashlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from grader.sandbox.levels import FULL_ISOLATIONS
from markupsafe import Markup, escape

from grader import __version__
from grader.grading.clusters import MIN_STUDENTS as CLUSTER_MIN_STUDENTS, SHOWN_CLUSTERS
from grader.outputs import summary as S
from grader.outputs.atomic import write_atomic
from grader.safetext import visible
from grader.grading.results import (
    CaseResult,
    QuestionResult,
    SubmissionResult,
    WrittenResult,
)
from grader.grading.verdicts import Verdict

TEMPLATE_DIR = Path(__file__).parent / "templates"

#: The one script of the index page: sorts the score table by a clicked column.
#: A constant (never built from data); it reads cell text / data-value only as
#: strings or numbers and never evaluates anything.
SORT_JS = """
(function () {
  var table = document.getElementById("scores");
  if (!table) { return; }
  var heads = table.tHead.rows[0].cells;
  var body = table.tBodies[0];
  function key(row, i, numeric) {
    var cell = row.cells[i];
    var v = cell.getAttribute("data-value");
    if (v === null) { v = cell.textContent; }
    if (numeric) { var n = parseFloat(v); return isNaN(n) ? -Infinity : n; }
    return v.trim().toLowerCase();
  }
  function sortBy(i) {
    var th = heads[i];
    var numeric = th.getAttribute("data-sort") === "num";
    var dir = th.getAttribute("aria-sort") === "descending" ? "ascending"
            : th.getAttribute("aria-sort") === "ascending" ? "descending"
            : (numeric ? "descending" : "ascending");
    var sign = dir === "ascending" ? 1 : -1;
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a, i, numeric), y = key(b, i, numeric);
      var c = numeric ? (x < y ? -1 : x > y ? 1 : 0) : String(x).localeCompare(String(y));
      return c * sign;
    });
    for (var j = 0; j < heads.length; j++) { heads[j].setAttribute("aria-sort", "none"); }
    th.setAttribute("aria-sort", dir);
    for (var k = 0; k < rows.length; k++) { body.appendChild(rows[k]); }
  }
  for (var i = 0; i < heads.length; i++) {
    if (!heads[i].hasAttribute("data-sort")) { continue; }
    (function (i) {
      var b = heads[i].querySelector("button");
      (b || heads[i]).addEventListener("click", function () { sortBy(i); });
    })(i);
  }
})();
"""


def _csp(script: Optional[str]) -> str:
    if script is None:
        src = "'none'"
    else:
        digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
        src = f"'sha256-{digest}'"
    return (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            f"script-src {src}; base-uri 'none'; form-action 'none'")


_ENV: Optional[Environment] = None


def _shown(value):
    """Every value a template prints: text with control and bidi characters made visible
    (``safetext``), then autoescaped. Markup is ours (constants), never data."""
    if isinstance(value, str) and not isinstance(value, Markup):
        return visible(value, keep_lines=True)
    return value


_PLAIN = re.compile(r"[-+.0-9A-Za-z]*").fullmatch  # a number's text: nothing to escape


def _cell_text(text: str) -> str:
    return text if _PLAIN(text) else escape(_shown(text))


def grid_html(grid: S.Grid, kind: str) -> Markup:
    """An array shown as a table (wrong cells marked by colour, ✗ and words), with its caption
    and a note when it was cut. Built here rather than in a template: a report shows thousands
    of cells, and one template loop step per cell was most of its rendering time. Every text is
    escaped and made visible like any value a template prints."""
    two_d = len(grid.shape) >= 2
    out = ['<figure class="grid-wrap">\n']
    if grid.label:
        out.append(f"<figcaption>{escape(_shown(grid.label))}</figcaption>")
    out.append(f'<table class="grid {escape(kind)}" data-shape="{escape(grid.shape_text)}" '
               f'data-wrong="{grid.wrong_count}">\n')
    if len(grid.shape) >= 1:
        heads = "".join(f'<th scope="col">{j}</th>' for j in range(grid.shown_cols))
        out.append(f"<thead><tr>{'<th></th>' if two_d else ''}{heads}</tr></thead>\n")
    out.append("<tbody>\n")
    for i, row in enumerate(grid.rows):
        out.append(f'<tr><th scope="row">{i}</th>' if two_d else "<tr>")
        for c in row:
            text, title = _cell_text(c.text), _cell_text(c.title)
            if c.wrong:
                out.append(f'<td class="wrong" title="wrong: {title}"><span class="mark" aria-hidden="true">✗</span>'
                           f'{text}<span class="vh"> (wrong)</span></td>')
            else:
                out.append(f'<td title="{title}">{text}</td>')
        out.append("</tr>\n")
    out.append("</tbody>\n</table>\n")
    if grid.truncated:
        more = (f"; {grid.wrong_count - grid.wrong_shown} more wrong value(s) not shown"
                if grid.wrong_count > grid.wrong_shown else "")
        out.append(f'<p class="note cut">Cut to {grid.shown_rows}×{grid.shown_cols} of '
                   f"{escape(grid.shape_text)}{more}.</p>")
    out.append("</figure>")
    return Markup("".join(out))


def environment() -> Environment:
    """The one jinja2 environment (autoescape on, undefined names are errors)."""
    global _ENV
    if _ENV is None:
        env = Environment(
            loader=FileSystemLoader(str(TEMPLATE_DIR)),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
            finalize=_shown,
        )
        env.filters["score"] = S.fmt_score
        env.globals["version"] = __version__
        env.globals["grid_html"] = grid_html
        _ENV = env
    return _ENV


# --------------------------------------------------------------------------
# view models (what the student page shows)


@dataclass(frozen=True)
class CaseView:
    number: str
    name: str
    function: str
    case: str
    part: str
    hidden: bool
    passed: bool
    verdict: Verdict
    words: str                 # plain words for the verdict
    score: str
    max_score: str
    message: str               # public cases only ("" for hidden)
    diagnosis: Optional[object]
    mutated: tuple[str, ...]
    traceback: str
    inputs: tuple[S.InputView, ...]
    outputs: tuple[S.OutputView, ...]
    run_failure: bool          # timeout / memory / crash / invalid reply

    @property
    def status(self) -> str:
        return "passed" if self.passed else "failed"

    @property
    def open(self) -> bool:
        """Shown unfolded: failures worth reading (not "function not defined" / "not run")."""
        return not self.passed and self.verdict not in (Verdict.MISSING, Verdict.SKIPPED)

    @property
    def anchor(self) -> str:
        return "case-" + self.number.replace(".", "-")


@dataclass(frozen=True)
class WrittenView:
    number: str
    title: str
    prompt: str
    criteria: tuple[str, ...]
    answer: Optional[str]
    graded: bool
    score: str
    max_score: str
    items: tuple[tuple[str, str], ...] = ()   # applied rubric items: (signed points "+2", label)
    adjustment: str = ""       # "+1" / "-0.5", "" when none
    comment: str = ""
    answer_changed: bool = False


@dataclass(frozen=True)
class QuestionView:
    id: str
    title: str
    score: str
    max_score: str
    percent: float
    cases: tuple[CaseView, ...]
    written: Optional[WrittenView]
    passed: int
    total: int
    code_score: str
    code_max: str
    has_wrong_values: bool     # some public output shows wrong cells (legend needed)


def case_view(c: CaseResult, *, grid_cap: int = 30, input_cap: int = 12) -> CaseView:
    hidden = c.visibility != "public"
    passed = c.verdict is Verdict.PASSED
    if hidden:
        # Only status, verdict words and points: no inputs, values, messages or tracebacks,
        # even if a caller filled them in by mistake.
        return CaseView(
            number=c.number, name=c.name, function=c.function, case=c.case, part=c.part,
            hidden=True, passed=passed, verdict=c.verdict,
            words=c.verdict.label,
            score=S.fmt_score(c.score), max_score=S.fmt_score(c.max_score),
            message="", diagnosis=None, mutated=(), traceback="", inputs=(), outputs=(),
            run_failure=c.verdict.run_failure,
        )
    inputs = tuple(
        S.input_view(k, v, max_rows=input_cap, max_cols=input_cap)
        for k, v in (c.inputs or {}).items()
    )
    outputs = tuple(S.output_view(o, max_rows=grid_cap, max_cols=grid_cap) for o in c.outputs)
    return CaseView(
        number=c.number, name=c.name, function=c.function, case=c.case, part=c.part,
        hidden=False, passed=passed, verdict=c.verdict,
        words=c.verdict.label,
        score=S.fmt_score(c.score), max_score=S.fmt_score(c.max_score),
        message=c.message or "", diagnosis=c.diagnosis, mutated=tuple(c.mutated),
        traceback=c.traceback or "", inputs=inputs, outputs=outputs,
        run_failure=c.verdict.run_failure,
    )


def written_view(w: WrittenResult) -> WrittenView:
    return WrittenView(
        number=w.number, title=w.title, prompt=w.prompt, criteria=tuple(w.criteria),
        answer=w.answer if (w.answer is not None and w.answer.strip()) else None,
        graded=w.graded, score=S.fmt_score(w.score), max_score=S.fmt_score(w.max_score),
        items=tuple((_signed(i.points), i.label) for i in w.items),
        adjustment=_signed(w.adjustment) if w.adjustment else "",
        comment=w.comment, answer_changed=w.answer_changed,
    )


def _signed(points: float) -> str:
    return ("+" if points >= 0 else "−") + S.fmt_score(abs(points))


def question_view(q: QuestionResult) -> QuestionView:
    cases = tuple(case_view(c) for c in q.cases)
    return QuestionView(
        id=q.id, title=q.title, score=S.fmt_score(q.score), max_score=S.fmt_score(q.max_score),
        percent=_percent(q.score, q.max_score), cases=cases,
        written=written_view(q.written) if q.written is not None else None,
        passed=sum(c.passed for c in cases), total=len(cases),
        code_score=S.fmt_score(sum(c.score for c in q.cases)), code_max=S.fmt_score(q.code_max_score),
        has_wrong_values=any(o.wrong_count for c in cases for o in c.outputs),
    )


def _percent(score: float, max_score: float) -> float:
    if not max_score:
        return 0.0
    return round(max(0.0, min(100.0, 100.0 * score / max_score)), 2)


def student_context(result: SubmissionResult, *, title: str = "Homework") -> dict:
    """Everything ``student.html`` displays."""
    return dict(
        title=title,
        page_title=f"{result.student} — {title}",
        csp=_csp(None),
        student=result.student,
        file=result.file,
        score=S.fmt_score(result.score),
        max_score=S.fmt_score(result.max_score),
        percent=_percent(result.score, result.max_score),
        questions=[question_view(q) for q in result.questions],
        load_error=result.load_error or "",
        cell_failures=list(result.cell_failures),
        # loading errors that cost functions are shown as an error, not a warning
        cell_failures_severe=any(c.verdict is Verdict.MISSING for c in result.cases),
        incidents=list(result.incidents),
        run_failures=[case_view(c) for c in result.run_failures],
        output=result.output or "",
        has_hidden=any(c.visibility != "public" for c in result.cases),
        output_truncated=result.output_truncated,
        isolation=result.isolation,
        isolation_ok=result.isolation in FULL_ISOLATIONS,
        seconds=f"{result.seconds:.1f}",
        pending_written=[q.written for q in result.questions if q.written is not None and not q.written.graded],
        index_href="../index.html",
    )


# --------------------------------------------------------------------------
# index (class overview)


@dataclass(frozen=True)
class ScoreCell:
    text: str      # "—" when the student has no such question
    value: float   # for sorting
    percent: float


@dataclass(frozen=True)
class StudentRow:
    student: str
    href: str
    file: str
    cells: tuple[ScoreCell, ...]
    total: ScoreCell
    problems: tuple[str, ...]


def report_href(student: str) -> str:
    """Relative link from ``index.html`` to a student's report, URL-quoted (names may be non-ASCII)."""
    return quote(student, safe="") + "/report.html"


def _bar_chart(stats: Sequence[S.ScoreStats]) -> dict:
    """Geometry (numbers only) of the per-question mean bars."""
    row_h, top, left, width = 28, 8, 44, 300
    bars = []
    for i, s in enumerate(stats):
        y = top + i * row_h
        bars.append(dict(
            label=s.id, y=y, text_y=y + 15, mean_w=round(width * s.mean_percent / 100, 2),
            median_x=round(left + width * s.median_percent / 100, 2),
            mean=S.fmt_score(s.mean), max_score=S.fmt_score(s.max_score),
            median=S.fmt_score(s.median),
        ))
    return dict(bars=bars, left=left, width=width, height=top * 2 + row_h * len(stats),
                total_width=left + width + 90, row_h=row_h)


def _histogram_chart(bins: Sequence[S.HistogramBin]) -> dict:
    """Geometry (numbers only) of the totals histogram."""
    plot_h, left, top, bar_w, gap = 140, 36, 18, 34, 4
    peak = max([b.count for b in bins] + [1])
    bars = []
    for i, b in enumerate(bins):
        h = round(plot_h * b.count / peak, 2)
        x = left + i * (bar_w + gap)
        bars.append(dict(x=x, y=round(top + plot_h - h, 2), h=h, w=bar_w, count=b.count,
                         label=b.label, lo=S.fmt_score(b.lo), cx=x + bar_w / 2,
                         count_y=round(top + plot_h - h - 3, 2)))
    ticks = sorted({0, peak} | ({peak // 2} if peak >= 4 else set()))
    return dict(
        bars=bars, left=left, top=top, plot_h=plot_h, base=top + plot_h,
        width=left + len(bins) * (bar_w + gap) + 10, height=top + plot_h + 34,
        hi=S.fmt_score(bins[-1].hi) if bins else "0", hi_x=left + len(bins) * (bar_w + gap) - gap,
        yticks=[dict(v=t, y=round(top + plot_h - plot_h * t / peak, 2)) for t in ticks],
    )


@dataclass(frozen=True)
class WrittenProgress:
    """One written part across the class: how far manual grading is, and how the grades so far spread."""

    id: str
    title: str
    max_score: str
    graded: int
    total: int
    percent: float             # share graded
    mean: str                  # of the graded ones ("—" when none)
    bins: tuple[tuple[str, int, float], ...]   # (score band, students, bar width %)


def written_progress(results: Sequence[SubmissionResult]) -> list[WrittenProgress]:
    out: dict[str, list] = {}
    for r in results:
        for q in r.questions:
            if q.written is not None:
                out.setdefault(q.id, [q.title, q.written.max_score, []])[2].append(q.written)
    views = []
    for qid, (title, max_score, parts) in out.items():
        graded = [w.score for w in parts if w.graded]
        bins = S.histogram(graded, max_score, bins=max(1, min(int(math.ceil(max_score)), 10)))
        peak = max([b.count for b in bins] + [1])
        views.append(WrittenProgress(
            id=qid, title=title, max_score=S.fmt_score(max_score), graded=len(graded), total=len(parts),
            percent=_percent(len(graded), len(parts)),
            mean=S.fmt_score(sum(graded) / len(graded)) if graded else "—",
            bins=tuple((b.label, b.count, round(100 * b.count / peak, 2)) for b in bins)))
    return views


def index_context(results: Sequence[SubmissionResult], *, title: str = "Homework",
                  clusters: Sequence = ()) -> dict:
    """Everything ``index.html`` displays; ``clusters``: the wrong-answer clusters no known mistake explains."""
    qids = S.question_ids(results)
    rows = []
    for r in sorted(results, key=lambda r: r.student):
        cells = []
        for qid, _, qmax in qids:
            sc = S.question_score(r, qid)
            cells.append(ScoreCell("—" if sc is None else S.fmt_score(sc),
                                   -1.0 if sc is None else sc, _percent(sc or 0.0, qmax)))
        problem = S.run_problem(r)
        rows.append(StudentRow(
            student=r.student, href=report_href(r.student), file=r.file, cells=tuple(cells),
            total=ScoreCell(S.fmt_score(r.score), r.score, _percent(r.score, r.max_score)),
            problems=problem.kinds if problem else (),
        ))
    qstats = S.question_stats(results)
    total = S.total_stats(results)
    bins = S.total_histogram(results)
    pending = sum(1 for r in results for q in r.questions if q.written is not None and not q.written.graded)
    return dict(
        title=title,
        page_title=f"{title} — class overview",
        csp=_csp(SORT_JS),
        sort_js=Markup(SORT_JS),  # a constant defined above, never data
        n=len(results),
        questions=[dict(id=q, title=t, max_score=S.fmt_score(m)) for q, t, m in qids],
        rows=rows,
        qstats=qstats,
        total=total,
        bins=bins,
        hist=_histogram_chart(bins),
        bars=_bar_chart(qstats),
        failed=S.most_failed_tests(results),
        mistakes=S.common_mistakes(results),
        qtitles={q: t for q, t, _ in qids},
        problems=S.run_problems(results),
        hrefs={r.student: report_href(r.student) for r in results},
        pending_written=pending,
        written=written_progress(results),
        weak_isolation=sorted({r.isolation for r in results if r.isolation not in FULL_ISOLATIONS}),
        clusters=list(clusters)[:SHOWN_CLUSTERS], clusters_total=len(clusters), cluster_min=CLUSTER_MIN_STUDENTS,
    )


# --------------------------------------------------------------------------
# writers


def render_student_report(result: SubmissionResult, *, title: str = "Homework") -> str:
    return environment().get_template("student.html").render(**student_context(result, title=title))


def render_index(results: Sequence[SubmissionResult], *, title: str = "Homework", clusters: Sequence = ()) -> str:
    return environment().get_template("index.html").render(**index_context(results, title=title, clusters=clusters))


def _write(path: Path, text: str) -> Path:
    return write_atomic(Path(path), text)


def write_student_report(result: SubmissionResult, path: Path, *, title: str = "Homework") -> Path:
    """Write one student's feedback page to ``path`` (normally ``out/<student>/report.html``)."""
    return _write(Path(path), render_student_report(result, title=title))


def write_index(results: list[SubmissionResult], out_dir: Path, *, title: str = "Homework",
                clusters: Sequence = ()) -> Path:
    """Write the class overview ``out_dir/index.html``, linking to ``<student>/report.html``."""
    return _write(Path(out_dir) / "index.html", render_index(results, title=title, clusters=clusters))
