"""The class index: which pairs of submissions share code that is rare in this class.

Every student writes the same fourteen small functions, so most shared code
is convergence, not copying. What counts as evidence here:

- **Not** code of the reference package or the template (``base``), and
  **not** fingerprints common to much of the class: a fingerprint found in
  ``cap = clamp(COMMON_SHARE * N, COMMON_MIN, COMMON_MAX)`` submissions or
  more weighs nothing (MOSS ``-m``, Dolos ``-M``).
- The rest weighs by rarity, ``log(cap / df)`` for a fingerprint ``df``
  submissions share (IDF-like, JPlag's frequency weighting made explicit),
  so a function everyone writes alike has no weight at all.
- Per function, a pair's similarity is the weighted Jaccard of its rare
  fingerprints; the code score averages the functions, each weighted by
  ``log(1 + its rare weight)``, so a pair similar in many functions ranks
  above a pair identical in one long one.
- Evidence normalisation throws away, weighted the same way: identifiers
  chosen by the student, comments, and identical wrong outputs on hidden
  cases at full precision. It raises the score by at most
  ``EVIDENCE_SHARE`` of what the code score leaves.

Pairs come from an inverted index (fingerprint -> submissions), never from
all pairs: work grows with the number of fingerprints times ``cap``, so a
class of 100,000 stays feasible. A group of more than ``cap`` students
sharing the same code is, by construction, "common" and not reported.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional, Sequence

from grader.similarity.fingerprint import CodePrint

#: A fingerprint found in this share of the class (or more) is common code, not evidence.
COMMON_SHARE = 0.1
#: ... but never fewer than this many students (small classes), ...
COMMON_MIN = 4
#: ... nor more: this bounds the work per fingerprint (pairs <= COMMON_MAX**2 / 2).
COMMON_MAX = 64
#: Evidence weight (sum of rarity weights of shared identifiers, comments, wrong outputs)
#: that counts as 1 - 1/e of full evidence.
EVIDENCE_SCALE = 12.0
#: Evidence raises a pair's score by at most this share of what the code score leaves.
EVIDENCE_SHARE = 0.5
#: A function whose similarity reaches this counts as "similar" in the summaries.
SIMILAR_FUNCTION = 0.5


@dataclass
class Base:
    """What every student may legitimately share: the reference solutions and the template."""

    hashes: set[int] = field(default_factory=set)
    identifiers: set[str] = field(default_factory=set)
    comments: set[str] = field(default_factory=set)


@dataclass
class FunctionMatch:
    name: str
    similarity: float   # weighted Jaccard of the rare fingerprints, 0..1
    shared: float       # rarity weight both have
    union: float        # rarity weight either has


@dataclass
class Pair:
    a: str
    b: str
    score: float                    # 0..1: code score raised by the other evidence
    code_score: float
    evidence_score: float
    functions: list[FunctionMatch]  # every function both define with rare code, most similar first
    identifiers: list[str] = field(default_factory=list)   # shared rare identifiers
    comments: list[str] = field(default_factory=list)      # shared rare comments
    wrong_outputs: list[str] = field(default_factory=list)  # hidden cases with identical wrong outputs

    @property
    def similar_functions(self) -> list[FunctionMatch]:
        return [f for f in self.functions if f.similarity >= SIMILAR_FUNCTION]


@dataclass
class Ranking:
    pairs: list[Pair]           # most similar first
    students: int
    cap: int                    # fingerprints in this many submissions or more are common
    candidates: int             # pairs sharing at least one rare fingerprint
    prints: dict[str, CodePrint]
    base: Base
    units: list[str]
    df: dict[tuple[int, int], int]  # (unit index, fingerprint) -> submissions that have it

    def regions(self, pair: Pair, unit: str) -> tuple[set[int], set[int], set[int], set[int]]:
        """Lines (0-based, of each side's shown unit) covered by shared fingerprints: rare
        ones (the evidence) and common or base ones (shared by many, or in the reference)."""
        a, b = self.prints[pair.a].units.get(unit), self.prints[pair.b].units.get(unit)
        rare_a: set[int] = set()
        rare_b: set[int] = set()
        common_a: set[int] = set()
        common_b: set[int] = set()
        if a is None or b is None:
            return rare_a, rare_b, common_a, common_b
        k = self.units.index(unit)
        for h in set(a.spans) & set(b.spans):
            rare = h not in self.base.hashes and self.df.get((k, h), 0) < self.cap
            into_a, into_b = (rare_a, rare_b) if rare else (common_a, common_b)
            lo, hi = a.spans[h]
            into_a.update(range(lo, hi + 1))
            lo, hi = b.spans[h]
            into_b.update(range(lo, hi + 1))
        return rare_a, rare_b, common_a - rare_a, common_b - rare_b


def common_cap(n: int) -> int:
    return int(min(COMMON_MAX, max(COMMON_MIN, math.ceil(COMMON_SHARE * n))))


def rank_pairs(prints: Sequence[CodePrint], base: Optional[Base] = None) -> Ranking:
    """Score every pair that shares rare code or rare evidence; the most similar first."""
    base = base or Base()
    n = len(prints)
    cap = common_cap(n)
    units = sorted({u for p in prints for u in p.units})
    unit_index = {u: k for k, u in enumerate(units)}
    n_units = len(units)

    code_post: dict[tuple[int, int], list[int]] = defaultdict(list)
    evidence_post: dict[tuple, list[int]] = defaultdict(list)
    for i, p in enumerate(prints):
        identifiers: set[str] = set()
        comments: set[str] = set()
        for name, unit in p.units.items():
            k = unit_index[name]
            for h in unit.spans:
                if h not in base.hashes:
                    code_post[(k, h)].append(i)
            identifiers |= unit.identifiers
            comments |= unit.comments
        for ident in identifiers - base.identifiers:
            evidence_post[("identifier", ident)].append(i)
        for text in comments - base.comments:
            evidence_post[("comment", text)].append(i)
        for case, digest in p.wrong_outputs.items():
            evidence_post[("output", case, digest)].append(i)

    log_cap = math.log(cap)
    weights_by_df = [0.0] + [max(0.0, log_cap - math.log(df)) for df in range(1, cap + 1)]

    def weight(df: int) -> float:
        return weights_by_df[df] if df < cap else 0.0

    # Each student's rare weight per unit (the Jaccard denominators).
    mass = [[0.0] * n_units for _ in range(n)]
    shared: dict[int, float] = defaultdict(float)     # (i * n + j) * n_units + unit -> weight
    for (k, _), students in code_post.items():
        w = weight(len(students))
        if w <= 0.0:
            continue
        for i in students:
            mass[i][k] += w
        if len(students) > 1:
            for x in range(len(students)):
                row = students[x] * n
                for y in range(x + 1, len(students)):
                    shared[(row + students[y]) * n_units + k] += w
    evidence: dict[int, list[tuple]] = defaultdict(list)
    for key, students in evidence_post.items():
        w = weight(len(students))
        if w <= 0.0 or len(students) < 2:
            continue
        for x in range(len(students)):
            row = students[x] * n
            for y in range(x + 1, len(students)):
                evidence[row + students[y]].append((key, w))

    by_pair: dict[int, dict[int, float]] = defaultdict(dict)
    for key, w in shared.items():
        pair, k = divmod(key, n_units)
        by_pair[pair][k] = w
    for pair in evidence:
        by_pair.setdefault(pair, {})

    pairs = []
    for pair, shared_units in by_pair.items():
        i, j = divmod(pair, n)
        pairs.append(_score(prints[i], prints[j], mass[i], mass[j], shared_units, units,
                            evidence.get(pair, [])))
    pairs.sort(key=lambda p: (-p.score, -p.code_score, p.a, p.b))
    return Ranking(pairs=pairs, students=n, cap=cap, candidates=len(by_pair),
                   prints={p.student: p for p in prints}, base=base, units=units,
                   df={key: len(students) for key, students in code_post.items()})


def _score(a: CodePrint, b: CodePrint, mass_a: list[float], mass_b: list[float],
           shared_units: dict[int, float], units: list[str], evidence: list[tuple]) -> Pair:
    functions = []
    total = weighted = 0.0
    for k, name in enumerate(units):
        if name not in a.units or name not in b.units:
            continue
        both = shared_units.get(k, 0.0)
        union = mass_a[k] + mass_b[k] - both
        if union <= 1e-12:
            continue  # nothing rare in either: this function says nothing about the pair
        similarity = min(1.0, both / union)
        omega = math.log1p(union)
        total += omega
        weighted += omega * similarity
        functions.append(FunctionMatch(name, similarity, both, union))
    code = weighted / total if total else 0.0
    functions.sort(key=lambda f: (-f.similarity, -f.shared, f.name))
    strength = sum(w for _, w in evidence)
    extra = 1.0 - math.exp(-strength / EVIDENCE_SCALE)
    score = code + (1.0 - code) * EVIDENCE_SHARE * extra
    first, second = (a, b) if a.student <= b.student else (b, a)
    return Pair(
        a=first.student, b=second.student, score=score, code_score=code, evidence_score=extra,
        functions=functions,
        identifiers=sorted(k[1] for k, _ in evidence if k[0] == "identifier"),
        comments=sorted(k[1] for k, _ in evidence if k[0] == "comment"),
        wrong_outputs=sorted(k[1] for k, _ in evidence if k[0] == "output"))
