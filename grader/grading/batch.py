"""Grading a folder: N workers at a time, a progress line, every student graded whatever happens.

Each submission is graded in its own sandboxed worker by ``engine``, on this machine or a Dask
cluster (``grader.grading.executors``); this module hands each result, as soon as it is graded, to
the caller's ``on_result`` (the writers in ``grader.outputs.writers``): grading
yields results, it never writes files itself. A failure of hwgrader itself on one student is
recorded on that student and reported; the batch goes on.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Callable, Optional, Sequence, TextIO

from grader.assignment.plan import Plan
from grader.grading.executors import Executor, Item, LocalThreads, failed_result, item_name
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


def grade_all(paths: Sequence[Item], plan: Plan, *, jobs: int = 1,
              isolation: Optional[str] = None, progress: Optional[TextIO] = sys.stderr,
              on_result: Optional[Callable[[SubmissionResult], None]] = None,
              executor: Optional[Executor] = None) -> tuple[list[SubmissionResult], list[str]]:
    """Grade every path; returns the results (in input order) and hwgrader's own failures, if any.

    ``executor`` says where (``grader.grading.executors``); by default ``jobs`` threads on this
    machine. Each result reaches ``on_result`` and the progress bar once, as soon as it is graded.
    """
    executor = executor or LocalThreads(jobs, isolation)
    bar = Progress(len(paths), progress) if progress is not None and paths else None
    results: list[Optional[SubmissionResult]] = [None] * len(paths)
    internal_errors: list[str] = []
    lock = threading.Lock()

    def deliver(index: int, result: SubmissionResult, internal_error: Optional[str]) -> None:
        with lock:
            if results[index] is not None:  # an executor that retried: the first result stands
                return
            results[index] = result
            if internal_error:
                internal_errors.append(internal_error)
        if on_result:
            on_result(result)
        if bar:
            bar.update(result)

    executor.grade(paths, plan, deliver)
    missing = [i for i, r in enumerate(results) if r is None]
    for i in missing:  # an executor bug must not drop a student from the class files
        deliver(i, failed_result(paths[i], "it was never graded (hwgrader bug)"),
                f"{item_name(paths[i])[1]}: never graded")
    return results, internal_errors  # type: ignore[return-value]
