"""Similarity as a writer on the seam: fingerprints as each student is graded, the ranking at the end.

``SimilarityWriter.submission`` fingerprints one result's code (in the
grading threads, overlapping the sandboxed runs); ``finish`` ranks
everyone it has seen and writes ``similarity.html`` / ``similarity.csv``.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Iterable, Optional, Sequence

from grader.assignment.plan import Plan
from grader.grading.results import SubmissionResult
from grader.similarity.fingerprint import CodePrint, base_hashes, base_words, fingerprint_sources
from grader.similarity.index import Base, Ranking, rank_pairs
from grader.similarity.report import write_similarity


def output_digest(outputs) -> int:
    """The received outputs to full precision (shapes and float64 bytes), as one number."""
    h = hashlib.blake2b(digest_size=8)
    for array in outputs:
        h.update(repr(array.shape).encode())
        h.update(array.astype("<f8", copy=False).tobytes())
    return int.from_bytes(h.digest(), "big")


def code_print(result: SubmissionResult, handout: Iterable[str]) -> CodePrint:
    """One result's fingerprints, with its wrong outputs on hidden cases."""
    printed = fingerprint_sources(result.student, result.sources, handout)
    for case in result.cases:
        if case.visibility == "hidden" and case.received is not None:
            printed.wrong_outputs[case.number] = output_digest(case.received)
    return printed


def load_base(dirs: Iterable[Path] = (), files: Iterable[Path] = ()) -> Base:
    """Base code from every ``.py`` in ``dirs`` (the reference package) and the given ``files``."""
    sources = []
    for d in dirs:
        sources += [p.read_text(encoding="utf-8") for p in sorted(Path(d).glob("*.py"))]
    sources += [Path(f).read_text(encoding="utf-8") for f in files]
    identifiers, comments = base_words(sources)
    return Base(hashes=base_hashes(sources), identifiers=identifiers, comments=comments)


class SimilarityWriter:
    """``<out>/similarity.html`` and ``similarity.csv``, for the whole class once it is graded."""

    def __init__(self, out_dir: Path, plan: Plan, *, base: Optional[Base] = None):
        self.out_dir, self.plan = Path(out_dir), plan
        self.base = base or Base()
        self.handout = list(dict.fromkeys(c.function for c in plan.cases))
        self.prints: dict[str, CodePrint] = {}
        self.lock = threading.Lock()
        self.ranking: Optional[Ranking] = None

    def submission(self, result: SubmissionResult) -> None:
        printed = code_print(result, self.handout)
        with self.lock:
            self.prints[result.student] = printed

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        """Rank everyone seen (reused results arrive through ``submission`` too) and write the files."""
        with self.lock:
            prints = dict(self.prints)
        for r in results:
            if r.student not in prints:
                prints[r.student] = code_print(r, self.handout)
        self.ranking = rank_pairs([prints[s] for s in sorted(prints)], self.base)
        write_similarity(self.ranking, self.out_dir, title=self.plan.title)
