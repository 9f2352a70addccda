"""Incremental grading on top of the gradebook: what to re-run, and writers that read it back.

``grade`` into an ``--out`` that already has a gradebook re-runs only what
changed: a submission whose content hash and run key (rubric, reference code,
hwgrader version: :func:`~grader.gradebook.store.run_key`) are those stored is
``reused``; the rest is graded again. Manual grades live in the gradebook's log,
keyed by (student, question), so no re-run drops them.

:class:`GradebookWriter` plugs into the writers' seam
(:mod:`grader.outputs.writers`): it stores each fresh result, then writes that
student's files *from the gradebook*, so every output shows automatic + manual
points. :func:`refresh` rewrites DIR's files after manual grades changed
(``serve``, ``manual import``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from grader.assignment.intake import SubmissionSource
from grader.gradebook.store import Gradebook, content_hash, run_key
from grader.grading.results import SubmissionResult
from grader.outputs.writers import write_class_files, write_student_files

#: Run key stored for a result hwgrader itself failed on: never equal to a real key, so it is re-graded.
NOT_REUSABLE = "not-reusable"


def rubric_run_key(rubric_path: Path) -> str:
    """The run key of a rubric file: its bytes, its reference package's code, hwgrader's version."""
    from grader.assignment.rubric import load_rubric

    return run_key(rubric_path, load_rubric(rubric_path).reference_dir)


def student_of(item: Union[Path, SubmissionSource]) -> str:
    """The student a submission belongs to (intake's key; for a bare path, as the engine names it)."""
    return item.student if isinstance(item, SubmissionSource) else Path(item).stem


def _content_hash(item: Union[Path, SubmissionSource]) -> str:
    return item.content_hash if isinstance(item, SubmissionSource) else content_hash(item)


@dataclass
class RunPlan:
    """What this run grades and what it takes from the gradebook."""

    to_grade: list[Union[Path, SubmissionSource]] = field(default_factory=list)
    reused: list[SubmissionResult] = field(default_factory=list)
    reused_paths: list[Union[Path, SubmissionSource]] = field(default_factory=list)
    hashes: dict[str, str] = field(default_factory=dict)      # student -> content hash

    @property
    def students(self) -> list[str]:
        return sorted(self.hashes)


def plan_run(paths: Sequence[Union[Path, SubmissionSource]], gradebook: Gradebook, key: str) -> RunPlan:
    """Split ``paths`` (intake's sources, or file paths) into those to grade and the stored
    results that still hold."""
    run = RunPlan()
    for path in paths:
        student = student_of(path)
        try:
            digest = _content_hash(path)
        except OSError:
            run.to_grade.append(path)  # unreadable: the engine grades it as broken and says why
            continue
        run.hashes[student] = digest
        stored = gradebook.reusable(student, digest, key)
        if stored is None:
            run.to_grade.append(path)
        else:
            run.reused.append(stored)
            run.reused_paths.append(path)
    return run


class GradebookWriter:
    """A writer: stores each freshly graded result, then writes the student's files from the gradebook."""

    def __init__(self, gradebook: Gradebook, out_dir: Path, run: RunPlan, key: str):
        self.gradebook, self.out_dir, self.run, self.key = gradebook, Path(out_dir), run, key
        self._reused = {r.student for r in run.reused}

    def submission(self, result: SubmissionResult) -> None:
        if result.student in self._reused:
            stored = self.gradebook.result(result.student)
        else:
            key = NOT_REUSABLE if result.hwgrader_failed else self.key
            self.gradebook.store_result(result, self.run.hashes.get(result.student, ""), key,
                                        display_name=result.display_name or None, lms_id=result.lms_id)
            stored = self.gradebook.with_manual(result)
        write_student_files(stored, self.out_dir, title=self.gradebook.title)

    def finish(self, results: Sequence[SubmissionResult]) -> None:
        write_class(self.gradebook, self.out_dir)


def write_class(gradebook: Gradebook, out_dir: Path) -> list[SubmissionResult]:
    """grades.csv and index.html of every present student, from the gradebook; returns their results."""
    results = gradebook.results(light=True)
    write_class_files(results, out_dir, title=gradebook.title,
                      question_ids=[q.id for q in gradebook.questions()])
    return results


def refresh(out_dir: Path, students: Optional[Iterable[str]] = None, *,
            gradebook: Optional[Gradebook] = None, class_files: bool = True) -> None:
    """Rewrite DIR's files from its gradebook after manual grades changed.

    The given students' results.json and report.html (every present student's when
    ``None``), then, with ``class_files``, grades.csv and index.html.
    """
    own = gradebook is None
    gb = gradebook or Gradebook.open(out_dir)
    try:
        if students is None:
            chosen = gb.results()
        else:
            present = {s.id for s in gb.students()}
            chosen = [gb.result(s) for s in sorted(set(students)) if s in present]
        for result in chosen:
            write_student_files(result, out_dir, title=gb.title)
        if class_files:
            write_class(gb, out_dir)
    finally:
        if own:
            gb.close()
