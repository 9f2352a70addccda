"""The seam between grading and files: grading yields results, writers consume them.

A writer is told about each submission as soon as it is graded
(``submission``, called from grading threads: it must be thread-safe for
different students) and about the whole class once at the end (``finish``).
The gradebook, CI exporters and similarity reports plug in here, never into
the batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Protocol, Sequence

from grader.assignment.plan import Plan
from grader.grading.results import SubmissionResult


class Writer(Protocol):
    def submission(self, result: SubmissionResult) -> None: ...

    def finish(self, results: Sequence[SubmissionResult]) -> None: ...


class StudentFiles:
    """``<out>/<student>/results.json`` and ``report.html``, written as each student is graded."""

    def __init__(self, out_dir: Path, plan: Plan):
        self.out_dir, self.plan = Path(out_dir), plan

    def submission(self, result: SubmissionResult) -> None:
        from grader.outputs.gradescope import write_results_json
        from grader.outputs.report import write_student_report

        write_results_json(result, self.out_dir / result.student / "results.json")
        write_student_report(result, self.out_dir / result.student / "report.html", title=self.plan.title)

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        pass


class ClassFiles:
    """``<out>/grades.csv``, ``index.html`` (with the wrong-answer clusters) and ``clusters.json``,
    written once the whole class is graded."""

    def __init__(self, out_dir: Path, plan: Plan):
        self.out_dir, self.plan = Path(out_dir), plan

    def submission(self, result: SubmissionResult) -> None:
        pass

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        from grader.grading.clusters import write_clusters_json, wrong_answer_clusters
        from grader.outputs.gradescope import write_grades_csv
        from grader.outputs.report import write_index

        write_grades_csv(results, self.out_dir / "grades.csv", [q.id for q in self.plan.questions])
        clusters = wrong_answer_clusters(results, self.plan)
        write_index(results, self.out_dir, title=self.plan.title, clusters=clusters)
        write_clusters_json(clusters, self.out_dir / "clusters.json")


def default_writers(out_dir: Path, plan: Plan) -> list[Writer]:
    return [StudentFiles(out_dir, plan), ClassFiles(out_dir, plan)]


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
