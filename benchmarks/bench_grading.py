"""Grading speed against the floor every process-per-submission design pays.

Run:  python benchmarks/bench_grading.py [--copies 40] [--repeats 3] [--isolation bwrap unshare process]
      [--baseline DIR]

Prints, in one run and side by side:
  * the floor: a bare ``python -c "import numpy, cvxopt"`` (median of several runs);
  * ``hwgrader grade`` on N copies of the correct example with --jobs 1 and --jobs 2:
    wall time per submission (whole CLI run / N, so start-up and the reference
    plan are included) and the median per-submission time the engine measured;
  * the ratios the engine issue targets: per submission <= 1.5x the floor at
    --jobs 1, and --jobs 2 throughput >= 1.7x that of --jobs 1.

``--baseline DIR`` (a checkout of an older commit, e.g. ``git worktree add /tmp/old <commit>``)
measures that tree too, run for run interleaved with this one on the same machine and
inputs, and prints both medians and their ratio (the sandbox issue's "within 10%").
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "submissions" / "correct_module.py"


def timed(argv: list[str], cwd: Path = ROOT) -> float:
    start = time.perf_counter()
    proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=cwd)
    if proc.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}")
    return time.perf_counter() - start


FLOOR = [sys.executable, "-c", "import numpy, cvxopt"]


def floor(repeats: int) -> float:
    return statistics.median(timed(FLOOR) for _ in range(repeats))


def grade(folder: Path, out: Path, jobs: int, isolation: str, tree: Path = ROOT) -> tuple[float, float]:
    """(wall seconds for the whole CLI run, median engine seconds per submission) of ``tree``'s grader."""
    shutil.rmtree(out, ignore_errors=True)
    wall = timed([sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out),
                  "--jobs", str(jobs), "--isolation", isolation], cwd=tree)
    per = [json.loads(p.read_text())["execution_time"] for p in out.glob("*/results.json")]
    return wall, statistics.median(per)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--isolation", nargs="+", default=["bwrap-fork", "bwrap", "unshare", "process"])
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="an older checkout to measure side by side (interleaved runs)")
    args = parser.parse_args()
    if args.baseline:
        return compare(args)

    base = floor(max(5, args.repeats))
    print(f"floor: python -c 'import numpy, cvxopt'        {base * 1000:7.0f} ms  (median of {max(5, args.repeats)})")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "subs"
        folder.mkdir()
        for i in range(args.copies):
            shutil.copy(EXAMPLE, folder / f"student_{i:03d}.py")
        print(f"{args.copies} copies of {EXAMPLE.name}, median of {args.repeats} runs each\n")
        print(f"{'isolation':10} {'jobs':>4} {'wall/sub':>10} {'x floor':>8} {'engine/sub':>11} {'x floor':>8}"
              f" {'throughput':>11}")
        for isolation in args.isolation:
            per_jobs = {}
            for jobs in (1, 2):
                runs = [grade(folder, Path(tmp) / "out", jobs, isolation) for _ in range(args.repeats)]
                wall = statistics.median(r[0] for r in runs) / args.copies
                engine = statistics.median(r[1] for r in runs)
                per_jobs[jobs] = wall
                speedup = per_jobs[1] / wall
                print(f"{isolation:10} {jobs:>4} {wall * 1000:7.0f} ms {wall / base:7.2f}x "
                      f"{engine * 1000:8.0f} ms {engine / base:7.2f}x {speedup:10.2f}x")
        print("\nwall/sub: the whole CLI run (start-up, reference plan, reports) / N; engine/sub: median"
              " time the engine spent on one submission (worker start, load, every case, compare)."
              "\ntargets: per submission at --jobs 1 <= 1.5x floor; --jobs 2 throughput >= 1.7x --jobs 1")


def compare(args) -> None:
    """This tree against ``--baseline``, run for run interleaved; medians side by side."""
    base = floor(max(5, args.repeats))
    print(f"floor: python -c 'import numpy, cvxopt'  {base * 1000:.0f} ms")
    print(f"{args.copies} copies of {EXAMPLE.name}, {args.repeats} interleaved runs per tree; "
          f"baseline: {args.baseline}\n")
    print(f"{'isolation':10} {'jobs':>4} {'':9} {'wall/sub':>10} {'engine/sub':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "subs"
        folder.mkdir()
        for i in range(args.copies):
            shutil.copy(EXAMPLE, folder / f"student_{i:03d}.py")
        for isolation in args.isolation:
            for jobs in (1, 2):
                runs: dict[str, list] = {"baseline": [], "this tree": []}
                for _ in range(args.repeats):
                    runs["baseline"].append(grade(folder, Path(tmp) / "out", jobs, isolation, args.baseline))
                    runs["this tree"].append(grade(folder, Path(tmp) / "out", jobs, isolation, ROOT))
                medians = {}
                for name, got in runs.items():
                    wall = statistics.median(r[0] for r in got) / args.copies
                    engine = statistics.median(r[1] for r in got)
                    medians[name] = (wall, engine)
                    print(f"{isolation:10} {jobs:>4} {name:9} {wall * 1000:7.1f} ms {engine * 1000:8.1f} ms")
                (bw, be), (tw, te) = medians["baseline"], medians["this tree"]
                print(f"{'':10} {'':>4} {'ratio':9} {tw / bw:9.3f}x {te / be:10.3f}x")


if __name__ == "__main__":
    main()
