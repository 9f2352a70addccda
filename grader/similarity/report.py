"""``similarity.html`` and ``similarity.csv``: the ranked pairs, for a person to read.

The page is self-contained like the other reports (inline CSS, no script,
a Content-Security-Policy that allows nothing else), rendered by the same
jinja2 environment with autoescape on. Code and names from submissions are
text: escaped, with control and bidirectional-override characters shown
as visible escapes. The wording is "similar", never a verdict.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from grader import __version__
from grader.similarity.fingerprint import OTHER
from grader.similarity.index import COMMON_SHARE, SIMILAR_FUNCTION, Pair, Ranking

#: Pairs listed in the page's table.
TABLE_PAIRS = 100
#: Pairs shown side by side below the table (those with a score of at least DETAIL_MIN_SCORE).
DETAIL_PAIRS = 12
DETAIL_MIN_SCORE = 0.15
#: Functions shown side by side per pair, most similar first.
DETAIL_FUNCTIONS = 6

CSV_COLUMNS = ["student_a", "student_b", "score", "code_score", "evidence_score",
               "similar_functions", "functions_compared", "functions", "shared_identifiers",
               "shared_comments", "shared_wrong_outputs"]

_BIDI = {"\u061c", "\u200e", "\u200f", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
         "\u2066", "\u2067", "\u2068", "\u2069"}


def visible(text: str) -> str:
    """Control and bidirectional-formatting characters as ``\\x1b`` / ``\\u202e`` escapes."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch in _BIDI or (unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\t\n"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


def safe_cell(value) -> str:
    """A CSV cell a spreadsheet shows as text: no leading ``= + - @``, tab or carriage return."""
    text = visible(str(value)).replace("\n", " ")
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


def _pct(x: float) -> str:
    return f"{round(100 * x)}%"


def _fmt(x: float) -> str:
    return f"{x:.3f}"


@dataclass
class Line:
    number: str      # line number in the student's file ("" for other code)
    text: str
    mark: str        # "rare", "common" or ""


@dataclass
class Side:
    student: str
    where: str
    lines: list[Line]


@dataclass
class FunctionView:
    name: str
    similarity: str
    left: Side
    right: Side


def _side(ranking: Ranking, student: str, unit: str, rare: set[int], common: set[int]) -> Side:
    u = ranking.prints[student].units[unit]
    lines = []
    for i, text in enumerate(u.lines):
        number = str(u.first_line + i) if u.first_line else ""
        mark = "rare" if i in rare else "common" if i in common else ""
        lines.append(Line(number, visible(text.expandtabs(4)), mark))
    return Side(student, visible(u.where), lines)


def _functions(ranking: Ranking, pair: Pair) -> list[FunctionView]:
    views = []
    for match in pair.functions[:DETAIL_FUNCTIONS]:
        if match.similarity <= 0.0:
            continue
        rare_a, rare_b, common_a, common_b = ranking.regions(pair, match.name)
        views.append(FunctionView(
            name="helpers and module code" if match.name == OTHER else match.name,
            similarity=_pct(match.similarity),
            left=_side(ranking, pair.a, match.name, rare_a, common_a),
            right=_side(ranking, pair.b, match.name, rare_b, common_b)))
    return views


def _row(rank: int, pair: Pair) -> dict:
    similar = pair.similar_functions
    return dict(
        rank=rank, a=visible(pair.a), b=visible(pair.b), score=_fmt(pair.score), code=_fmt(pair.code_score),
        similar=len(similar), compared=len(pair.functions),
        similar_names=", ".join("helpers" if f.name == OTHER else f.name for f in similar),
        identifiers=[visible(i) for i in pair.identifiers], comments=[visible(c) for c in pair.comments],
        wrong_outputs=pair.wrong_outputs, anchor=f"pair-{rank}")


def similarity_context(ranking: Ranking, *, title: str) -> dict:
    from grader.outputs.report import _csp

    rows = [_row(k, p) for k, p in enumerate(ranking.pairs[:TABLE_PAIRS], start=1)]
    details = []
    for row, pair in zip(rows, ranking.pairs[:DETAIL_PAIRS]):
        if pair.score < DETAIL_MIN_SCORE:
            break
        details.append(dict(row=row, functions=_functions(ranking, pair)))
    return dict(
        title=title, page_title=f"{title} — similarity", csp=_csp(None), version=__version__,
        n=ranking.students, candidates=ranking.candidates, cap=ranking.cap,
        common_share=_pct(COMMON_SHARE), similar_at=_pct(SIMILAR_FUNCTION),
        rows=rows, details=details, unparsable=[
            dict(student=visible(s), problems=[visible(x) for x in p.unparsable])
            for s, p in sorted(ranking.prints.items()) if p.unparsable])


def render_similarity(ranking: Ranking, *, title: str) -> str:
    from grader.outputs.report import environment

    return environment().get_template("similarity.html").render(**similarity_context(ranking, title=title))


def similarity_csv(ranking: Ranking) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for pair in ranking.pairs:  # every listed pair (index.MIN_LISTED, MAX_LISTED)
        writer.writerow([safe_cell(x) for x in (
            pair.a, pair.b, f"{pair.score:.4f}", f"{pair.code_score:.4f}", f"{pair.evidence_score:.4f}",
            len(pair.similar_functions), len(pair.functions),
            "; ".join(f"{'helpers' if f.name == OTHER else f.name} {f.similarity:.2f}" for f in pair.functions
                      if f.similarity >= 0.005),
            "; ".join(pair.identifiers), "; ".join(pair.comments), "; ".join(pair.wrong_outputs))])
    return buffer.getvalue()


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_similarity(ranking: Ranking, out_dir: Path, *, title: str) -> tuple[Path, Path]:
    """Write ``out_dir/similarity.html`` and ``out_dir/similarity.csv``."""
    out_dir = Path(out_dir)
    html, table = out_dir / "similarity.html", out_dir / "similarity.csv"
    _write_atomic(html, render_similarity(ranking, title=title))
    _write_atomic(table, similarity_csv(ranking))
    return html, table
