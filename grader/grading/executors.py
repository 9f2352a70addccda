"""Where a batch's submissions are graded: the executor seam of ``batch.grade_all``.

An executor takes the batch's submissions (paths, or ``Submission`` objects already read in the
parent) and hands back one result per submission, as soon as it is graded, through ``deliver``.
``batch.grade_all`` itself is the one-machine runner (``--jobs N``);
``grader.distributed.DaskExecutor`` grades on a Dask cluster (``--scheduler``), where each
submission is graded with ``grade_guarded``, so a failure of hwgrader itself on one student is
recorded on that student and the batch goes on, wherever it ran.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence, Union

from grader.assignment.plan import Plan
from grader.assignment.submission import Submission
from grader.grading.engine import grade_submission
from grader.grading.results import SubmissionResult

#: What an executor grades: a file the parent can read, or a submission it has already read.
Item = Union[Path, Submission]
#: ``deliver(index, result, internal_error)``: the result of ``items[index]``; ``internal_error``
#: is a line for the instructor when hwgrader (not the student) failed on it.
Deliver = Callable[[int, SubmissionResult, Optional[str]], None]


class Executor(Protocol):
    #: How the batch ran, for the closing line ("--jobs 2", "Dask at tcp://..., 4 slots").
    description: str
    #: The isolation level(s) the workers used (known once the executor has started).
    isolation: str

    def grade(self, items: Sequence[Item], plan: Plan, deliver: Deliver) -> None:
        """Grade every item, calling ``deliver`` exactly once per item (from any thread)."""


def item_name(item) -> tuple[str, str]:
    """(student, file name) of an item, for a result made without grading it."""
    from grader.assignment.intake import SubmissionSource

    if isinstance(item, SubmissionSource):
        return item.student, item.main.file_name
    if isinstance(item, Submission):
        return item.student, item.path.name
    return Path(item).stem, Path(item).name


def failed_result(item: Item, why: str, *, isolation: str = "none") -> SubmissionResult:
    """The result of a submission hwgrader could not grade: not the student's fault, regraded later."""
    student, file = item_name(item)
    return SubmissionResult(student=student, file=file, isolation=isolation, hwgrader_failed=True,
                            load_error=f"hwgrader could not grade this submission (not the student's "
                                       f"fault; it will be regraded): {why}")


def grade_guarded(item: Item, plan: Plan, **engine_options) -> tuple[SubmissionResult, Optional[str]]:
    """Grade one submission; a bug in hwgrader becomes that student's recorded failure, not a crash."""
    try:
        return grade_submission(item, plan, **engine_options), None
    except Exception as exc:  # a bug in hwgrader must not cost the other students their grades
        _, file = item_name(item)
        result = failed_result(item, f"{type(exc).__name__}: {exc}")
        result.output = traceback.format_exc()[-4000:]
        return result, f"{file}: {type(exc).__name__}: {exc}"
