"""Which isolation level to grade under: fail closed.

``choose(required)`` returns a ``Detection``: the level to use and, for every stronger level,
why it cannot run here. A level *works* when a real worker, started through that level's own
code path (``levels.py``), reaches its ``ready`` frame; before that, ``Level.requirements``
names a missing program or library without starting anything. What a failure says is the
probe's actual reason (bwrap's own error message, the missing package) and how to fix it.

* ``required`` given: that level or ``IsolationUnavailable`` (exit 2) with its reason.
* ``required`` not given: the strongest *sandboxed* level that works; if none does,
  ``IsolationUnavailable`` - unsandboxed grading needs an explicit ``--isolation process``.
  ``allow_process=True`` (``hwgrader check`` on a student's laptop) falls back to ``process``.

Only ``ProbeFailed`` and ``SandboxError`` (the environment said no) mean "not available":
any other exception is a bug in a level and propagates, never a silent downgrade. Results
are cached per process (``reset()`` forgets them, for tests).
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from grader.errors import IsolationUnavailable, SandboxError
from grader.sandbox.levels import Isolation, ProbeFailed, make_level

#: Seconds a probe worker may take to become ready (a cold bwrap start on a busy machine).
PROBE_SECONDS = 30.0


@dataclass(frozen=True)
class Detection:
    level: Isolation
    #: why each level stronger than ``level`` was not used (strongest first)
    failures: tuple[tuple[Isolation, str], ...] = field(default=())

    def describe(self) -> str:
        """One line for the terminal, printed before grading starts."""
        text = f"isolation: {self.level}"
        if self.failures:
            text += " (" + "; ".join(f"{lvl} unavailable: {why}" for lvl, why in self.failures) + ")"
        return text


def _start_worker(level) -> None:
    """Start one real worker through ``level`` and wait for its ready frame."""
    from grader.sandbox import replies
    from grader.sandbox.capture import SplitOutput
    from grader.sandbox.inside.protocol import ProtocolError
    from grader.sandbox.limits import Limits
    from grader.sandbox.session import _Worker

    output = SplitOutput(4096)
    worker = _Worker(level, Limits(), 0, output)
    try:
        header, _ = worker.recv(time.monotonic() + PROBE_SECONDS, 0)
        replies.parse_reply(header, "ready")  # InvalidReply (a ProtocolError) if it is not one
    except (TimeoutError, EOFError, ProtocolError) as exc:
        worker.kill()
        what = "did not start in time" if isinstance(exc, TimeoutError) else "did not start"
        said = output.tail(600).decode("utf-8", "replace").strip()
        raise ProbeFailed(f"a worker {what}" + (f": {said[-400:]}" if said else "")) from None
    worker.kill()


_lock = threading.Lock()


@functools.lru_cache(maxsize=None)
def _probe_cached(isolation: Isolation) -> Optional[str]:
    level = make_level(isolation)
    try:
        level.requirements()
        _start_worker(level)
    except ProbeFailed as exc:
        return exc.reason
    except SandboxError as exc:
        return exc.message
    finally:
        level.close()
    return None


def probe(isolation: Isolation | str) -> Optional[str]:
    """``None`` if ``isolation`` works here, else the reason it does not (cached)."""
    with _lock:
        return _probe_cached(Isolation(isolation))


def reset() -> None:
    with _lock:
        _probe_cached.cache_clear()


def choose(required: Optional[Isolation | str] = None, *, allow_process: bool = False) -> Detection:
    """The level to grade under (see the module docstring); ``IsolationUnavailable`` if none."""
    if required is not None:
        level = Isolation(required)
        why = probe(level)
        if why is not None:
            raise IsolationUnavailable(f"--isolation {level} cannot run here: {why}")
        return Detection(level)
    failures = []
    for level in Isolation:
        if not level.sandboxed and not allow_process:
            break
        why = probe(level)
        if why is None:
            return Detection(level, tuple(failures))
        failures.append((level, why))
    reasons = "no sandbox works here (" + "; ".join(f"{lvl}: {why}" for lvl, why in failures) + "); fix one of these"
    if allow_process:
        raise IsolationUnavailable(reasons)
    raise IsolationUnavailable(reasons + ", or grade unsandboxed with --isolation process (development only: "
                               "student code can then read and write everything your user can)")
