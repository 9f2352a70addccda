"""Near-identical written answers, grouped so a grader can apply one grade to the group.

Answers are normalised (NFKC, case-folded, whitespace and punctuation dropped, so full- and
half-width forms agree), cut into character 3-grams (no word segmenter needed for mixed
Chinese and English) and two answers are near-identical when the Jaccard similarity of their
3-gram sets is at least ``NEAR_IDENTICAL``. Candidate pairs come from MinHash banding (LSH),
so a class of 1,000 distinct answers is not compared pair by pair; every candidate is then
checked exactly. Groups are the connected components of near-identical pairs.
"""

from __future__ import annotations

import unicodedata
import zlib
from collections import defaultdict
from typing import Mapping, Optional

import numpy as np

#: Jaccard similarity of character 3-grams from which two answers count as near-identical.
NEAR_IDENTICAL = 0.85
_SHINGLE = 3
_BANDS, _ROWS = 16, 6          # 96 MinHash values: a pair at J=0.85 is a candidate with p > 0.999


def normalise(text: str) -> str:
    """The answer as compared: NFKC, case-folded, without whitespace or punctuation."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return "".join(ch for ch in folded if unicodedata.category(ch)[0] not in "ZPC")


def _shingles(norm: str) -> frozenset[str]:
    if len(norm) <= _SHINGLE:
        return frozenset([norm]) if norm else frozenset()
    return frozenset(norm[i:i + _SHINGLE] for i in range(len(norm) - _SHINGLE + 1))


def _near_identical(a: frozenset, b: frozenset) -> bool:
    small, large = sorted((len(a), len(b)))
    if small < NEAR_IDENTICAL * large:       # the Jaccard index is at most small/large
        return False
    inter = len(a & b)
    return inter >= NEAR_IDENTICAL * (len(a) + len(b) - inter)


def _minhash(shingles: frozenset[str], a: np.ndarray, b: np.ndarray) -> np.ndarray:
    values = np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=np.uint64, count=len(shingles))
    # (a*x + b) mod p over Python ints would be slow; uint64 wrap-around is a fine hash family here.
    hashed = values[None, :] * a[:, None] + b[:, None]
    return hashed.min(axis=1)


def group_answers(answers: Mapping[str, Optional[str]]) -> dict[str, int]:
    """``{student: group number}`` for every student whose answer has a near-identical other.

    Group numbers start at 1, the largest group first; students in no group are left out, and
    so are missing or empty answers (an empty answer is not "the same answer").
    """
    by_norm: dict[str, list[str]] = defaultdict(list)
    for student, text in answers.items():
        norm = normalise(text or "")
        if norm:
            by_norm[norm].append(student)
    uniques = list(by_norm)
    shingles = [_shingles(u) for u in uniques]
    parent = list(range(len(uniques)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rng = np.random.default_rng(20261201)
    a = rng.integers(1, 2**63, size=_BANDS * _ROWS, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 2**63, size=_BANDS * _ROWS, dtype=np.uint64)
    buckets: dict[tuple, list[int]] = defaultdict(list)
    for i, s in enumerate(shingles):
        signature = _minhash(s, a, b)
        for band in range(_BANDS):
            buckets[(band, signature[band * _ROWS:(band + 1) * _ROWS].tobytes())].append(i)
    checked: set[tuple[int, int]] = set()
    for members in buckets.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                i, j = members[x], members[y]
                if (i, j) in checked or find(i) == find(j):
                    continue
                checked.add((i, j))
                if _near_identical(shingles[i], shingles[j]):
                    parent[find(i)] = find(j)

    components: dict[int, list[str]] = defaultdict(list)
    for i, norm in enumerate(uniques):
        components[find(i)].extend(by_norm[norm])
    groups = sorted((sorted(m) for m in components.values() if len(m) > 1), key=lambda m: (-len(m), m[0]))
    return {student: n for n, members in enumerate(groups, start=1) for student in members}
