"""``hwgrader audit``: does the rubric catch the mistakes it knows, and does every case earn its place?

For every registered mistake, the plan already holds its outputs on every
case of its function (computed in the parent with the reference). A case
*catches* a mistake when a student making it would fail there: its outputs
are outside the case's tolerance, have another shape, or the mistaken code
raises. The audit lists:

- the cases that catch each mistake, and whether a public one does (a
  mistake only hidden cases catch is a student's "all public tests passed,
  then the grade dropped" surprise);
- mistakes no case catches (the rubric cannot tell them from a right
  answer: exit 1);
- cases no mistake fails (they test something no known mistake gets wrong:
  fine for a sanity case, worth a look otherwise);
- mistakes indistinguishable from each other on every case (same outputs
  everywhere, so the diagnosis cannot tell which one a student made).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TextIO

from grader.assignment.plan import KnownMistake, Plan, PlannedCase
from grader.grading.clusters import tolerance
from grader.grading.compare import compare_outputs, outputs_match


@dataclass
class MistakeAudit:
    id: str
    function: str
    title: str
    catching: list[str] = field(default_factory=list)      # case numbers
    public: list[str] = field(default_factory=list)        # the public ones among them
    twins: list[str] = field(default_factory=list)         # mistakes with the same outputs on every case

    @property
    def caught(self) -> bool:
        return bool(self.catching)


@dataclass
class Audit:
    mistakes: list[MistakeAudit]
    uncatching_cases: list[tuple[str, str]]   # (number, "function (case)") no mistake fails
    cases: int

    @property
    def uncaught(self) -> list[MistakeAudit]:
        return [m for m in self.mistakes if not m.caught]

    @property
    def hidden_only(self) -> list[MistakeAudit]:
        return [m for m in self.mistakes if m.caught and not m.public]

    @property
    def twin_groups(self) -> list[list[str]]:
        seen, groups = set(), []
        for m in self.mistakes:
            if m.twins and m.id not in seen:
                group = sorted([m.id] + m.twins)
                seen.update(group)
                groups.append(group)
        return groups


def catches(case: PlannedCase, known: KnownMistake) -> bool:
    """Would a student whose function is this mistake fail this case?"""
    if known.outputs is None:
        return True  # the mistaken code raises here: the student's call fails
    _, verdict = compare_outputs(case.output_names, known.outputs, case.expected,
                                 rtol=case.rtol, atol=case.atol, keep_values=False)
    return verdict != "passed"


def _same(case: PlannedCase, a: KnownMistake, b: KnownMistake) -> bool:
    if a.outputs is None or b.outputs is None:
        return a.outputs is None and b.outputs is None
    rtol, atol = tolerance(case)
    return outputs_match(a.outputs, b.outputs, rtol=rtol, atol=atol)


def audit_plan(plan: Plan) -> Audit:
    cases = plan.cases
    found: dict[str, MistakeAudit] = {}
    failed_by: dict[str, int] = {c.number: 0 for c in cases}
    for case in cases:
        for known in case.mistakes:
            m = found.setdefault(known.id, MistakeAudit(known.id, case.function, known.title))
            if catches(case, known):
                m.catching.append(case.number)
                failed_by[case.number] += 1
                if case.visibility == "public":
                    m.public.append(case.number)
    by_function: dict[str, list[str]] = {}
    for m in found.values():
        by_function.setdefault(m.function, []).append(m.id)
    for function, ids in by_function.items():
        fcases = [c for c in cases if c.function == function]
        for i, a in enumerate(ids):
            for b in ids[i + 1:]:
                if all(_same(c, _known(c, a), _known(c, b)) for c in fcases):
                    found[a].twins.append(b)
                    found[b].twins.append(a)
    uncatching = [(c.number, f"{c.function} ({c.case})") for c in cases if failed_by[c.number] == 0]
    return Audit(mistakes=list(found.values()), uncatching_cases=uncatching, cases=len(cases))


def _known(case: PlannedCase, mid: str) -> KnownMistake:
    return next(m for m in case.mistakes if m.id == mid)


def _ranges(numbers: list[str]) -> str:
    """``q1.3, q1.4, q1.5, q1.7`` -> ``q1.3–5, q1.7``."""
    if not numbers:
        return "—"
    out, run = [], []
    for n in numbers:
        q, _, i = n.rpartition(".")
        if run and run[-1][0] == q and run[-1][1] + 1 == int(i):
            run.append((q, int(i)))
            continue
        if run:
            out.append(_run(run))
        run = [(q, int(i))]
    out.append(_run(run))
    return ", ".join(out)


def _run(run: list[tuple[str, int]]) -> str:
    q = run[0][0]
    return f"{q}.{run[0][1]}" if len(run) == 1 else f"{q}.{run[0][1]}–{run[-1][1]}"


def print_audit(audit: Audit, out: TextIO) -> None:
    """The audit as a Markdown table (it reads in a terminal and pastes into a README)."""
    out.write("| mistake | function | caught by | public case catches it |\n")
    out.write("|---|---|---|---|\n")
    for m in audit.mistakes:
        public = "**no: only hidden cases**" if m.caught and not m.public else \
            "**no case catches it**" if not m.caught else f"yes ({_ranges(m.public)})"
        twins = f" (same outputs as {', '.join(f'`{t}`' for t in m.twins)})" if m.twins else ""
        out.write(f"| `{m.id}`{twins} | `{m.function}` | {_ranges(m.catching)} | {public} |\n")
    out.write("\n")
    n = len(audit.mistakes)
    out.write(f"{n} known mistake{'s' if n != 1 else ''} over {audit.cases} cases: "
              f"{n - len(audit.uncaught)} caught, {n - len(audit.uncaught) - len(audit.hidden_only)} "
              f"by a public case.\n")
    for m in audit.uncaught:
        out.write(f"- NOT CAUGHT: `{m.id}` passes every case of `{m.function}`: a student making it "
                  f"gets full marks; add a case that tells it from the reference.\n")
    for m in audit.hidden_only:
        out.write(f"- hidden only: `{m.id}` is caught only by hidden cases ({_ranges(m.catching)}): "
                  f"its students pass every public test, then lose points.\n")
    for group in audit.twin_groups:
        out.write(f"- indistinguishable: {', '.join(f'`{g}`' for g in group)} give the same outputs on "
                  f"every case; the diagnosis cannot tell them apart.\n")
    if audit.uncatching_cases:
        listed = ", ".join(f"{number} `{name}`" for number, name in audit.uncatching_cases)
        out.write(f"- cases no known mistake fails: {listed}.\n")
