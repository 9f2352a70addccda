"""What runs on a Dask worker: one chunk of submissions, graded one after another in one slot.

A task carries the submissions themselves (``Submission``: the file's code units and answers, read
in the batch's parent), never a path the worker may not have. It returns plain JSON data
(``SubmissionResult.to_json``) built by hwgrader's own code on the worker from the sandbox's raw
numbers; nothing the student's code produced is ever unpickled anywhere.
"""

from __future__ import annotations

from typing import Sequence

from grader.assignment.submission import Submission
from grader.grading.executors import grade_guarded


class WorkerCannotSandbox(Exception):
    """This worker cannot run submissions sandboxed (or at the required level): grade elsewhere."""

    def __init__(self, worker: str, reason: str):
        super().__init__(worker, reason)
        self.worker, self.reason = worker, reason

    def __str__(self) -> str:
        return f"worker {self.worker} cannot sandbox: {self.reason}"


def grade_chunk(plugin_name: str, chunk: Sequence[tuple[int, Submission, dict]]) -> dict:
    """Grade ``chunk`` ((index, submission, identity) triples) with this worker's sandbox and plan;
    ``identity`` (student, file, display name, LMS id from intake) is kept on the result."""
    from distributed import get_worker

    worker = get_worker()
    plugin = worker.plugins.get(plugin_name)
    if plugin is None:
        raise WorkerCannotSandbox(worker.address, "the batch's set-up did not reach this worker")
    sandbox = plugin.sandbox
    if plugin.refusal is not None or sandbox is None:
        raise WorkerCannotSandbox(worker.address, plugin.refusal or "its sandbox is not ready")
    slot = plugin.slots.get()
    try:
        graded = []
        for index, submission, identity in chunk:
            result, internal_error = grade_guarded(submission, plugin.plan, sandbox=sandbox, slot=slot)
            for field, value in identity.items():
                setattr(result, field, value)
            graded.append([index, result.to_json(), internal_error])
    finally:
        plugin.slots.put(slot)
    return {"worker": worker.address, "isolation": sandbox.isolation.value, "results": graded}
