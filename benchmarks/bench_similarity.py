"""Similarity speed: the inverted index against all pairs, measured in the same run.

Run:  python benchmarks/bench_similarity.py [--sizes 300 1000 3000] [--repeats 3] [--all-pairs-max 1000]

A synthetic class of N students is built from five independent solutions of
the homework (the correct example and the three styles in tests/similarity):
each student takes every function from one of them at random, with variables
renamed, comments rewritten, functions reordered and a few statements of their
own inserted (so each has rare code); 2% of the students hand in a disguised
copy of another's file. Prints, per size (medians of the repeats):

  * fingerprinting per submission (done as each student is graded, in ``submission``);
  * the class analysis of ``finish``: index, pairs, scores (``rank_pairs``);
  * the baseline: the same scores computed for *all* pairs (what a design without an
    index pays; run up to --all-pairs-max students, then extrapolated as N^2);
  * how many planted copies rank in the top pairs.
"""

from __future__ import annotations

import argparse
import ast
import math
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "similarity"))

from disguise import disguise  # noqa: E402

from grader.similarity.fingerprint import fingerprint_sources  # noqa: E402
from grader.similarity.index import Base, common_cap, rank_pairs  # noqa: E402
from grader.similarity.writer import load_base  # noqa: E402

SOURCES = [ROOT / "submissions" / "correct_module.py"] + sorted((ROOT / "tests" / "similarity").glob("style_*.py"))


def _functions(path: Path) -> tuple[str, dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    lines = text.split("\n")
    head = "\n".join(line for line in lines if line.startswith(("import ", "from ")))
    funcs = {n.name: "\n".join(lines[n.lineno - 1:n.end_lineno]) for n in tree.body if isinstance(n, ast.FunctionDef)}
    return head, funcs


def make_class(n: int, seed: int = 7) -> dict[str, str]:
    rng = random.Random(seed)
    styles = [_functions(p) for p in SOURCES]
    heads = "\n".join(sorted({line for head, _ in styles for line in head.split("\n") if line}))
    names = sorted({f for _, funcs in styles for f in funcs})
    students: dict[str, str] = {}
    for i in range(n):
        blocks = []
        for name in names:
            options = [funcs[name] for _, funcs in styles if name in funcs]
            body = rng.choice(options).split("\n")
            # a few statements of the student's own: rare code, as every real class has
            # (inserted before lines that can only start a statement, so the code stays valid)
            starts = [k for k, line in enumerate(body) if k and line.lstrip().startswith(("return ", "for ", "if "))]
            for _ in range(rng.randint(1, 3)):
                at = rng.choice(starts or [1])
                indent = len(body[at]) - len(body[at].lstrip()) or 4
                body.insert(at, " " * indent + f"_check_{rng.randint(0, 10**6)} = {rng.randint(0, 10**6)}")
                starts = [k + 1 if k >= at else k for k in starts]
            blocks.append("\n".join(body))
        rng.shuffle(blocks)
        students[f"s{i:06d}"] = disguise(heads + "\n\n\n" + "\n\n\n".join(blocks), salt=f"v{i}_")
    planted = []
    for i in range(max(1, n // 50)):
        original = f"s{rng.randrange(n):06d}"
        students[f"copy{i:05d}"] = disguise(students[original], salt=f"c{i}_")
        planted.append((original, f"copy{i:05d}"))
    return students, planted


def all_pairs(prints, base: Base):
    """The baseline: every pair scored on the same weights, without the index."""
    from collections import Counter

    n = len(prints)
    cap = common_cap(n)
    df = Counter((name, h) for p in prints for name, u in p.units.items() for h in u.spans if h not in base.hashes)
    weight = {k: math.log(cap / c) for k, c in df.items() if c < cap}
    sets = [{name: {h: weight.get((name, h), 0.0) for h in u.spans} for name, u in p.units.items()} for p in prints]
    best = []
    for i in range(n):
        for j in range(i + 1, n):
            total = weighted = 0.0
            for name, fa in sets[i].items():
                fb = sets[j].get(name)
                if fb is None:
                    continue
                both = sum(w for h, w in fa.items() if h in fb)
                union = sum(fa.values()) + sum(fb.values()) - both
                if union > 0:
                    omega = math.log1p(union)
                    total += omega
                    weighted += omega * both / union
            if total:
                best.append((weighted / total, i, j))
    best.sort(reverse=True)
    return best[:10]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--all-pairs-max", type=int, default=1000)
    args = parser.parse_args()
    handout = sorted({f for p in SOURCES for f in _functions(p)[1]} - {"_scaled_passes"})
    base = load_base([ROOT / "reference"])
    print(f"{'students':>8} {'fingerprint/sub':>16} {'index+rank':>11} {'all pairs':>12} {'ratio':>7} "
          f"{'pairs scored':>12} {'copies in top':>13}")
    previous = None
    for n in args.sizes:
        students, planted = make_class(n)
        fp_times, rank_times = [], []
        for _ in range(args.repeats):
            start = time.perf_counter()
            prints = [fingerprint_sources(s, [{"cell": 0, "filename": f"{s}.py", "source": src}], handout)
                      for s, src in students.items()]
            fp_times.append((time.perf_counter() - start) / len(students))
            start = time.perf_counter()
            ranking = rank_pairs(prints, base)
            rank_times.append(time.perf_counter() - start)
        fp, rank = statistics.median(fp_times), statistics.median(rank_times)
        if len(students) <= args.all_pairs_max:
            start = time.perf_counter()
            all_pairs(prints, base)
            baseline, how = time.perf_counter() - start, ""
            previous = (len(students), baseline)
        else:
            m, t = previous
            baseline, how = t * (len(students) / m) ** 2, "*"
        top = {(p.a, p.b) for p in ranking.pairs[:len(planted)]}
        found = sum(tuple(sorted(pair)) in top for pair in planted)
        print(f"{len(students):>8} {fp * 1000:>13.2f} ms {rank:>9.3f} s {baseline:>10.2f} s{how:1} "
              f"{baseline / rank:>6.1f}x {ranking.candidates:>12} {found:>6} of {len(planted)}")
    print("\nfingerprint/sub: per submission, done as each student is graded; index+rank: the class analysis "
          "in finish (median of repeats); all pairs: the same scores for every pair (* = extrapolated as N^2 "
          "from the largest size measured); copies in top: planted disguised copies among the top pairs.")


if __name__ == "__main__":
    main()
