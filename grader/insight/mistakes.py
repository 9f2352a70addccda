"""``hwgrader mistakes DIR``: a ``@mistake`` skeleton for each wrong-answer cluster nobody has named.

The clusters come from the last ``grade`` into DIR (``DIR/clusters.json``).
Each skeleton has the reference function's signature and body (so the
registry accepts it and the instructor edits a working function into the
wrong one), an id, a title and a hint to fill in, and a comment saying who
shares the output and how it differs. Pasted into the module that holds
the reference, it is matched on the next run like every known mistake.
"""

from __future__ import annotations

import inspect
import re
import textwrap
from pathlib import Path
from typing import Sequence

from grader.assignment.registry import ReferenceSet
from grader.grading.clusters import WrongAnswerCluster

#: Students named in a skeleton's comment (the rest are counted).
NAMED_STUDENTS = 8


def _identifier(text: str) -> str:
    return re.sub(r"[^a-z0-9_]+", "_", text.lower()).strip("_") or "x"


def mistake_skeleton(cluster: WrongAnswerCluster, refs: ReferenceSet, number: int,
                     taken: set[str]) -> str:
    reference = refs.function(cluster.function)
    stem = f"new_{_identifier(cluster.function)}_{number}"
    mid = f"{cluster.question}.{stem}"
    while mid in taken:
        number += 1
        stem = f"new_{_identifier(cluster.function)}_{number}"
        mid = f"{cluster.question}.{stem}"
    taken.add(mid)
    source = textwrap.dedent(inspect.getsource(reference))
    lines = source.splitlines()
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("def "))
    body = lines[start:]
    body[0] = re.sub(r"def\s+\w+", f"def _{stem}", body[0], count=1)
    names = ", ".join(cluster.students[:NAMED_STUDENTS])
    if len(cluster.students) > NAMED_STUDENTS:
        names += f" and {len(cluster.students) - NAMED_STUDENTS} more"
    cases = ", ".join(f"{c.number} ({c.case}, {c.visibility})" for c in cluster.cases)
    try:
        where = Path(inspect.getfile(reference)).relative_to(Path.cwd())
    except ValueError:
        where = Path(inspect.getfile(reference))
    header = [
        f"# Shared by {len(cluster.students)} students ({names}) on {cases}.",
        *[f"# Their output: {d}." for d in cluster.differences],
        f"# Paste into {where}, change the body below into the computation these students made,",
        "# and fill in the title and hint: the next `hwgrader grade` names it in their reports.",
        f'@mistake("{mid}", of="{cluster.function}",',
        '         title="TODO: what these students did, in a few words",',
        '         hint="TODO: what to change, written for the student")',
    ]
    return "\n".join(header + body) + "\n"


def mistake_skeletons(clusters: Sequence[WrongAnswerCluster], refs: ReferenceSet) -> list[str]:
    taken = set(refs.mistakes)
    counters: dict[str, int] = {}
    out = []
    for cluster in clusters:
        counters[cluster.function] = counters.get(cluster.function, 0) + 1
        out.append(mistake_skeleton(cluster, refs, counters[cluster.function], taken))
    return out
