"""Key terms of the written questions, highlighted in answers as a hint to the grader.

The concepts and their English/Chinese spellings are data (``key_terms.txt``: one concept per line, spellings separated by ``|``). A concept
belongs to a rubric item when one of its spellings occurs in the item's criterion text, and
to the question when it occurs in the prompt. Highlights are a reading aid only: they never
set, change or pre-select a score.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

from grader.errors import RubricError

KEY_TERMS_FILE = Path(__file__).resolve().parent / "key_terms.txt"
_LATIN = re.compile(r"[A-Za-z]")


@dataclass(frozen=True)
class Concept:
    spellings: tuple[str, ...]
    pattern: re.Pattern
    label: str          # how the grader sees it: the first English and the first Chinese spelling


def _label(spellings: Sequence[str]) -> str:
    latin = next((s for s in spellings if _LATIN.search(s)), None)
    other = next((s for s in spellings if not _LATIN.search(s)), None)
    return " / ".join(s.rstrip("*") for s in (latin, other) if s)


def _spelling_regex(spelling: str) -> str:
    stem, wildcard = (spelling[:-1], True) if spelling.endswith("*") else (spelling, False)
    body = r"\s*".join(re.escape(part) for part in stem.split())   # "mini batch" ~ "mini  batch"
    if not _LATIN.search(stem):
        return body                                                  # Chinese, symbols: anywhere
    start = r"(?<![A-Za-z])" if _LATIN.match(stem) else ""
    end = r"[A-Za-z-]*" if wildcard else r"(?![A-Za-z])"
    return start + body + end


def _concept(spellings: Sequence[str]) -> Concept:
    ordered = sorted(spellings, key=len, reverse=True)   # longest first: 重參數化 before 重參數
    return Concept(tuple(spellings), re.compile("|".join(_spelling_regex(s) for s in ordered),
                                                re.IGNORECASE), _label(spellings))


@lru_cache(maxsize=4)
def load_concepts(path: Path = KEY_TERMS_FILE) -> tuple[Concept, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RubricError(f"{path}: cannot read the key terms: {exc.strerror}") from None
    concepts = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        spellings = [s.strip() for s in line.split("|")]
        if not all(spellings):
            raise RubricError(f"{path}, line {number}: an empty spelling (two `|` in a row?)")
        concepts.append(_concept(spellings))
    return tuple(concepts)


@dataclass(frozen=True)
class TermMatch:
    start: int
    end: int
    items: tuple[int, ...]   # 0-based rubric items whose criterion names this concept; () = the prompt's
    concept: str


class KeyTerms:
    """The concepts of one written question, each tied to the rubric items that name it."""

    def __init__(self, prompt: str, criteria: Sequence[str], concepts: Sequence[Concept] | None = None):
        concepts = load_concepts() if concepts is None else concepts
        self.concepts: list[tuple[Concept, tuple[int, ...]]] = []
        for concept in concepts:
            items = tuple(i for i, text in enumerate(criteria) if concept.pattern.search(text))
            if items or concept.pattern.search(prompt):
                self.concepts.append((concept, items))

    def find(self, answer: str) -> list[TermMatch]:
        """Non-overlapping matches in ``answer``, leftmost first (the longer one wins a tie)."""
        found = [TermMatch(m.start(), m.end(), items, concept.label)
                 for concept, items in self.concepts for m in concept.pattern.finditer(answer)
                 if m.end() > m.start()]
        found.sort(key=lambda t: (t.start, -(t.end - t.start)))
        kept: list[TermMatch] = []
        for t in found:
            if not kept or t.start >= kept[-1].end:
                kept.append(t)
        return kept

    def item_hints(self, answer: str) -> dict[int, list[str]]:
        """For each rubric item, the distinct concepts of its criterion found in ``answer``."""
        return self.hints(self.find(answer))

    @staticmethod
    def hints(matches: Sequence[TermMatch]) -> dict[int, list[str]]:
        """For each rubric item (0-based), the distinct concepts among ``matches`` that hint at it."""
        hints: dict[int, list[str]] = {}
        for t in matches:
            for i in t.items:
                if t.concept not in hints.setdefault(i, []):
                    hints[i].append(t.concept)
        return hints
