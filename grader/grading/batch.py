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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence, TextIO, Union

from grader.assignment.intake import SubmissionSource
from grader.assignment.plan import Plan
from grader.grading.executors import failed_result, grade_guarded, item_name
from grader.grading.results import SubmissionResult, fmt_points
from grader.sandbox.session import Sandbox
from grader.safetext import visible


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
            self.stream.write(f"[{self.done}/{self.total}] {visible(result.student)}: "
                              f"{fmt_points(result.score)}/{fmt_points(result.max_score)}{flag}\n")
        self.stream.flush()


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl-C during a batch: carries the students graded so far, so their class files can be
    written. Students not yet started are not graded (the next run grades them), nor are the
    ones being graded (``in_progress``): they stop when the caller closes the sandbox (its fork
    servers and spawner threads, and with them every worker: bwrap's ``--die-with-parent``), and
    their results are dropped, never written or shown."""

    def __init__(self, results: list[SubmissionResult], internal_errors: list[str], in_progress: int):
        super().__init__("interrupted")
        self.results, self.internal_errors, self.in_progress = results, internal_errors, in_progress


def _hand_over(result: SubmissionResult, on_result: Optional[Callable[[SubmissionResult], None]],
               internal_errors: list[str]) -> None:
    """Give ``result`` to the writers; a student whose files could not be written (disk full,
    permissions) is recorded in ``internal_errors`` (exit 3) and the others go on."""
    if on_result is None:
        return
    try:
        on_result(result)
    except Exception as exc:  # noqa: BLE001 -- writing one student's files must not stop the class
        internal_errors.append(f"{visible(result.student)}: writing its files failed: "
                               f"{type(exc).__name__}: {visible(exc)}")


def grade_all(paths: Sequence[Union[Path, SubmissionSource]], plan: Plan, *, jobs: int = 1,
              isolation: Optional[str] = None, progress: Optional[TextIO] = sys.stderr,
              on_result: Optional[Callable[[SubmissionResult], None]] = None,
              sandbox: Optional[Sandbox] = None, executor=None) -> tuple[list[SubmissionResult], list[str]]:
    """Grade every submission (intake's sources, or file paths); returns the results (in input
    order) and hwgrader's own failures, if any. Nothing about one student stops the others: a
    failure of hwgrader on it, or of ``on_result`` writing its files, is recorded on it and in
    the failures. Ctrl-C raises ``BatchInterrupted`` with the results graded so far.

    ``executor`` grades elsewhere (``grader.distributed.DaskExecutor`` for ``--scheduler``). Otherwise
    workers start through ``sandbox`` (the caller's, e.g. already warmed); without one, the batch
    makes its own at ``isolation`` (``None``: the strongest sandboxed level that works) and closes it.
    """
    if executor is not None:
        return _grade_with(executor, paths, plan, progress, on_result)
    if sandbox is None:
        from grader.sandbox.detect import choose

        level = choose(isolation).level if isolation is None else isolation
        with Sandbox(level, slots=jobs) as own:
            own.warm()  # fork servers start side by side, not in front of each slot's first student
            return grade_all(paths, plan, jobs=jobs, progress=progress, on_result=on_result, sandbox=own)
    slots: "queue.Queue[int]" = queue.Queue()
    for slot in range(jobs):
        slots.put(slot)
    bar = Progress(len(paths), progress) if progress is not None and paths else None
    internal_errors: list[str] = []

    finished: dict[int, SubmissionResult] = {}  # input index -> result, once its files are written
    #: Set on Ctrl-C: the submissions still being graded then were cut short (their sandbox is
    #: closed under them), so their results are neither written nor shown; the next run grades them.
    interrupted = threading.Event()

    def one(index: int, item: Union[Path, SubmissionSource]) -> SubmissionResult:
        slot = slots.get()
        try:
            result, internal_error = grade_guarded(item, plan, sandbox=sandbox, slot=slot)
        finally:
            slots.put(slot)
        if interrupted.is_set():
            return result
        if internal_error:
            internal_errors.append(visible(internal_error))
        _hand_over(result, on_result, internal_errors)
        finished[index] = result
        if bar:
            bar.update(result)
        return result

    # Each grading thread mostly waits on its worker, call after call; a thread rendering a report
    # holds the GIL for milliseconds. A short switch interval hands the GIL over quickly, so one
    # thread's rendering does not add its length to every call of the others.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.0005))
    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    futures = [pool.submit(one, i, item) for i, item in enumerate(paths)]
    try:
        results = [f.result() for f in futures]
    except KeyboardInterrupt:
        # Students not started are dropped; those being graded stop with their sandbox.
        interrupted.set()
        pool.shutdown(wait=False, cancel_futures=True)
        done = [finished[i] for i in sorted(finished)]
        running = sum(1 for i, f in enumerate(futures) if f.running() and i not in finished)
        raise BatchInterrupted(done, internal_errors, running) from None
    finally:
        sys.setswitchinterval(interval)
    pool.shutdown(wait=True)
    return results, internal_errors


def _grade_with(executor, items, plan: Plan, progress, on_result) -> tuple[list[SubmissionResult], list[str]]:
    """Grade through an executor (``grader.grading.executors.Executor``): same containment, same bar."""
    bar = Progress(len(items), progress) if progress is not None and items else None
    results: list[Optional[SubmissionResult]] = [None] * len(items)
    internal_errors: list[str] = []
    lock = threading.Lock()

    def deliver(index: int, result: SubmissionResult, internal_error: Optional[str]) -> None:
        with lock:
            if results[index] is not None:  # an executor that retried: the first result stands
                return
            results[index] = result
            if internal_error:
                internal_errors.append(visible(internal_error))
        _hand_over(result, on_result, internal_errors)
        if bar:
            bar.update(result)

    executor.grade(items, plan, deliver)
    for i, r in enumerate(results):
        if r is None:  # an executor bug must not drop a student from the class files
            deliver(i, failed_result(items[i], "it was never graded (hwgrader bug)"),
                    f"{item_name(items[i])[1]}: never graded")
    return results, internal_errors  # type: ignore[return-value]
