"""Fingerprints of one submission's code, per handout function, from Python's own parser.

Every handout function (``batchnorm_forward``, ``baum_welch``, ...) is taken
from a ``.py`` module or a notebook's code cells (the last definition wins,
as when the cells run) and parsed with :mod:`ast`; whatever else the
submission defines (helpers, classes, module code) is one more unit,
:data:`OTHER`. A unit becomes a sequence of normalised tokens: AST node
types in source order, every local variable and parameter as ``V``, names
the submission defines at module level as ``G``, import aliases resolved to
what they import (``np.mean`` and ``numpy.mean`` are the same), strings as
``S``; library names, attributes, keyword names and numbers are kept.
Comments, docstrings, formatting and names are gone, so renaming,
reformatting, re-commenting and reordering the functions change nothing.

The token sequence is cut into k-grams of :data:`K` tokens whose hashes are
*winnowed* (Schleimer, Wilkerson & Aiken 2003, as in MOSS): of every
:data:`WINDOW` consecutive k-gram hashes the smallest is kept, so any shared
run of ``K + WINDOW - 1`` tokens is guaranteed to leave a common
fingerprint. Each fingerprint remembers the lines it covers, to mark
matching regions in the report.

Beside the normalised fingerprints, the raw evidence that normalisation
throws away is kept per unit: the local identifiers as typed and the
comments (normalised for whitespace and case). Nothing here runs the code.
"""

from __future__ import annotations

import ast
import hashlib
import re
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

#: Tokens per k-gram. A statement such as ``mu = x.mean(axis=0)`` is about 7 tokens.
K = 7
#: Winnowing window (k-grams). A shared run of K + WINDOW - 1 = 10 tokens always leaves a fingerprint.
WINDOW = 4
#: The unit holding everything a submission defines besides the handout functions.
OTHER = "(other code)"
#: Identifiers shorter than this are not evidence (``x``, ``mu``, ``n``: everyone's).
MIN_IDENTIFIER = 4
#: Comments shorter than this (after normalisation) are not evidence.
MIN_COMMENT = 8

_WORDS = re.compile(r"\s+")
_ANSWER = re.compile(r"^ANSWER_Q\d+$")


@dataclass
class UnitPrint:
    """One function (or the other code) of one submission, ready for the class index."""

    name: str                       # "batchnorm_forward" or OTHER
    where: str                      # "alice.ipynb [cell 3]"
    first_line: int                 # 1-based line of the unit's first line in ``where``
    lines: list[str]                # the unit's source lines as handed in
    spans: dict[int, tuple[int, int]] = field(default_factory=dict)  # fingerprint -> 0-based lines
    identifiers: frozenset[str] = frozenset()
    comments: frozenset[str] = frozenset()
    tokens: int = 0


@dataclass
class CodePrint:
    """Everything similarity knows about one submission."""

    student: str
    units: dict[str, UnitPrint] = field(default_factory=dict)
    wrong_outputs: dict[str, int] = field(default_factory=dict)  # case number -> digest of the outputs
    unparsable: list[str] = field(default_factory=list)         # "cell 4: invalid syntax (line 2)"


def fingerprint_sources(student: str, units: Iterable[dict], handout: Iterable[str]) -> CodePrint:
    """Fingerprint a submission's code units (``{"cell", "filename", "source"}`` as read for the worker)."""
    wanted = set(handout)
    found: dict[str, tuple[ast.AST, list[str], str]] = {}
    other: list[tuple[ast.AST, list[str], str]] = []
    defined: set[str] = set()
    aliases: dict[str, str] = {}
    printed = CodePrint(student)
    for unit in units:
        source = unit.get("source") or ""
        where = str(unit.get("filename") or student)
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError) as exc:  # a broken cell is skipped, the rest still counts
            printed.unparsable.append(f"{where}: {getattr(exc, 'msg', exc)}")
            continue
        lines = source.split("\n")
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                _aliases(node, aliases)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in wanted:
                found[node.name] = (node, lines, where)
                continue
            if _is_docstring(node) or _is_answer(node):
                continue
            defined.update(_defines(node))
            other.append((node, lines, where))
    made = [_unit_print(name, [part], defined, aliases) for name, part in found.items()]
    if other:
        made.append(_unit_print(OTHER, other, defined, aliases))
    for (unit, _, _), spans in zip(made, _winnow([(tokens, lines) for _, tokens, lines in made])):
        unit.spans = spans
        printed.units[unit.name] = unit
    return printed


def base_hashes(sources: Iterable[str]) -> set[int]:
    """Raw k-gram hashes of code everyone may have (reference solutions, the template)."""
    out: set[int] = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        aliases: dict[str, str] = {}
        defined: set[str] = set()
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                _aliases(node, aliases)
            else:
                defined.update(_defines(node))
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            tokens, _, _ = _tokens([node], defined, aliases)
            out.update(all_kgrams(tokens))
    return out


def base_words(sources: Iterable[str]) -> tuple[set[str], set[str]]:
    """Identifiers and comments of the base code: not evidence when two students share them."""
    identifiers: set[str] = set()
    comments: set[str] = set()
    for source in sources:
        comments.update(_comments(source.split("\n"), 0, source.count("\n")))
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                identifiers.add(node.id)
            elif isinstance(node, ast.arg):
                identifiers.add(node.arg)
    return identifiers, comments


# --------------------------------------------------------------------------- internals

def _aliases(node: ast.AST, aliases: dict[str, str]) -> None:
    if isinstance(node, ast.Import):
        for a in node.names:
            aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
    elif isinstance(node, ast.ImportFrom):
        for a in node.names:
            aliases[a.asname or a.name] = f"{node.module or ''}.{a.name}"


def _is_docstring(node: ast.AST) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


def _is_answer(node: ast.AST) -> bool:
    return isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and _ANSWER.match(t.id)
                                                for t in node.targets)


def _defines(node: ast.AST) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    names = set()
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for t in targets:
            names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return names


#: Per node class: its token and the fields to visit (contexts and type comments are not code).
_SHAPE: dict[type, tuple[str, tuple[str, ...]]] = {}


def _shape(cls: type) -> tuple[str, tuple[str, ...]]:
    shape = _SHAPE.get(cls)
    if shape is None:
        fields = tuple(f for f in cls._fields if f not in ("ctx", "type_comment", "name", "attr", "arg"))
        shape = _SHAPE[cls] = (cls.__name__, fields)
    return shape


def _tokens(nodes: list[ast.AST], defined: set[str],
            aliases: dict[str, str]) -> tuple[list[str], list[int], set[str]]:
    """Normalised tokens of ``nodes`` in source order, the line (1-based) of each, and the
    identifiers the code chose (names it assigns that are not parameters).

    Names are emitted as written and resolved at the end, once every name the code binds
    (parameters, assignments, loop variables, nested functions) is known: those are ``V``.
    """
    tokens: list[str] = []
    lines: list[int] = []
    names: list[int] = []         # positions of Name tokens, resolved at the end
    bound: set[str] = set()
    params: set[str] = set()
    emit_t, emit_l = tokens.append, lines.append
    Name, Constant, arg, keyword, Attribute = ast.Name, ast.Constant, ast.arg, ast.keyword, ast.Attribute
    Load = ast.Load
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)

    def visit(node: ast.AST, line: int) -> None:
        cls = type(node)
        line = getattr(node, "lineno", line)
        if cls is Name:
            if type(node.ctx) is not Load:
                bound.add(node.id)
            names.append(len(tokens))
            emit_t(node.id); emit_l(line)
            return
        if cls is Constant:
            value = node.value
            emit_t("S" if isinstance(value, (str, bytes)) else repr(value)); emit_l(line)
            return
        token, fields = _shape(cls)
        emit_t(token); emit_l(line)
        if cls is Attribute:
            emit_t(node.attr); emit_l(line)
        elif cls is keyword:
            emit_t(f"{node.arg}="); emit_l(line)
        elif cls is arg:
            params.add(node.arg)  # a parameter's name is prescribed, not evidence
            return
        elif cls in defs:
            body = node.body
            if body and _is_docstring(body[0]):
                body = body[1:]
            if cls is not ast.ClassDef:
                bound.add(node.name)
                visit(node.args, line)
            for child in node.decorator_list:
                visit(child, line)
            for child in body:
                visit(child, line)
            return
        for name in fields:
            value = getattr(node, name, None)
            if value is None:
                continue
            if type(value) is list:
                for item in value:
                    if isinstance(item, ast.AST):
                        visit(item, line)
            elif isinstance(value, ast.AST):
                visit(value, line)

    for node in nodes:
        visit(node, getattr(node, "lineno", 1))
    for i in names:
        name = tokens[i]
        tokens[i] = "V" if name in bound or name in params else \
            aliases.get(name) or ("G" if name in defined else name)
    return tokens, lines, bound - params


#: Token -> a 64-bit id that is the same in every process (``hash()`` of a str is salted per run,
#: which would make winnowing pick other k-grams on every run).
_TOKEN_IDS: dict[str, int] = {}
_TOKEN_CACHE_LIMIT = 1_000_000
_MULTIPLIER = np.uint64(0x100000001B3)  # FNV-1a 64-bit prime: a good spread for the polynomial


def _token_id(token: str) -> int:
    value = _TOKEN_IDS.get(token)
    if value is None:
        if len(_TOKEN_IDS) > _TOKEN_CACHE_LIMIT:
            _TOKEN_IDS.clear()
        value = _TOKEN_IDS[token] = int.from_bytes(
            hashlib.blake2b(token.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")
    return value


def _ids(tokens: list[str]) -> np.ndarray:
    known = _TOKEN_IDS.get
    return np.array([known(t) or _token_id(t) for t in tokens], dtype=np.uint64)


def _polynomial(ids: np.ndarray, k: int) -> np.ndarray:
    """Hash of every run of ``k`` consecutive ids (a polynomial modulo 2**64)."""
    m = len(ids) - k + 1
    with np.errstate(over="ignore"):
        hashes = ids[:m].copy()
        for j in range(1, k):
            hashes = hashes * _MULTIPLIER + ids[j:j + m]
    return hashes


def all_kgrams(tokens: list[str]) -> list[int]:
    """Every k-gram hash of ``tokens`` (not winnowed): what base code subtracts."""
    if not tokens:
        return []
    return _polynomial(_ids(tokens), min(K, len(tokens))).tolist()


def _winnow(units: list[tuple[list[str], list[int]]]) -> list[dict[int, tuple[int, int]]]:
    """Winnowed fingerprints of several token sequences at once (one submission's units):
    for each, ``{k-gram hash: (first line, last line)}``.

    The sequences are hashed as one array; k-grams that cross from one unit into the next and
    windows that do are never used, and a unit with fewer k-grams than a window keeps its
    smallest: the same choice as winnowing each unit alone, at the numpy cost of one.
    """
    out: list[dict[int, tuple[int, int]]] = [{} for _ in units]
    long_units = [u for u, (tokens, _) in enumerate(units) if len(tokens) >= K]
    for u, (tokens, lines) in enumerate(units):
        if 0 < len(tokens) < K:  # a unit shorter than a k-gram is one fingerprint, all of it
            out[u][_polynomial(_ids(tokens), len(tokens)).tolist()[0]] = (min(lines), max(lines))
    if not long_units:
        return out
    tokens = [t for u in long_units for t in units[u][0]]
    lines = np.fromiter((x for u in long_units for x in units[u][1]), dtype=np.int64, count=len(tokens))
    unit_of = np.repeat(np.arange(len(long_units)), [len(units[u][0]) for u in long_units])
    hashes = _polynomial(_ids(tokens), K)
    m = len(hashes)
    inside = unit_of[:m] == unit_of[K - 1:]   # k-grams that do not cross into the next unit
    start_unit = unit_of[:m]
    chosen = np.zeros(0, dtype=np.int64)
    if m >= WINDOW:
        # the rightmost minimum of every window of WINDOW k-grams inside one unit, so that
        # consecutive windows keep choosing the same k-gram
        span = m - WINDOW + 1
        whole = inside[:span] & inside[WINDOW - 1:] & (start_unit[:span] == start_unit[WINDOW - 1:])
        best, at = hashes[:span], np.zeros(span, dtype=np.int64)
        for j in range(1, WINDOW):
            candidate = hashes[j:j + span]
            better = candidate <= best
            best = np.where(better, candidate, best)
            at = np.where(better, j, at)
        chosen = np.unique((np.arange(span) + at)[whole])
    owner = unit_of[chosen]
    short = np.setdiff1d(np.arange(len(long_units)), owner)
    if len(short):  # units with fewer k-grams than a window: their rightmost smallest one
        extra = []
        for u in short.tolist():
            positions = np.flatnonzero(inside & (start_unit == u))
            values = hashes[positions]
            extra.append(int(positions[len(values) - 1 - int(np.argmin(values[::-1]))]))
        chosen = np.unique(np.concatenate([chosen, np.array(extra, dtype=np.int64)]))
        owner = unit_of[chosen]
    windows = np.lib.stride_tricks.sliding_window_view(lines, K)[chosen]
    for u, h, lo, hi in zip(owner.tolist(), hashes[chosen].tolist(), windows.min(axis=1).tolist(),
                            windows.max(axis=1).tolist()):
        out[long_units[u]][h] = (lo, hi)
    return out


def _comments(lines: list[str], first: int, last: int) -> set[str]:
    """Comments on lines ``first..last`` (0-based), lowercased with whitespace collapsed.

    A ``#`` after a quote on the same line is skipped (it may be inside a string): a comment
    missed costs a little evidence, a string taken for a comment would invent some.
    """
    out = set()
    for line in lines[first:last + 1]:
        at = line.find("#")
        if at < 0 or "'" in line[:at] or '"' in line[:at]:
            continue
        text = _WORDS.sub(" ", line[at + 1:]).strip().casefold()
        if len(text) >= MIN_COMMENT:
            out.add(text)
    return out


def _unit_print(name: str, parts: list[tuple[ast.AST, list[str], str]], defined: set[str],
                aliases: dict[str, str]) -> tuple[UnitPrint, list[str], list[int]]:
    """``parts`` (node, its file's lines, where) as one unit shown as their lines in order, with its
    tokens and their lines (to be winnowed with the submission's other units)."""
    tokens: list[str] = []
    token_lines: list[int] = []   # 0-based, in the displayed lines
    display: list[str] = []
    comment_set: set[str] = set()
    named: set[str] = set()
    for node, lines, _ in parts:
        first = _first_line(node)
        last = getattr(node, "end_lineno", None) or node.lineno
        offset = len(display) - first
        node_tokens, node_lines, chosen = _tokens([node], defined, aliases)
        named |= chosen
        tokens += node_tokens
        token_lines += [line + offset for line in node_lines]
        display += lines[first - 1:last]
        comment_set |= _comments(lines, first - 1, last - 1)
    if name == OTHER:
        identifiers = frozenset(n for n in defined if len(n) >= MIN_IDENTIFIER)
    else:
        identifiers = frozenset(n for n in named if len(n) >= MIN_IDENTIFIER and n != name)
    node, _, where = parts[0]
    unit = UnitPrint(name=name, where=where, first_line=_first_line(node) if name != OTHER else 0,
                     lines=display, identifiers=identifiers, comments=frozenset(comment_set),
                     tokens=len(tokens))
    return unit, tokens, token_lines


def _first_line(node: ast.AST) -> int:
    decorators = getattr(node, "decorator_list", None) or []
    return min([node.lineno] + [d.lineno for d in decorators])
