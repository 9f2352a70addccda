"""``DaskExecutor``: a batch graded on a Dask cluster, with the same outputs as a local run.

- The plan goes to the workers once, inside the batch's ``SandboxPlugin`` (which also sets up
  each worker's sandbox); tasks carry only submissions.
- Submissions travel in chunks (a few per slot and round, at most ``MAX_CHUNK``), so the
  scheduler's per-task cost (about 2 ms) stays far below the grading time.
- Results stream back as chunks finish (``as_completed``) into the batch's ``deliver``: the same
  writers and progress bar as a local run.
- A worker that dies mid-chunk loses nothing: Dask runs the chunk again elsewhere. A chunk that
  kills every worker it runs on (Dask's ``KilledWorker``) is split and its submissions graded
  alone, one suspect at a time; one that still kills workers when it is the only suspect running
  is recorded as an infrastructure failure (not the student's fault, not a grade) and the batch
  goes on. Each submission's first result is
  the one kept, so no student is graded twice in the outputs.
- A worker that cannot sandbox is reported and not used; if none can, the batch stops (exit 2).
"""

from __future__ import annotations

import sys
import uuid
from typing import Optional, Sequence, TextIO

from grader.assignment.plan import Plan
from grader.assignment.submission import Submission, read_submission
from grader.distributed.cluster import Connection, SchedulerAddress
from grader.distributed.plugin import SandboxPlugin
from grader.distributed.tasks import WorkerCannotSandbox, grade_chunk
from grader.errors import ClusterError
from grader.grading.executors import Deliver, Item, failed_result
from grader.grading.results import SubmissionResult

MAX_CHUNK = 32
#: Chunks per slot in the batch: enough that a slow chunk does not leave other slots idle at the end.
ROUNDS = 4


def chunk_size(n: int, slots: int) -> int:
    return max(1, min(MAX_CHUNK, -(-n // max(1, slots * ROUNDS))))


def _as_submission(item: Item) -> tuple[Submission, dict]:
    """The submission's content, read here (workers get its text, never a path they may not have),
    and the identity intake gave it (kept on the result)."""
    from grader.assignment.intake import SubmissionSource, read_source

    if isinstance(item, SubmissionSource):
        return read_source(item), {"student": item.student, "file": item.main.file_name,
                                   "display_name": item.display_name, "lms_id": item.lms_id}
    submission = item if isinstance(item, Submission) else read_submission(item)
    return submission, {}


class DaskExecutor:
    """The ``grade_all`` executor for ``--scheduler``; see the module docstring."""

    def __init__(self, address: SchedulerAddress, *, isolation: Optional[str] = None,
                 log: Optional[TextIO] = sys.stderr):
        self.address = address
        self.required_isolation = isolation
        self.log = log
        self.isolation = "not started"
        self.description = f"--scheduler {address.text}"
        self.refused: dict[str, str] = {}      # worker address -> why it cannot sandbox
        self.isolations: dict[str, str] = {}   # worker address -> level it grades under
        self.infrastructure_failures = 0
        self.retried_alone = 0

    def _say(self, line: str) -> None:
        if self.log is not None:
            print(line, file=self.log, flush=True)

    # ------------------------------------------------------------------ worker status
    def _survey(self, client, name: str) -> None:
        """Ask every worker how its set-up went; report the refusals once each."""

        def status(dask_worker, plugin_name=name):
            plugin = dask_worker.plugins.get(plugin_name)
            return plugin.status() if plugin is not None else {"isolation": None, "refusal": "not set up"}

        for worker, state in client.run(status).items():
            if state["refusal"]:
                if worker not in self.refused:
                    self._say(f"hwgrader: WARNING: Dask worker {worker} is not used: {state['refusal']}")
                self.refused[worker] = state["refusal"]
            elif state["isolation"]:
                self.isolations[worker] = state["isolation"]
                self.refused.pop(worker, None)

    def _usable(self, client) -> list[str]:
        return [w for w in client.scheduler_info(n_workers=-1)["workers"] if w not in self.refused]

    # ------------------------------------------------------------------ the batch
    def grade(self, items: Sequence[Item], plan: Plan, deliver: Deliver) -> None:
        if not items:  # nothing to grade (e.g. every submission reused): no need for the cluster
            self.isolation = "not used"
            return
        with Connection(self.address, warn=self.log) as connection:
            self._grade(connection.client, items, plan, deliver)

    def _grade(self, client, items: Sequence[Item], plan: Plan, deliver: Deliver) -> None:
        from distributed import as_completed
        from distributed.scheduler import KilledWorker

        batch = uuid.uuid4().hex[:12]
        name = f"hwgrader-sandbox-{batch}"
        if not client.scheduler_info(n_workers=-1)["workers"]:
            client.wait_for_workers(1, timeout=60)
        client.register_plugin(SandboxPlugin(name, plan, self.required_isolation), name=name)
        try:
            self._survey(client, name)
            if not self.isolations:
                reasons = "; ".join(sorted(set(self.refused.values()))) or "the cluster has no workers"
                raise ClusterError(f"--scheduler {self.address.text}: no Dask worker can grade: {reasons}")
            levels = sorted(set(self.isolations.values()))
            self.isolation = "/".join(levels)
            slots = sum(client.nthreads(list(self.isolations)).values())
            self._say(f"hwgrader: grading on {len(self.isolations)} Dask worker(s), {slots} slot(s), "
                      f"isolation: {self.isolation}")
            submissions = [(i, *_as_submission(item)) for i, item in enumerate(items)]
            size = chunk_size(len(submissions), slots)
            chunks = [submissions[i:i + size] for i in range(0, len(submissions), size)]
            restrict = list(self.isolations) if self.refused else None
            pending: dict = {}
            counter = iter(range(10**9))

            def submit(chunk, workers=None):
                key = f"hwgrader-{batch}-{next(counter)}"
                future = client.submit(grade_chunk, name, chunk, key=key, pure=False, workers=workers,
                                       allow_other_workers=False)
                pending[future.key] = (future, chunk)
                return future

            done: set[int] = set()
            # Submissions of a chunk that kept killing its workers are retried alone, one at a time:
            # Dask counts a worker's death against every task it held (dask/distributed#5234), so
            # only a submission that dies while it is the single suspect in flight is blamed.
            suspects: list = []
            in_flight: dict = {"key": None}

            def next_suspect() -> None:
                if in_flight["key"] is None and suspects:
                    in_flight["key"] = submit([suspects.pop(0)], restrict).key
                    stream.add(pending[in_flight["key"]][0])

            stream = as_completed([submit(chunk, restrict) for chunk in chunks], loop=client.loop)
            for future in stream:
                _, chunk = pending.pop(future.key)
                alone = future.key == in_flight["key"]
                if alone:
                    in_flight["key"] = None
                try:
                    reply = future.result()
                except KilledWorker:
                    if not alone:
                        self.retried_alone += len(chunk)
                        suspects.extend(chunk)
                    else:
                        index, submission, _ = chunk[0]
                        self.infrastructure_failures += 1
                        why = ("every Dask worker that ran it died (it was retried alone); "
                               "see the workers' logs")
                        deliver(index, failed_result(submission, why), f"{submission.path.name}: {why}")
                        done.add(index)
                    next_suspect()
                    continue
                except WorkerCannotSandbox as exc:
                    self.refused[exc.worker] = exc.reason
                    self._say(f"hwgrader: WARNING: Dask worker {exc.worker} is not used: {exc.reason}")
                    self._survey(client, name)
                    restrict = self._usable(client)
                    if not restrict:
                        raise ClusterError(f"--scheduler {self.address.text}: no Dask worker can grade any more: "
                                           f"{exc.reason}") from None
                    if alone:
                        suspects.insert(0, chunk[0])
                    else:
                        stream.add(submit(chunk, restrict))
                    next_suspect()
                    continue
                except Exception as exc:  # noqa: BLE001 -- hwgrader's own failure on these students, or a
                    # lost scheduler: recorded on each of them (exit 3), the rest of the class goes on
                    why = f"the Dask task failed: {type(exc).__name__}: {exc}"
                    for index, submission, _ in chunk:
                        if index not in done:
                            done.add(index)
                            deliver(index, failed_result(submission, why), f"{submission.path.name}: {why}")
                    next_suspect()
                    continue
                finally:
                    future.release()
                self.isolations.setdefault(reply["worker"], reply["isolation"])
                for index, data, internal_error in reply["results"]:
                    if index in done:  # graded twice (a retried chunk): the first result stands
                        continue
                    done.add(index)
                    deliver(index, SubmissionResult.from_json(data), internal_error)
                next_suspect()
        finally:
            try:
                client.unregister_worker_plugin(name)  # each worker's teardown stops its fork servers
            except Exception as exc:  # noqa: BLE001 -- a dying cluster at the end must not hide the results
                self._say(f"hwgrader: WARNING: could not remove the batch's set-up from the workers: {exc}")
        levels = sorted(set(self.isolations.values()))
        self.isolation = "/".join(levels) or self.isolation
