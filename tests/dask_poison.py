"""A worker plugin for tests/test_distributed.py: one student's submission kills every Dask worker
that grades it (the worker process exits), standing for a submission that keeps taking its
machine down. Importable by the test's ``dask worker`` processes (PYTHONPATH includes tests/)."""

from __future__ import annotations

import os

from distributed.diagnostics.plugin import WorkerPlugin


class KillWorkerOnStudent(WorkerPlugin):
    name = "test-kill-worker-on-student"

    def __init__(self, student: str):
        self.student = student

    def setup(self, worker) -> None:
        import grader.distributed.tasks as tasks

        original = getattr(tasks, "_unpoisoned", tasks.grade_guarded)
        tasks._unpoisoned = original

        def grade_guarded(submission, plan, **options):
            if submission.student == self.student:
                os._exit(70)  # the whole worker process, mid-chunk
            return original(submission, plan, **options)

        tasks.grade_guarded = grade_guarded

    def teardown(self, worker) -> None:
        import grader.distributed.tasks as tasks

        tasks.grade_guarded = getattr(tasks, "_unpoisoned", tasks.grade_guarded)
