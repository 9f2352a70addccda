"""The parent's handle on one submission's sandboxed worker.

``WorkerSession`` starts a worker (``grader.sandbox.launch``), loads the student's
code units into it and runs one call per planned case with a wall-clock
limit. Anything that goes wrong on the untrusted side - a hang, a crash, a
memory bomb, garbage on the channel - is turned into a verdict for that one
call; the worker is killed (with everything it started) and the next call
transparently starts a fresh worker and reloads the same units.

The parent never trusts a byte from the worker: replies are size-limited,
schema-checked, and arrays are rebuilt with ``numpy.frombuffer(..., "<f8")``.
stdout/stderr of the worker go to one pipe drained by a thread that keeps the
first ``Limits.output_bytes`` and discards the rest.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from grader.sandbox import replies
from grader.sandbox.inside import protocol
from grader.errors import SandboxError
from grader.sandbox.capture import SplitOutput
from grader.sandbox.inside.protocol import ProtocolError
from grader.sandbox.replies import InvalidReply, Outcome, ReplyReader, ReplyTooLarge
from grader.grading.results import CellFailure
from grader.sandbox.forkpool import ForkedProcess, server_for
from grader.sandbox.launch import Launch, Limits, build_launch, detect_isolation

__all__ = ["LoadReport", "CallOutcome", "WorkerSession", "Limits"]

_MEMORY_MARKERS = (b"MemoryError", b"Cannot allocate memory", b"std::bad_alloc", b"out of memory",
                   b"Unable to allocate")
_MAX_MSG = 500
_MAX_TB = 20_000
#: How an incident during a hidden call is told to the student: what happened, no values.
_SAFE_WORDS = {Outcome.CRASH: "the worker crashed", Outcome.MEMORY: "ran out of memory",
               Outcome.TIMEOUT: "ran out of CPU time", Outcome.INVALID_REPLY: "the worker sent an invalid reply"}


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


class _Failure(Exception):
    """The worker broke: verdict + plain-words message (parent-internal)."""

    def __init__(self, verdict: str, message: str):
        super().__init__(message)
        self.verdict, self.message = verdict, message


def _high_fd(fd: int) -> int:
    """Make sure a channel fd is not 0/1/2 (it is passed at the same number)."""
    low = []
    while fd <= 2:
        low.append(fd)
        fd = os.dup(fd)  # non-inheritable, lowest free number
    for f in low:
        os.close(f)
    return fd


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc; empty elsewhere)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except (OSError, ValueError):
        pass
    kids = []
    try:
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                            kids.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
    except OSError:
        pass
    return kids


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


class _Worker:
    """One running worker process (internal)."""

    def __init__(self, isolation: str, limits: Limits, slot: int, output: SplitOutput):
        req_r, req_w = os.pipe()
        res_r, res_w = os.pipe()
        out_r, out_w = os.pipe()
        req_r, res_w = _high_fd(req_r), _high_fd(res_w)
        self.forked = isolation == "bwrap-fork"
        try:
            if self.forked:  # a warm fork server makes the process: see grader.sandbox.forkpool
                self.launch = Launch([], {}, (), isolation)
                self.proc = ForkedProcess(slot, limits, (req_r, res_w, out_w))
            else:
                self.launch = build_launch(isolation, limits, req_r, res_w, slot)
                self.proc = subprocess.Popen(self.launch.argv, stdin=subprocess.DEVNULL, stdout=out_w,
                                             stderr=out_w, **self.launch.popen_kwargs())
        except (OSError, subprocess.SubprocessError, SandboxError) as exc:
            for fd in (req_r, req_w, res_r, res_w, out_r, out_w):
                os.close(fd)
            self._cleanup_launch()
            raise SandboxError(f"could not start a {isolation} worker: {exc}") from None
        for fd in (req_r, res_w, out_w):
            os.close(fd)
        self.req_w, self.res_r = req_w, res_r
        os.set_blocking(self.req_w, False)
        os.set_blocking(self.res_r, False)
        self.output = output
        self.drainer = threading.Thread(target=output.drain, args=(out_r,), daemon=True,
                                        name=f"hwgrader-output-{self.proc.pid}")
        self.drainer.start()
        self.dead = False
        self.killed_by_us = False

    # -- channel ---------------------------------------------------------
    def send(self, header: dict, payload: bytes, deadline: float) -> None:
        data = memoryview(protocol.encode_frame(header, payload, max_header=protocol.MAX_REQUEST_HEADER))
        while data:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            try:
                _, w, _ = select.select([], [self.req_w], [], left)
            except InterruptedError:
                continue
            if not w:
                continue
            try:
                n = os.write(self.req_w, data)
            except BlockingIOError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                raise EOFError from None
            data = data[n:]

    def recv(self, deadline: float, max_payload: int,
             max_header: int = replies.LOAD_HEADER_BYTES) -> tuple[dict, memoryview]:
        """Exactly one reply frame (``replies.ReplyReader``: bounded memory, depth-guarded JSON);
        InvalidReply on garbage, oversize or a second frame, EOFError, TimeoutError."""
        reader = ReplyReader(max_header=max_header, max_payload=max_payload)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            try:
                r, _, _ = select.select([self.res_r], [], [], left)
            except InterruptedError:
                continue
            if not r:
                continue
            frame = reader.read_from(self.res_r)
            if frame is not None:
                if reader.has_more(self.res_r):
                    raise InvalidReply("the worker sent more than one reply")
                return frame

    # -- lifetime --------------------------------------------------------
    def kill(self) -> None:
        if self.dead:
            return
        self.dead = True
        self.killed_by_us = self.proc.poll() is None
        if self.forked:
            # Its pid lives in the fork server's namespace: only the server can kill it (the
            # whole submission namespace dies with its pid-1 process).
            self.proc.kill()
            self._close_channel()
            return
        if self.killed_by_us and self.launch.isolation in ("bwrap", "unshare"):
            # Kill the sandbox's init (our child's child) first: the whole pid namespace dies
            # with it and bwrap/unshare reap it and exit. Killing the outer process first would
            # orphan the init to host pid 1, which leaves a zombie on hosts whose pid 1 does not reap.
            kids = _children(self.proc.pid)
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            if kids:
                try:
                    self.proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.kill()
        except OSError:
            pass
        if self.launch.kill_uid is not None and self.launch.isolation == "process":
            # every process of the dedicated uid, including setsid()'d daemons
            try:
                subprocess.run(["kill", "-KILL", "-1"], user=self.launch.kill_uid, group=self.launch.kill_uid,
                               extra_groups=[], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               timeout=5)
            except (OSError, subprocess.SubprocessError):
                pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._close_channel()

    def _close_channel(self) -> None:
        for fd in (self.req_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
        self.drainer.join(timeout=2)
        self._cleanup_launch()

    def _cleanup_launch(self) -> None:
        if hasattr(self, "launch"):
            self.launch.cleanup()

    def death(self) -> tuple[Optional[int], Optional[int]]:
        """(exit code, signal) once the process is gone (waits briefly)."""
        try:
            rc = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None, None
        if rc < 0:
            return None, -rc
        if rc > 128 and self.launch.isolation in ("bwrap", "unshare"):
            return None, rc - 128  # bwrap / sh report a child's death by signal as 128 + n
        return rc, None


def prepare_workers(isolation: Optional[str], slots: int) -> str:
    """Choose the isolation for a batch and get it ready for ``slots`` concurrent workers.

    Returns the isolation that will be used. For ``bwrap-fork`` the slots' fork servers are
    started now, side by side, rather than one by one in front of each slot's first submission.
    """
    chosen = detect_isolation(isolation)
    if chosen == "bwrap-fork" and slots > 1:
        threads = [threading.Thread(target=server_for, args=(slot,), daemon=True) for slot in range(slots)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    return chosen


class WorkerSession:
    """One submission's worker; a context manager. See module docstring."""

    def __init__(self, units: list[dict], answer_names: list[str], limits: Limits, *,
                 isolation: Optional[str] = None, slot: int = 0):
        self.units = [dict(u) for u in units]
        self.answer_names = list(answer_names)
        self.limits = limits
        self.slot = slot
        self.isolation: str = detect_isolation(isolation)
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
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def __del__(self):  # last resort; close() is the contract
        try:
            self.close()
        except Exception:
            pass

    # ------------------------------------------------------------ internals
    def _spawn(self) -> _Worker:
        w = _Worker(self.isolation, self.limits, self.slot, self._output)
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

    def _parse_load(self, loaded: replies.Loaded) -> LoadReport:
        fails = [CellFailure(cell=f.cell, summary=f.summary[:_MAX_MSG], traceback=f.traceback[:_MAX_TB])
                 for f in loaded.cell_failures]
        answers = {k: v for k, v in loaded.answers.items() if k in self.answer_names}
        return LoadReport(True, Outcome.OK, None, fails, list(loaded.functions), answers)

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
        allowed = set(arg_names) | set(kw_names) | {f"argument {i + 1}" for i in range(64)}
        mutated = [m for m in reply.mutated if m in allowed]
        return CallOutcome(Outcome.OK, outputs, "", None, mutated, secs)
