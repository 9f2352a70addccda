"""The seam between grading and files: grading yields results, writers consume them.

A writer is told about each submission as soon as it is graded
(``submission``, called from grading threads: it must be thread-safe for
different students) and about the whole class once at the end (``finish``).
The gradebook, CI exporters and similarity reports plug in here, never into
the batch.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from grader.assignment.plan import Plan
from grader.grading.results import SubmissionResult


class Writer(Protocol):
    def submission(self, result: SubmissionResult) -> None: ...

    def finish(self, results: Sequence[SubmissionResult]) -> None: ...


def write_student_files(result: SubmissionResult, out_dir: Path, *, title: str) -> None:
    """``<out>/<student>/results.json`` and ``report.html`` of one student."""
    from grader.outputs.gradescope import write_results_json
    from grader.outputs.report import write_student_report

    write_results_json(result, Path(out_dir) / result.student / "results.json")
    write_student_report(result, Path(out_dir) / result.student / "report.html", title=title)


def write_class_files(results: Sequence[SubmissionResult], out_dir: Path, *, title: str,
                      question_ids: Sequence[str]) -> None:
    """``<out>/grades.csv`` and ``index.html`` of the whole class; the index shows the wrong-answer
    clusters of ``<out>/clusters.json`` (written by ``ClusterFile`` at the end of ``grade``)."""
    from grader.grading.clusters import read_clusters_json
    from grader.outputs.gradescope import write_grades_csv
    from grader.outputs.report import write_index

    write_grades_csv(results, Path(out_dir) / "grades.csv", list(question_ids))
    clusters_file = Path(out_dir) / "clusters.json"
    clusters = read_clusters_json(clusters_file) if clusters_file.is_file() else []
    write_index(list(results), Path(out_dir), title=title, clusters=clusters)


class StudentFiles:
    """``<out>/<student>/results.json`` and ``report.html``, written as each student is graded."""

    def __init__(self, out_dir: Path, plan: Plan):
        self.out_dir, self.plan = Path(out_dir), plan

    def submission(self, result: SubmissionResult) -> None:
        write_student_files(result, self.out_dir, title=self.plan.title)

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        pass


class ClassFiles:
    """``<out>/grades.csv`` and ``index.html``, written once the whole class is graded."""

    def __init__(self, out_dir: Path, plan: Plan):
        self.out_dir, self.plan = Path(out_dir), plan

    def submission(self, result: SubmissionResult) -> None:
        pass

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        write_class_files(results, self.out_dir, title=self.plan.title,
                          question_ids=[q.id for q in self.plan.questions])


class ClusterFile:
    """``<out>/clusters.json``: the wrong-answer clusters of every result it saw. Put it before the
    writer of the class files, which shows them in ``index.html``."""

    def __init__(self, out_dir: Path, plan: Plan):
        self.out_dir, self.plan = Path(out_dir), plan
        self.seen: dict[str, SubmissionResult] = {}
        self.lock = threading.Lock()

    def submission(self, result: SubmissionResult) -> None:
        with self.lock:
            self.seen[result.student] = result

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        from grader.grading.clusters import write_clusters_json, wrong_answer_clusters

        with self.lock:
            everyone = {**self.seen, **{r.student: r for r in results}}
        write_clusters_json(wrong_answer_clusters(list(everyone.values()), self.plan),
                            self.out_dir / "clusters.json")


def default_writers(out_dir: Path, plan: Plan) -> list[Writer]:
    return [StudentFiles(out_dir, plan), ClusterFile(out_dir, plan), ClassFiles(out_dir, plan)]


class WriterChain:
    """Several writers behind one; each sees every result in the order given."""

    def __init__(self, writers: Iterable[Writer]):
        self.writers = list(writers)

    def submission(self, result: SubmissionResult) -> None:
        for writer in self.writers:
            writer.submission(result)

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        for writer in self.writers:
            writer.finish(results)
