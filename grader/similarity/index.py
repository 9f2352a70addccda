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

Pairs come from an inverted index (fingerprint -> submissions, as sorted
runs of numpy arrays), never from all pairs: work grows with the number of
fingerprints times ``cap``, so a class of 100,000 stays feasible. A group of
``cap`` or more students sharing the same code is, by construction, "common"
and not reported. Pairs scoring at least ``MIN_LISTED`` are listed, at most
``MAX_LISTED`` of them, most similar first.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

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
#: Pairs scoring less than this are not listed (in the report or similarity.csv) ...
MIN_LISTED = 0.01
#: ... and at most this many are.
MAX_LISTED = 200_000


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
    fingerprint_keys: np.ndarray    # sorted keys (fingerprint mixed with its unit) ...
    fingerprint_df: np.ndarray      # ... and how many submissions have each

    def df(self, unit: str, fingerprint: int) -> int:
        """How many submissions have ``fingerprint`` in ``unit``."""
        with np.errstate(over="ignore"):
            key = np.uint64(fingerprint) ^ (np.uint64(self.units.index(unit)) * np.uint64(0x9E3779B97F4A7C15))
        at = int(np.searchsorted(self.fingerprint_keys, key))
        found = at < len(self.fingerprint_keys) and self.fingerprint_keys[at] == key
        return int(self.fingerprint_df[at]) if found else 0

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
        for h in set(a.spans) & set(b.spans):
            rare = h not in self.base.hashes and self.df(unit, h) < self.cap
            into_a, into_b = (rare_a, rare_b) if rare else (common_a, common_b)
            lo, hi = a.spans[h]
            into_a.update(range(lo, hi + 1))
            lo, hi = b.spans[h]
            into_b.update(range(lo, hi + 1))
        return rare_a, rare_b, common_a - rare_a, common_b - rare_b


def common_cap(n: int) -> int:
    return int(min(COMMON_MAX, max(COMMON_MIN, math.ceil(COMMON_SHARE * n))))


def _groups(keys: np.ndarray, owners: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Postings as sorted runs: keys and owners sorted by (key, owner), run starts and sizes, and
    the run of every sorted entry."""
    order = np.lexsort((owners, keys))
    keys, owners = keys[order], owners[order]
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, len(keys)])
    run_of = np.repeat(np.arange(len(starts)), sizes)
    return keys, owners, starts, sizes, run_of


def _pairs_in_runs(owners: np.ndarray, starts: np.ndarray, sizes: np.ndarray, cap: int):
    """Every pair of owners sharing a run of size 2 .. cap-1: arrays (first, second, run).
    The work is the sum over runs of size**2, bounded by cap for each entry: never all pairs."""
    firsts, seconds, runs = [], [], []
    for d in np.unique(sizes):
        if d < 2 or d >= cap:
            continue
        chosen = np.flatnonzero(sizes == d)
        members = owners[starts[chosen][:, None] + np.arange(d)]
        iu, ju = np.triu_indices(int(d), 1)
        firsts.append(members[:, iu].ravel())
        seconds.append(members[:, ju].ravel())
        runs.append(np.repeat(chosen, len(iu)))
    if not firsts:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    return np.concatenate(firsts), np.concatenate(seconds), np.concatenate(runs)


def rank_pairs(prints: Sequence[CodePrint], base: Optional[Base] = None) -> Ranking:
    """Score every pair that shares rare code or rare evidence; the most similar first."""
    base = base or Base()
    prints = sorted(prints, key=lambda p: p.student)   # index order = name order: pairs (i < j) read a, b
    n = len(prints)
    cap = common_cap(n)
    units = sorted({u for p in prints for u in p.units})
    unit_index = {u: k for k, u in enumerate(units)}
    n_units = max(1, len(units))
    base_hashes = np.fromiter(base.hashes, dtype=np.uint64, count=len(base.hashes))

    # ---- code fingerprints: (student, unit, hash) for every rare-candidate fingerprint
    hashes, owners, unit_of = [], [], []
    evidence_ids: dict[tuple, int] = {}
    ev_keys, ev_owners = [], []
    has = np.zeros((n, n_units), dtype=bool)
    for i, p in enumerate(prints):
        words: set = set()
        for name, unit in p.units.items():
            k = unit_index[name]
            has[i, k] = True
            hashes.extend(unit.spans)
            owners.extend([i] * len(unit.spans))
            unit_of.extend([k] * len(unit.spans))
            words.update(("identifier", x) for x in unit.identifiers - base.identifiers)
            words.update(("comment", x) for x in unit.comments - base.comments)
        words.update(("output", case, digest) for case, digest in p.wrong_outputs.items())
        for word in words:
            ev_keys.append(evidence_ids.setdefault(word, len(evidence_ids)))
            ev_owners.append(i)
    hashes_a = np.array(hashes, dtype=np.uint64)
    owners_a = np.array(owners, dtype=np.int64)
    units_a = np.array(unit_of, dtype=np.int64)
    keep = ~np.isin(hashes_a, base_hashes)
    hashes_a, owners_a, units_a = hashes_a[keep], owners_a[keep], units_a[keep]
    with np.errstate(over="ignore"):
        keys_a = hashes_a ^ (units_a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    log_cap = math.log(cap)

    def weights(sizes: np.ndarray) -> np.ndarray:
        return np.where(sizes < cap, log_cap - np.log(np.maximum(sizes, 1)), 0.0)

    keys_s, owners_s, starts, sizes, run_of = _groups(keys_a, owners_a)
    units_s = units_a[np.lexsort((owners_a, keys_a))]
    run_weight = weights(sizes)
    mass = np.bincount(owners_s * n_units + units_s, weights=run_weight[run_of],
                       minlength=n * n_units).reshape(n, n_units) if n else np.zeros((0, n_units))
    first, second, run = _pairs_in_runs(owners_s, starts, sizes, cap)
    run_unit = units_s[starts] if len(starts) else np.zeros(0, dtype=np.int64)
    cell = (first * n + second) * n_units + run_unit[run]
    cells, cell_inverse = np.unique(cell, return_inverse=True)
    cell_shared = np.bincount(cell_inverse, weights=run_weight[run], minlength=len(cells))

    # ---- other evidence (identifiers, comments, wrong outputs): the same runs, no units
    ev_keys_s, ev_owners_s, ev_starts, ev_sizes, _ = _groups(np.array(ev_keys, dtype=np.int64),
                                                           np.array(ev_owners, dtype=np.int64))
    ev_first, ev_second, ev_run = _pairs_in_runs(ev_owners_s, ev_starts, ev_sizes, cap)
    ev_pair = ev_first * n + ev_second
    ev_weight = weights(ev_sizes)[ev_run]

    # ---- every candidate pair, scored at once
    pairs_code = cells // n_units
    candidates = np.unique(np.concatenate([pairs_code, ev_pair]))
    P = len(candidates)
    shared = np.zeros((P, n_units))
    shared[np.searchsorted(candidates, pairs_code), cells % n_units] = cell_shared
    strength = np.bincount(np.searchsorted(candidates, ev_pair), weights=ev_weight, minlength=P)
    ia, ib = candidates // n, candidates % n
    union = mass[ia] + mass[ib] - shared
    valid = has[ia] & has[ib] & (union > 1e-12)
    safe_union = np.where(valid, union, 1.0)
    similarity = np.where(valid, np.minimum(1.0, shared / safe_union), 0.0)
    omega = np.where(valid, np.log1p(np.where(valid, union, 0.0)), 0.0)
    total = omega.sum(axis=1)
    code = np.divide((omega * similarity).sum(axis=1), total, out=np.zeros(P), where=total > 0)
    extra = 1.0 - np.exp(-strength / EVIDENCE_SCALE)
    score = code + (1.0 - code) * EVIDENCE_SHARE * extra

    listed = np.flatnonzero(score >= MIN_LISTED)
    listed = listed[np.lexsort((ib[listed], ia[listed], -code[listed], -score[listed]))][:MAX_LISTED]
    words_of: dict[int, list[tuple]] = defaultdict(list)
    if len(listed):
        words = list(evidence_ids)
        wanted = np.isin(ev_pair, candidates[listed])
        for pair_code, run_index in zip(ev_pair[wanted].tolist(), ev_run[wanted].tolist()):
            words_of[pair_code].append(words[int(ev_keys_s[ev_starts[run_index]])])
    pairs = []
    for row in listed.tolist():
        functions = [FunctionMatch(units[k], float(similarity[row, k]), float(shared[row, k]), float(union[row, k]))
                     for k in np.flatnonzero(valid[row]).tolist()]
        functions.sort(key=lambda f: (-f.similarity, -f.shared, f.name))
        found = words_of.get(int(candidates[row]), [])
        pairs.append(Pair(
            a=prints[int(ia[row])].student, b=prints[int(ib[row])].student, score=float(score[row]),
            code_score=float(code[row]), evidence_score=float(extra[row]), functions=functions,
            identifiers=sorted(w[1] for w in found if w[0] == "identifier"),
            comments=sorted(w[1] for w in found if w[0] == "comment"),
            wrong_outputs=sorted(w[1] for w in found if w[0] == "output")))
    return Ranking(pairs=pairs, students=n, cap=cap, candidates=P, prints={p.student: p for p in prints},
                   base=base, units=units, fingerprint_keys=keys_s[starts] if len(starts) else keys_s,
                   fingerprint_df=sizes)


