"""The trusted parent's peak memory while grading students whose replies sit at the protocol's cap.

Run:  python benchmarks/bench_reply_memory.py [--jobs 2] [--copies 2] [--isolation LEVEL] [--json]

Writes a hostile submission that defines homework functions (``--functions``) and returns, on every call,
as many arrays as the case expects, each of 10 million float64 values (80 MB: the protocol's
per-array cap), grades ``--copies`` copies of it in one ``grade_all`` batch with ``--jobs`` slots
in this process, and prints the parent's resident memory before grading and its peak
(``ru_maxrss`` of this process only: workers are other processes). Run it from another
checkout (``cd OLD && python NEW/benchmarks/bench_reply_memory.py``) for a side-by-side
figure: the script only uses ``build_plan`` and ``grade_all``.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # grade with the checkout we are run from

from grader.assignment.plan import build_plan  # noqa: E402
from grader.assignment.rubric import load_rubric  # noqa: E402
from grader.grading.batch import grade_all  # noqa: E402


def hostile_source(plan, functions=None) -> str:
    outputs = {}
    for case in plan.cases:
        if functions is None or case.function in functions:
            outputs[case.function] = len(case.output_names)
    lines = ["import numpy as np", ""]
    for fn, n in sorted(outputs.items()):
        value = "np.zeros(10_000_000)" if n == 1 else "tuple(np.zeros(10_000_000) for _ in range(%d))" % n
        lines += [f"def {fn}(*args, **kwargs):", f"    return {value}", ""]
    return "\n".join(lines)


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--copies", type=int, default=2)
    ap.add_argument("--isolation", default=None)
    ap.add_argument("--functions", default="baum_welch,batchnorm_backward",
                    help="comma-separated homework functions the hostile submission defines "
                         "(default: the two with three outputs; 'all' for every one)")
    ap.add_argument("--json", action="store_true", help="print one JSON line of figures")
    args = ap.parse_args()
    plan = build_plan(load_rubric(Path.cwd() / "rubrics" / "homework.yaml"))
    plan = replace(plan, limits=replace(plan.limits, call_seconds=20, submission_seconds=600, memory_mb=2048))
    with tempfile.TemporaryDirectory(prefix="hwgrader-at-cap-") as tmp:
        paths = []
        for i in range(args.copies):
            p = Path(tmp) / f"at_cap_{i}.py"
            p.write_text(hostile_source(plan, None if args.functions == "all" else set(args.functions.split(","))))
            paths.append(p)
        baseline = rss_mb()
        t0 = time.monotonic()
        results, internal = grade_all(paths, plan, jobs=args.jobs, isolation=args.isolation, progress=None)
        seconds = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    verdicts: dict[str, int] = {}
    for r in results:
        for c in r.cases:
            verdicts[str(c.verdict)] = verdicts.get(str(c.verdict), 0) + 1
    figures = {"jobs": args.jobs, "copies": args.copies, "isolation": results[0].isolation if results else None,
               "baseline_rss_mb": round(baseline, 1), "peak_rss_mb": round(peak, 1),
               "seconds": round(seconds, 1), "verdicts": verdicts, "internal_errors": internal,
               "rejected_cases": verdicts.get("rejected", 0)}
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"isolation {figures['isolation']}, --jobs {args.jobs}, {args.copies} at-cap submissions "
              f"in {seconds:.1f} s")
        print(f"parent resident memory: {baseline:.0f} MB before grading, peak {peak:.0f} MB "
              f"(+{peak - baseline:.0f} MB)")
        print(f"verdicts: {verdicts}")


if __name__ == "__main__":
    main()
