"""The parent's handle on one submission's sandboxed worker.

``WorkerSession`` starts a worker through the batch's ``Sandbox`` (an isolation level from
``levels.py``), loads the student's code units into it and runs one call per planned case
with a wall-clock limit. Anything that goes wrong on the untrusted side - a hang, a crash, a
memory bomb, garbage on the channel - is turned into a verdict for that one call; the worker
is killed (with everything it started) and the next call transparently starts a fresh worker
and reloads the same units.

The parent never trusts a byte from the worker. Every reply is read by ``replies.ReplyReader``
(bounded memory, depth-guarded JSON) in ``_Worker.recv`` and validated by
``replies.parse_reply`` against one schema before use (``_parse_load``, ``_parse_reply``,
``_too_large`` at the end of ``WorkerSession``); arrays are rebuilt with
``numpy.frombuffer(..., "<f8")``. stdout/stderr go to one pipe drained by a thread into a
``capture.SplitOutput`` (what was printed before the first hidden call, and after it).

This module knows nothing about grading: it returns plain data (``LoadReport``,
``CallOutcome``, ``CellFailure``) that the grading engine turns into results.
"""

from __future__ import annotations

import select
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from grader.errors import SandboxError
from grader.sandbox import replies
from grader.sandbox.capture import SplitOutput
from grader.sandbox.channel import Channel, WorkerPipes
from grader.sandbox.inside import protocol
from grader.sandbox.inside.protocol import ProtocolError
from grader.sandbox.levels import Isolation, Level, Started, make_level
from grader.sandbox.limits import Limits
from grader.sandbox.replies import InvalidReply, Outcome, ReplyReader, ReplyTooLarge

__all__ = ["Sandbox", "LoadReport", "CallOutcome", "CellFailure", "WorkerSession", "Limits"]

_MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory",
                   b"Unable to allocate")
_MAX_MSG = 500
_MAX_TB = 20_000
#: How an incident during a hidden call is told to the student: what happened, no values.
_SAFE_WORDS = {Outcome.CRASH: "the worker crashed", Outcome.MEMORY: "ran out of memory",
               Outcome.TIMEOUT: "ran out of CPU time", Outcome.INVALID_REPLY: "the worker sent an invalid reply"}


@dataclass
class CellFailure:
    """A notebook cell (or the module body) that raised while loading."""

    cell: int                  # 1-based cell number; 0 for a .py module
    summary: str               # "ModuleNotFoundError: No module named 'keras'"
    traceback: str             # points at the student's file and line


@dataclass
class LoadReport:
    ok: bool
    verdict: Outcome                   # OK, TIMEOUT, MEMORY, CRASH or INVALID_REPLY
    error: Optional[str]
    cell_failures: list[CellFailure] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    answers: dict[str, str] = field(default_factory=dict)


@dataclass
class CallOutcome:
    verdict: Outcome
    outputs: Optional[list[np.ndarray]]
    message: str
    traceback: Optional[str]
    mutated: list[str]
    seconds: float


class Sandbox:
    """One batch's isolation level and what it holds (fork servers, spawner threads).

    The batch creates it once (after ``detect.choose`` picked the level), every session of the
    batch starts its workers through it, and ``close()`` stops whatever it started.
    """

    def __init__(self, isolation: Isolation | str, slots: int = 1):
        self.isolation = Isolation(isolation)
        self.slots = max(1, slots)
        self.level: Level = make_level(self.isolation, self.slots)

    def warm(self) -> None:
        """Start what can be started ahead of the first worker (bwrap-fork's fork servers)."""
        warm = getattr(self.level, "warm", None)
        if warm is not None:
            warm()

    def close(self) -> None:
        self.level.close()

    def __enter__(self) -> "Sandbox":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: The worker's names for unnamed positional arguments it found modified ("argument 3").
_POSITIONAL_NAMES = frozenset(f"argument {i + 1}" for i in range(64))


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class _Worker:
    """One running worker process: its level, its process, its channel."""

    def __init__(self, level: Level, limits: Limits, slot: int, output: SplitOutput):
        self.level = level
        pipes = WorkerPipes()
        try:
            self.started: Started = level.start(limits, pipes, slot)
        except (OSError, SandboxError) as exc:
            pipes.close_all()
            raise SandboxError(f"could not start a {level.isolation} worker: {exc}") from None
        pipes.close_child_ends()
        self.channel = Channel(pipes.req_w, pipes.res_r)
        self.drainer = threading.Thread(target=output.drain, args=(pipes.out_r,), daemon=True,
                                        name=f"hwgrader-output-{self.started.proc.pid}")
        self.drainer.start()
        self.dead = False
        self.killed_by_us = False

    def send(self, header: dict, payload: bytes, deadline: float) -> None:
        self.channel.send(header, payload, deadline)

    def recv(self, deadline: float, max_payload: int,
             max_header: int = replies.LOAD_HEADER_BYTES) -> tuple[dict, memoryview]:
        """Exactly one reply frame (``replies.ReplyReader``: bounded memory, depth-guarded JSON);
        InvalidReply on garbage, oversize or a second frame, EOFError, TimeoutError."""
        reader = ReplyReader(max_header=max_header, max_payload=max_payload)
        res_r = self.channel.res_r
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            try:
                r, _, _ = select.select([res_r], [], [], left)
            except InterruptedError:
                continue
            if not r:
                continue
            frame = reader.read_from(res_r)
            if frame is not None:
                if reader.has_more(res_r):
                    raise InvalidReply("the worker sent more than one reply")
                return frame

    def kill(self) -> None:
        """Kill it and everything it started, close the channel, remove its scratch folders."""
        if self.dead:
            return
        self.dead = True
        self.killed_by_us = self.started.proc.poll() is None
        try:
            self.level.kill(self.started)
        finally:
            self.channel.close()
            self.drainer.join(timeout=2)
            self.started.cleanup()

    def death(self) -> tuple[Optional[int], Optional[int]]:
        """(exit code, signal) once the process is gone (waits briefly)."""
        return self.level.exit_status(self.started)


class WorkerSession:
    """One submission's worker; a context manager. See module docstring."""

    def __init__(self, units: list[dict], answer_names: list[str], limits: Limits, *,
                 sandbox: Optional[Sandbox] = None, isolation: Optional[Isolation | str] = None, slot: int = 0):
        """Workers start through ``sandbox`` (the batch's); or, given only ``isolation``, through a
        sandbox of the session's own, closed with it (``None``: the strongest level that works)."""
        self.units = [dict(u) for u in units]
        self.answer_names = list(answer_names)
        self.limits = limits
        self.slot = slot
        self._own_sandbox = sandbox is None
        if sandbox is None:
            from grader.sandbox.detect import choose

            sandbox = Sandbox(choose(isolation).level if isolation is None else isolation)
            sandbox.warm()  # a fork server's start is not the student's time
        self.sandbox = sandbox
        self.isolation: Isolation = sandbox.isolation
        self.incidents: list[str] = []         # can be shown to the student
        self.hidden_incidents: list[str] = []  # full wording of incidents during hidden calls
        self._output = SplitOutput(limits.output_bytes)
        self._worker: Optional[_Worker] = None
        self._spent = 0.0
        self._next_id = 1
        self._load_report: Optional[LoadReport] = None
        self._broken: Optional[str] = None   # why no more calls can run
        self._restarts = 0
        self._closed = False

    # ------------------------------------------------------------ public
    def __enter__(self) -> "WorkerSession":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def seconds_left(self) -> float:
        return self.limits.submission_seconds - self._spent

    def load(self) -> LoadReport:
        """Start the worker and execute the units (limit: ``load_seconds``)."""
        t0 = time.monotonic()
        try:
            report = self._start_and_load(first=True)
        finally:
            self._spent += time.monotonic() - t0
        self._load_report = report
        if not report.ok:
            self._broken = "the submission did not load"
        return report

    def call(self, function: str, args: list, kwargs: dict, arg_names: list[str], n_outputs: int,
             *, output_names: Optional[list[str]] = None, hidden: bool = False,
             max_reply_bytes: Optional[int] = None, cpu_seconds: Optional[float] = None,
             cpu_limit_text: Optional[str] = None) -> CallOutcome:
        """Run ``function(*args, **kwargs)`` in the worker on fresh copies of the inputs.

        The call may take ``Limits.call_seconds`` of wall-clock time and, when ``cpu_seconds`` is
        given, that much CPU time (the worker arms a CPU timer that kills it: a verdict "timeout";
        ``cpu_limit_text`` says what that limit is in the message, default "N s of CPU time").

        ``hidden``: whoever reads this call's outcome must not learn its inputs (the worker is
        not told). Output printed from this call on goes to ``hidden_output()``, and incidents
        carry no value the worker chose (exit code, signal, protocol detail); their full text
        goes to ``hidden_incidents``. ``max_reply_bytes``: the most of the reply's payload the
        parent reads (default: the protocol's cap for ``n_outputs`` arrays); a larger reply is
        refused unread and the call's outcome is ``REJECTED``.
        """
        if self._closed:
            raise RuntimeError("session is closed")
        if self._load_report is None:
            self.load()
        if hidden:
            self._output.seal()
        if self._broken is not None:
            return CallOutcome(Outcome.SKIPPED, None, f"not run: {self._broken}", None, [], 0.0)
        if self.seconds_left <= 0:
            return CallOutcome(Outcome.SKIPPED, None,
                               f"not run: the submission's time budget ({self.limits.submission_seconds:g} s) "
                               "was spent", None, [], 0.0)
        if self._load_report.functions and function not in self._load_report.functions:
            return CallOutcome(Outcome.MISSING, None, f"the submission does not define {function}()", None, [], 0.0)
        t0 = time.monotonic()
        try:
            if self._worker is None or self._worker.dead:
                if not self._restart(function, hidden):
                    return CallOutcome(Outcome.SKIPPED if self._broken else Outcome.CRASH, None,
                                       f"not run: {self._broken}", None, [], time.monotonic() - t0)
            return self._call(function, args, kwargs, arg_names, n_outputs, output_names, hidden,
                              max_reply_bytes, cpu_seconds, cpu_limit_text)
        finally:
            self._spent += time.monotonic() - t0

    def output(self) -> tuple[str, bool]:
        """Captured stdout+stderr before the first hidden call (first ``output_bytes``), and
        whether more was discarded.

        Complete once the session is closed; while a worker runs, whatever has been drained so far.
        """
        return self._output.visible()

    def hidden_output(self) -> tuple[str, bool]:
        """Captured stdout+stderr from the first hidden call on: for the instructor only."""
        return self._output.hidden()

    def _incident(self, hidden: bool, text: str, safe: str) -> None:
        """Record an incident; during a hidden call the student sees only ``safe``."""
        self.incidents.append(safe if hidden else text)
        if hidden:
            self.hidden_incidents.append(text)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._worker is not None:
                self._worker.kill()
                self._worker = None
        finally:
            if self._own_sandbox:
                self.sandbox.close()

    def __del__(self):  # last resort; close() is the contract
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------ internals
    def _spawn(self) -> _Worker:
        w = _Worker(self.sandbox.level, self.limits, self.slot, self._output)
        deadline = time.monotonic() + max(10.0, self.limits.load_seconds)
        try:
            header, _ = w.recv(deadline, 0)
            replies.parse_reply(header, "ready")
        except (TimeoutError, EOFError, ProtocolError) as exc:
            w.kill()
            tail = self._output.tail(600).decode("utf-8", "replace").strip()
            raise SandboxError(f"the {self.isolation} worker did not start ({type(exc).__name__}); "
                               f"its output: {tail[-400:]!r}") from None
        return w

    def _start_and_load(self, first: bool) -> LoadReport:
        self._worker = w = self._spawn()
        deadline = time.monotonic() + self.limits.load_seconds
        try:
            w.send({"op": "load", "units": self.units, "answers": self.answer_names}, b"", deadline)
            header, _ = w.recv(deadline, 0)
            return self._parse_load(replies.parse_reply(header, "loaded"))
        except TimeoutError:
            w.kill()
            msg = f"loading the submission ran out of time ({self.limits.load_seconds:g} s)"
            return LoadReport(False, Outcome.TIMEOUT, msg)
        except (EOFError, ProtocolError) as exc:
            verdict, msg = self._classify_death(w, exc, "loading the submission")
            return LoadReport(False, verdict, msg)

    def _restart(self, function: str, hidden: bool = False) -> bool:
        self._restarts += 1
        if self._worker is not None:
            self._worker.kill()
        self._output.add(b"\n[hwgrader: worker restarted]\n")
        report = self._start_and_load(first=False)
        if report.ok:
            return True
        self._broken = f"the worker could not be restarted ({report.error})"
        if hidden:
            self._broken = "the worker could not be restarted"
        self._incident(hidden, f"the worker could not be restarted before {function}: {report.error}",
                       f"the worker could not be restarted before {function}")
        if self._worker is not None:
            self._worker.kill()
        return False

    def _classify_death(self, w: _Worker, exc: BaseException, doing: str,
                        cpu_limit_text: Optional[str] = None) -> tuple[Outcome, str]:
        """Kill what is left and name what happened: (outcome, message)."""
        if isinstance(exc, ProtocolError):
            w.kill()
            return Outcome.INVALID_REPLY, f"the worker sent an invalid reply while {doing} ({exc})"
        code, sig = w.death()
        w.kill()
        tail = self._output.tail()
        memory_hint = any(m in tail for m in _MEMORY_MARKERS)
        if sig == signal.SIGPROF and cpu_limit_text is not None:
            return Outcome.TIMEOUT, f"ran out of time ({cpu_limit_text})"
        if sig in (signal.SIGXCPU, signal.SIGKILL) and not memory_hint:
            return Outcome.TIMEOUT, f"ran out of CPU time ({self.limits.cpu_seconds} s) while {doing}"
        if memory_hint and (sig is not None or code not in (0, None)):
            return Outcome.MEMORY, f"ran out of memory ({self.limits.memory_mb} MB) while {doing}"
        if sig is not None:
            return Outcome.CRASH, f"the worker was killed by {_signame(sig)} while {doing}"
        if code is None:
            return Outcome.CRASH, f"the worker closed its channel while {doing}"
        return Outcome.CRASH, f"the worker exited with code {code} while {doing}"

    def _call(self, function, args, kwargs, arg_names, n_outputs, output_names, hidden,
              max_reply_bytes, cpu_seconds=None, cpu_limit_text=None) -> CallOutcome:
        w = self._worker
        assert w is not None
        t0 = time.monotonic()
        cid = self._next_id
        self._next_id += 1
        kw_names = list(kwargs)
        descs, payload = protocol.encode_values(list(args) + [kwargs[k] for k in kw_names])
        header = {"op": "call", "id": cid, "function": function, "args": descs[: len(args)],
                  "kwargs": dict(zip(kw_names, descs[len(args):])), "arg_names": list(arg_names),
                  "n_outputs": int(n_outputs)}
        if output_names:
            header["output_names"] = list(output_names)
        if cpu_seconds is not None:
            header["cpu_seconds"] = float(cpu_seconds)
        call_seconds = float(self.limits.call_seconds)
        limit = min(call_seconds, max(self.seconds_left, 0.0))
        budget_bound = limit < call_seconds
        deadline = t0 + limit
        max_payload = max(1, int(n_outputs)) * protocol.MAX_ELEMENTS * 8
        if max_reply_bytes is not None:
            max_payload = min(max_payload, int(max_reply_bytes))
        try:
            w.send(header, payload, deadline)
            h, body = w.recv(deadline, max_payload, replies.CALL_HEADER_BYTES)
            return self._parse_reply(h, body, cid, n_outputs, arg_names, kw_names, time.monotonic() - t0)
        except ReplyTooLarge as exc:
            w.kill()  # its payload is still in the pipe, unread
            return self._too_large(exc, cid, n_outputs, max_payload, function, hidden, time.monotonic() - t0)
        except TimeoutError:
            w.kill()
            secs = time.monotonic() - t0
            if budget_bound:
                msg = (f"ran out of time: the submission's time budget "
                       f"({self.limits.submission_seconds:g} s) ran out during this call")
            else:
                msg = f"ran out of time ({self.limits.call_seconds:g} s)"
            self.incidents.append(f"{function} {msg}; the worker was restarted")  # no worker value in it
            return CallOutcome(Outcome.TIMEOUT, None, msg, None, [], secs)
        except (EOFError, ProtocolError) as exc:
            cpu_text = None if cpu_seconds is None else (cpu_limit_text or f"{cpu_seconds:g} s of CPU time")
            verdict, msg = self._classify_death(w, exc, f"running {function}", cpu_text)
            self._incident(hidden, f"{function}: {msg}; the worker was restarted",
                           f"{function}: {_SAFE_WORDS[verdict]} on a hidden case; the worker was restarted")
            return CallOutcome(verdict, None, msg, None, [], time.monotonic() - t0)

    # ------------------------------------------------------------ reply decoding
    # Everything the worker sends is untrusted: it is validated (``replies``) before use here.

    def _parse_load(self, loaded: replies.Loaded) -> LoadReport:
        fails = [CellFailure(cell=f.cell, summary=f.summary[:_MAX_MSG], traceback=f.traceback[:_MAX_TB])
                 for f in loaded.cell_failures]
        answers = {k: v for k, v in loaded.answers.items() if k in self.answer_names}
        return LoadReport(True, Outcome.OK, None, fails, list(loaded.functions), answers)

    def _too_large(self, exc: ReplyTooLarge, cid: int, n_outputs: int, limit: int, function: str,
                   hidden: bool, secs: float) -> CallOutcome:
        """A reply over the call's byte limit: ``REJECTED`` if its header is otherwise valid."""
        try:
            reply = replies.parse_reply(exc.header, "call", call_id=cid, n_outputs=n_outputs)
        except InvalidReply as bad:
            msg = f"the worker sent an invalid reply while running {function} ({bad})"
            self._incident(hidden, f"{function}: {msg}; the worker was restarted",
                           f"{function}: {_SAFE_WORDS[Outcome.INVALID_REPLY]} on a hidden case; "
                           "the worker was restarted")
            return CallOutcome(Outcome.INVALID_REPLY, None, msg, None, [], secs)
        if not isinstance(reply, replies.Returned):
            raise AssertionError("a failure reply has no payload")  # parse_reply requires nbytes 0
        shapes = ", ".join("(" + ", ".join(str(d) for d in s) + ")" for s in reply.shapes)
        msg = (f"returned {exc.header['nbytes'] // 8:,} values (shape {shapes}): far more than this case "
               f"expects; at most {limit // 8:,} are read")
        return CallOutcome(Outcome.REJECTED, None, msg, None, [], secs)

    def _parse_reply(self, h, body, cid, n_outputs, arg_names, kw_names, secs) -> CallOutcome:
        reply = replies.parse_reply(h, "call", call_id=cid, n_outputs=n_outputs, nbytes=len(body))
        if isinstance(reply, replies.Raised):
            tb = reply.traceback[:_MAX_TB] if reply.traceback is not None else None
            return CallOutcome(reply.kind, None, reply.message[:_MAX_MSG], tb, [], secs)
        outputs = reply.arrays(body)
        allowed = set(arg_names) | set(kw_names) | _POSITIONAL_NAMES
        mutated = [m for m in reply.mutated if m in allowed]
        return CallOutcome(Outcome.OK, outputs, "", None, mutated, secs)
