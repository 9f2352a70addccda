"""The worker side of a Dask batch: a sandbox and the plan on every worker, set up once.

``SandboxPlugin`` is registered by the batch (one per batch, by name) and runs on every worker of
the cluster, including workers that join or are restarted later. On each it

- checks the worker can sandbox at all: the level the batch requires (``--isolation``), or the
  strongest *sandboxed* level that works there. A worker that cannot is recorded as refused with
  the reason; its tasks raise ``WorkerCannotSandbox`` and the batch reports it and grades
  elsewhere. Nothing is ever graded unsandboxed unless ``--isolation process`` was asked for;
- starts and owns the sandbox's warm fork servers, one per worker thread (slot), and stops them
  at teardown (when the batch unregisters the plugin, or the worker closes);
- holds the batch's plan (inputs, expected outputs, hidden cases) in the worker's memory: the
  plan travels once to each worker with the plugin and never reaches a submission's sandbox,
  which only ever receives a case's inputs.
"""

from __future__ import annotations

import asyncio
import queue
from typing import Optional

from distributed.diagnostics.plugin import WorkerPlugin

from grader.assignment.plan import Plan
from grader.errors import SandboxError
from grader.sandbox.session import Sandbox

def open_sandbox(required: Optional[str], slots: int) -> Sandbox:
    """This worker's sandbox, warm: the level chosen fail closed (``grader.sandbox.detect``), with
    its fork servers (one per slot) started now, so no submission waits for one. Raises
    ``SandboxError`` if the worker cannot sandbox."""
    from grader.errors import IsolationUnavailable
    from grader.sandbox.detect import choose

    try:
        chosen = choose(required).level
    except IsolationUnavailable as exc:
        raise SandboxError(f"no sandbox works on this worker: {exc.message}") from None
    if required != "process" and not chosen.sandboxed:  # ``process`` hides nothing: only if asked for
        raise SandboxError("no sandbox works on this worker (bubblewrap missing or unusable, and no "
                           "unshare); install bubblewrap there")
    sandbox = Sandbox(chosen, slots=slots)
    try:
        sandbox.warm()
    except SandboxError:
        sandbox.close()
        raise
    return sandbox


class SandboxPlugin(WorkerPlugin):
    """See the module docstring. Pickled with the plan and sent to every worker by the scheduler."""

    idempotent = False

    def __init__(self, name: str, plan: Plan, required_isolation: Optional[str]):
        self.name = name
        self.plan = plan
        self.required_isolation = required_isolation
        self.sandbox: Optional[Sandbox] = None
        self.isolation: Optional[str] = None
        self.refusal: Optional[str] = None
        self.slots: "queue.Queue[int]" = queue.Queue()

    def __getstate__(self):  # what travels to the workers: never a queue or a level in use
        return {"name": self.name, "plan": self.plan, "required_isolation": self.required_isolation}

    def __setstate__(self, state):
        self.__init__(state["name"], state["plan"], state["required_isolation"])

    async def setup(self, worker) -> None:
        slots = max(1, int(worker.state.nthreads))
        try:
            # Probing and starting fork servers waits on processes: off the worker's event loop.
            self.sandbox = await asyncio.get_running_loop().run_in_executor(
                None, open_sandbox, self.required_isolation, slots)
        except SandboxError as exc:
            self.refusal = exc.message
            return
        self.isolation = self.sandbox.isolation.value
        for slot in range(slots):
            self.slots.put(slot)

    def teardown(self, worker) -> None:
        sandbox, self.sandbox, self.isolation = self.sandbox, None, None
        if sandbox is not None:
            sandbox.close()  # stops the fork servers (bwrap's --die-with-parent if the worker is killed)

    def status(self) -> dict:
        """What the batch reports about this worker: its level, or why it cannot grade."""
        return {"isolation": self.isolation, "refusal": self.refusal}
