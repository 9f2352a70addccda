"""Scale: the engine against the bare compute, --jobs 2 against --jobs 1, a 1,000-submission batch.

Run:  python benchmarks/bench_scale.py [engine] [batch] [--copies 40] [--repeats 3] [--size 1000]

Every figure is printed next to its baseline, measured in the same run (medians of --repeats runs):

``engine``
  * per submission: the engine's time (``execution_time`` of each results.json, median over
    --copies copies of the correct example at --jobs 1) against the **bare compute** of the same
    submission's cases: the same functions called on the same inputs in one warm process (the
    physical floor of any grader). Target <= 1.5x. Also the CLI's wall time per submission
    against ``python -c "import numpy, cvxopt"`` (the floor of one fresh Python per submission);
  * throughput of --jobs 2 against --jobs 1 on the same copies. Target >= 1.8x.
``batch``
  * a realistic batch of --size submissions (correct variants, every known mistake, broken files,
    2% hanging in a function, 2% crashing their worker), graded end to end (reports included) with
    --jobs 2 and with --scheduler local:2 (Dask's embedded cluster): wall time (target < 90 s for
    1,000 on 2 cores), the parent process's peak memory, and Dask's overhead per submission
    against --jobs 2 (target <= 5%).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SUBMISSIONS = ROOT / "submissions"
EXAMPLE = SUBMISSIONS / "correct_module.py"
FLOOR = [sys.executable, "-c", "import numpy, cvxopt"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run(argv: list[str]) -> tuple[float, int]:
    """(wall seconds, peak resident memory in MB of that process), polling /proc/PID/status VmHWM."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT, env=ENV)
    peak = 0
    while proc.poll() is None:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) // 1024)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    if proc.returncode not in (0, 3):
        sys.exit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-3000:]}")
    return wall, peak


def grade(folder: Path, out: Path, *extra: str) -> tuple[float, int, list[float]]:
    """(wall s, parent peak MB, engine seconds of every submission) of one fresh ``grade`` run."""
    shutil.rmtree(out, ignore_errors=True)
    wall, peak = run([sys.executable, "-m", "grader", "grade", str(folder), "--out", str(out), *extra])
    per = [json.loads(p.read_text())["execution_time"] for p in out.glob("*/results.json")]
    return wall, peak, per


def _load_student(path: Path) -> tuple[dict, float]:
    """The submission's code units (a module or a notebook's cells, as intake reads them) run in
    one fresh namespace, printing swallowed, as the worker runs them: (namespace, seconds)."""
    import contextlib
    import io

    from grader.assignment.submission import read_submission

    namespace: dict = {"__name__": "submission"}
    started = time.perf_counter()
    for unit in read_submission(path).units:
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                exec(compile(unit.get("source", ""), "submission.py", "exec"), namespace)
        except BaseException:  # noqa: BLE001 -- a broken cell costs what it ran, like in the worker
            pass
    return namespace, time.perf_counter() - started


def _cases_seconds(namespace: dict, plan) -> float:
    """Seconds to call the submission's functions on every planned case (one pass; a missing or
    failing function costs what it ran)."""
    import numpy as np

    total = 0.0
    for case in plan.cases:
        fn = namespace.get(case.function)
        if not callable(fn):
            continue
        args, kwargs = copy.deepcopy(case.args), copy.deepcopy(case.kwargs)
        started = time.perf_counter()
        try:
            out = fn(*args, **kwargs)
            outs = [out] if len(case.output_names) == 1 else list(out)
            [np.asarray(o, dtype=np.float64) for o in outs]
        except BaseException:  # noqa: BLE001
            pass
        total += time.perf_counter() - started
    return total


def bare_compute(path: Path, repeats: int) -> tuple[float, float]:
    """(seconds to call the submission's functions on every planned case, seconds to run its file's
    top level), both in one warm process: what the student's code itself costs, the floor."""
    plan = _plan()
    namespace, _ = _load_student(path)
    _cases_seconds(namespace, plan)  # warm
    return (statistics.median(_cases_seconds(namespace, plan) for _ in range(repeats)),
            statistics.median(_load_student(path)[1] for _ in range(repeats)))


def engine_section(args) -> None:
    base = statistics.median(run(FLOOR)[0] for _ in range(max(5, args.repeats)))
    compute, top_level = bare_compute(EXAMPLE, max(5, args.repeats))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "subs"
        folder.mkdir()
        for i in range(args.copies):
            shutil.copy(EXAMPLE, folder / f"student_{i:03d}.py")
        rows = {}
        for jobs in (1, 2):
            runs = [grade(folder, Path(tmp) / "out", "--jobs", str(jobs)) for _ in range(args.repeats)]
            wall = statistics.median(r[0] for r in runs) / args.copies
            engine = statistics.median(statistics.median(r[2]) for r in runs)
            rows[jobs] = (wall, engine)
    n_cases = len(_plan().cases)
    print(f"\n== per submission: {args.copies} copies of {EXAMPLE.name}, medians of {args.repeats} runs")
    print(f"bare compute of its {n_cases} cases in one warm process  {compute * 1000:7.1f} ms   (baseline)")
    print(f"  + its file's top level (a 100-iteration demo)    {(compute + top_level) * 1000:7.1f} ms   "
          f"(all of the student's own code)")
    print(f"engine time per submission, --jobs 1              {rows[1][1] * 1000:7.1f} ms   "
          f"{rows[1][1] / compute:5.2f}x the cases (target <= 1.5x), "
          f"{rows[1][1] / (compute + top_level):5.2f}x all its code")
    print(f"python -c 'import numpy, cvxopt'                  {base * 1000:7.1f} ms   (baseline)")
    print(f"CLI wall time per submission, --jobs 1            {rows[1][0] * 1000:7.1f} ms   "
          f"{rows[1][0] / base:5.2f}x")
    print("\n== throughput, same copies")
    print(f"--jobs 1   {rows[1][0] * 1000:7.1f} ms per submission   1.00x  (baseline)")
    print(f"--jobs 2   {rows[2][0] * 1000:7.1f} ms per submission   {rows[1][0] / rows[2][0]:4.2f}x  (target >= 1.8x)")


def _plan():
    from grader.assignment.plan import build_plan
    from grader.assignment.rubric import load_rubric

    return build_plan(load_rubric(ROOT / "rubrics" / "homework.yaml"))


# --------------------------------------------------------------------------- the realistic batch

def _crashing_source() -> str:
    """The correct module, except that ``forward`` kills its own process (a crashing worker)."""
    source = EXAMPLE.read_text(encoding="utf-8")
    old = "def forward(obs, pi, A, B):\n"
    assert old in source
    return source.replace(old, old + "    import os\n    os._exit(3)\n", 1)


def realistic_batch(folder: Path, size: int) -> dict[str, int]:
    """``size`` submissions: 2% hanging, 2% crashing, ~5% broken, ~40% known mistakes, the rest correct."""
    folder.mkdir(parents=True)
    correct = ["correct_module.py", "colab_notebook.ipynb", "學生_103590450.py"]
    mistakes = sorted(p.name for p in SUBMISSIONS.glob("mistake_*.py"))
    broken = ["syntax_error.py", "crash_at_import.py", "exits_at_import.py", "empty_template.py",
              "wrong_shapes_and_types.py"]
    crashing = _crashing_source()
    counts = {"hanging": size * 2 // 100, "crashing": size * 2 // 100, "broken": size * 5 // 100,
              "mistake": size * 40 // 100}
    counts["correct"] = size - sum(counts.values())
    n = 0

    def put(kind: str, source: Path | None = None, text: str | None = None, suffix: str = ".py") -> None:
        nonlocal n
        target = folder / f"s{n:05d}_{kind}{suffix}"
        if text is not None:
            target.write_text(text, encoding="utf-8")
        else:
            shutil.copy(source, target)
        n += 1

    for i in range(counts["hanging"]):
        put("hanging", SUBMISSIONS / "hangs_in_one_function.py")
    for i in range(counts["crashing"]):
        put("crashing", text=crashing)
    for i in range(counts["broken"]):
        put("broken", SUBMISSIONS / broken[i % len(broken)])
    for i in range(counts["mistake"]):
        put("mistake", SUBMISSIONS / mistakes[i % len(mistakes)])
    for i in range(counts["correct"]):
        name = correct[i % len(correct)]
        put("correct", SUBMISSIONS / name, suffix=Path(name).suffix)
    return counts


def student_code_seconds(path: Path) -> float:
    """What one submission's own code costs, measured in this (fresh) process: its top level,
    then every planned case, warm (the median of three passes)."""
    plan = _plan()
    namespace, top_level = _load_student(path)
    _cases_seconds(namespace, plan)
    return top_level + statistics.median(_cases_seconds(namespace, plan) for _ in range(3))


def batch_floor(folder: Path) -> float:
    """Seconds of the students' own code in the batch on this many cores (each distinct file
    measured once, in a process of its own), hanging and crashing submissions left out: the
    floor of any grader for the rest."""
    seconds: dict[bytes, float] = {}
    total = 0.0
    for path in sorted(folder.iterdir()):
        if "_hanging" in path.name or "_crashing" in path.name:
            continue
        data = path.read_bytes()
        if data not in seconds:
            out = subprocess.run([sys.executable, __file__, "_student_code", str(path)], capture_output=True,
                                 text=True, cwd=ROOT, env=ENV, timeout=120)
            lines = out.stdout.strip().splitlines()
            seconds[data] = float(lines[-1]) if lines else 0.0  # it ended its own process (os._exit)
        total += seconds[data]
    return total / (os.cpu_count() or 1)


def batch_section(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "batch"
        counts = realistic_batch(folder, args.size)
        floor = batch_floor(folder)
        results = {}
        for label, extra in (("--jobs 2", ["--jobs", "2"]), ("--scheduler local:2", ["--scheduler", "local:2"])):
            runs = [grade(folder, Path(tmp) / "out", *extra) for _ in range(args.batch_repeats)]
            wall = statistics.median(r[0] for r in runs)
            peak = max(r[1] for r in runs)
            graded = len(runs[-1][2])
            results[label] = (wall, peak, graded)
    print(f"\n== a realistic batch of {args.size}: " + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f"; end to end, reports included, median of {args.batch_repeats} run(s)")
    label = "students' code alone"
    print(f"{label:20} {floor:6.1f} s  {floor / args.size * 1000:6.1f} ms/submission   "
          f"(the floor: every file's own top level and cases in one warm process, on "
          f"{os.cpu_count()} cores; hanging and crashing ones left out)")
    base = results["--jobs 2"][0]
    for label, (wall, peak, graded) in results.items():
        overhead = (wall / base - 1) * 100
        print(f"{label:20} {wall:6.1f} s  {wall / args.size * 1000:6.1f} ms/submission  parent peak {peak:4d} MB  "
              f"graded {graded}" + ("   (baseline; target < 90 s for 1,000)" if label == "--jobs 2"
                                    else f"   Dask overhead {overhead:+.1f}% (target <= 5%)"))


def main() -> None:
    if sys.argv[1:2] == ["_student_code"]:  # batch_floor's measuring process
        print(student_code_seconds(Path(sys.argv[2])))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", default=["engine", "batch"], choices=["engine", "batch"])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=1000)
    parser.add_argument("--batch-repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start")
    if "engine" in args.sections:
        engine_section(args)
    if "batch" in args.sections:
        batch_section(args)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
