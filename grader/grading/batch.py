"""Grading a folder: N workers at a time, a progress line, every student graded whatever happens.

Each submission is graded in its own sandboxed worker by ``engine``; this
module only schedules them and hands each result, as soon as it is graded, to
the caller's ``on_result`` (the writers in ``grader.outputs.writers``): grading
yields results, it never writes files itself. A failure of hwgrader itself on one student is
recorded on that student and reported; the batch goes on.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, TextIO

from grader.grading.engine import grade_submission
from grader.assignment.plan import Plan
from grader.grading.results import SubmissionResult, fmt_points


class Progress:
    """A one-line progress bar on a terminal; one line per student elsewhere (CI logs)."""

    def __init__(self, total: int, stream: TextIO):
        self.total, self.stream, self.done = total, stream, 0
        self.started = time.monotonic()
        self.tty = stream.isatty()
        self.lock = threading.Lock()

    def update(self, result: SubmissionResult) -> None:
        with self.lock:
            self._update(result)

    def _update(self, result: SubmissionResult) -> None:
        self.done += 1
        elapsed = time.monotonic() - self.started
        eta = elapsed / self.done * (self.total - self.done)
        flag = "" if not (result.load_error or result.run_failures) else "  (see report: run problems)"
        if self.tty:
            width = 30
            filled = int(width * self.done / self.total)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                              f"graded, {elapsed:.0f}s elapsed, ~{eta:.0f}s left ")
            if self.done == self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {result.student}: "
                              f"{fmt_points(result.score)}/{fmt_points(result.max_score)}{flag}\n")
        self.stream.flush()


def grade_all(paths: list[Path], plan: Plan, *, jobs: int = 1,
              isolation: Optional[str] = None, progress: Optional[TextIO] = sys.stderr,
              on_result: Optional[Callable[[SubmissionResult], None]] = None) -> tuple[list[SubmissionResult], list[str]]:
    """Grade every path; returns the results (in input order) and hwgrader's own failures, if any."""
    slots: "queue.Queue[int]" = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)
    bar = Progress(len(paths), progress) if progress is not None and paths else None
    internal_errors: list[str] = []

    def one(path: Path) -> SubmissionResult:
        slot = slots.get()
        try:
            result = grade_submission(path, plan, isolation=isolation, slot=slot)
        except Exception as exc:  # a bug in hwgrader must not cost the other students their grades
            internal_errors.append(f"{path.name}: {type(exc).__name__}: {exc}")
            result = SubmissionResult(student=path.stem, file=path.name, isolation="none", hwgrader_failed=True,
                                      load_error=f"hwgrader failed on this submission (not the student's "
                                                 f"fault; it will be regraded): {type(exc).__name__}: {exc}")
            result.output = traceback.format_exc()[-4000:]
        finally:
            slots.put(slot)
        if on_result:
            on_result(result)
        if bar:
            bar.update(result)
        return result

    # Each grading thread mostly waits on its worker, call after call; a thread rendering a report
    # holds the GIL for milliseconds. A short switch interval hands the GIL over quickly, so one
    # thread's rendering does not add its length to every call of the others.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    try:
        with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
            results = list(pool.map(one, paths))
    finally:
        sys.setswitchinterval(interval)
    return results, internal_errors
