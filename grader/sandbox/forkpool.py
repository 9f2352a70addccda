"""The parent's side of the fork servers: warm sandboxes that start a submission in milliseconds.

A ``ForkPool`` belongs to one batch (``levels.BwrapFork`` creates it, ``close()`` stops it): one
fork server per grading slot, started inside bwrap on first use (or all at once by
``start_all``) and restarted if it dies. ``ForkedProcess`` looks like the part of
``subprocess.Popen`` the session uses (``pid``, ``poll``, ``wait``, ``kill``), so a worker started
this way is handled like one started with its own bwrap. See ``inside/forkserver.py`` for the
other side: it installs the seccomp filter it is given (``--seccomp-fd``) and a fresh session
keyring in every submission's init process, after the drop to the worker's uid.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from grader.errors import SandboxError
from grader.sandbox import keyring, seccomp
from grader.sandbox.layout import python_view
from grader.sandbox.limits import Limits, rlimit_spec

_MAX_REPLY = 1 << 16


def _tmp_rebinds() -> list[str]:
    """Bound Python paths under /tmp (a venv there): the init process re-binds them into the
    fresh /tmp it mounts for each submission (outermost paths only; what is inside comes along)."""
    paths = [p for _, p in python_view().mounts() if p.startswith("/tmp/")]
    return [p for p in paths if not any(p != q and p.startswith(q + "/") for q in paths)]


class ForkServer:
    """A running fork server (one per slot): spawn, kill and wait for sandboxed workers."""

    def __init__(self, slot: int):
        from grader.sandbox.levels import WORKER_DIR_IN_SANDBOX, bwrap_argv

        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.lock = threading.Lock()
        self.slot = slot
        view = python_view()
        bpf = seccomp.bpf_fd()
        argv = bwrap_argv(Limits(), forkserver=True) + [
            "--", view.executable, "-I", "-S", os.path.join(WORKER_DIR_IN_SANDBOX, "forkserver.py"),
            str(child.fileno()), "--path", os.pathsep.join(view.import_path), "--seccomp-fd", str(bpf),
            "--tmp-rebind", os.pathsep.join(_tmp_rebinds())]
        try:
            keyring.join_fresh_session_keyring()  # the server never holds the grader's keyring
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, pass_fds=(child.fileno(), bpf), close_fds=True,
                                         start_new_session=True,
                                         env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        except OSError as exc:
            raise SandboxError(f"could not start the fork server: {exc}") from None
        finally:
            child.close()
            os.close(bpf)
        self.sock = parent
        self.sock.settimeout(30)
        try:
            ready = json.loads(self.sock.recv(_MAX_REPLY) or b"{}")
        except (OSError, ValueError):
            ready = {}
        if ready.get("ready") is not True:
            self.close()
            err = self.proc.stderr.read(2000).decode("utf-8", "replace") if self.proc.stderr else ""
            raise SandboxError(f"the fork server did not start: {err.strip()[-400:]!r}")

    def request(self, message: dict, fds: tuple[int, ...] = ()) -> dict:
        with self.lock:
            try:
                if fds:
                    socket.send_fds(self.sock, [json.dumps(message).encode()], list(fds))
                else:
                    self.sock.send(json.dumps(message).encode())
                reply = json.loads(self.sock.recv(_MAX_REPLY) or b"{}")
            except (OSError, ValueError) as exc:
                raise SandboxError(f"the fork server stopped answering: {exc}") from None
        if not isinstance(reply, dict) or reply.get("ok") is not True:
            error = reply.get("error") if isinstance(reply, dict) else None
            raise SandboxError(f"the fork server failed: {error or self._death()}")
        return reply

    def _death(self) -> str:
        """Why the server stopped answering, in words (for the error message)."""
        if self.proc.poll() is None:
            return "it closed its channel"
        err = self.proc.stderr.read(4000).decode("utf-8", "replace").strip() if self.proc.stderr else ""
        return f"it exited with {self.proc.returncode}: {err[-600:]!r}"

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stderr:
            self.proc.stderr.close()


class ForkPool:
    """The fork servers of one batch, one per slot; a context manager (``close()`` stops them)."""

    def __init__(self, slots: int):
        self.slots = max(1, slots)
        self._servers: dict[int, ForkServer] = {}
        self._lock = threading.Lock()
        self._slot_locks = {slot: threading.Lock() for slot in range(self.slots)}
        self._closed = False
        #: Servers are started from these long-lived threads only: bwrap's --die-with-parent is
        #: tied to the *thread* that started it, and a server started from a short-lived thread
        #: (a batch or probe thread) would be killed when that thread ends.
        self._launcher = ThreadPoolExecutor(max_workers=min(self.slots, 8),
                                            thread_name_prefix="hwgrader-forkserver")

    def __enter__(self) -> "ForkPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def server(self, slot: int) -> ForkServer:
        """The slot's fork server, started (or restarted, if it died) on first use."""
        if self._closed:
            raise SandboxError("the fork pool is closed")
        with self._lock:
            lock = self._slot_locks.setdefault(slot, threading.Lock())
        with lock:  # one start per slot at a time; different slots start side by side
            server = self._servers.get(slot)
            if server is not None and server.alive:
                return server
            if server is not None:
                server.close()
            server = self._launcher.submit(ForkServer, slot).result()
            with self._lock:
                self._servers[slot] = server
            return server

    def start_all(self) -> None:
        """Start every slot's server now, side by side (rather than in front of each first worker)."""
        with ThreadPoolExecutor(max_workers=self.slots) as starters:  # not the launcher: it runs the starts
            for f in [starters.submit(self.server, slot) for slot in range(self.slots)]:
                f.result()

    def spawn(self, slot: int, limits: Limits, fds: tuple[int, int, int], uid: int) -> "ForkedProcess":
        return ForkedProcess(self.server(slot), limits, fds, uid)

    def close(self) -> None:
        self._closed = True
        with self._lock:
            servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.close()
        self._launcher.shutdown(wait=True)


class ForkedProcess:
    """A worker forked by a fork server, with the slice of ``Popen``'s interface the session needs.

    ``pid`` is the pid of the submission's pid-1 process *inside the fork server's sandbox*; the
    server is the only one who can signal or reap it, so every operation goes through it.
    ``returncode`` follows ``Popen``: ``-n`` for a death by signal ``n``.
    """

    def __init__(self, server: ForkServer, limits: Limits, fds: tuple[int, int, int], uid: int):
        self.server = server
        self.uid = uid
        reply = self.server.request({"op": "spawn", "uid": uid, "rlimits": rlimit_spec(limits),
                                     "tmp_mb": int(limits.tmp_mb)}, fds)
        pid = reply.get("pid")
        if type(pid) is not int:
            raise SandboxError(f"the fork server answered a spawn with pid {pid!r}")
        self.pid = pid
        self.returncode: Optional[int] = None

    def _record(self, status: Optional[dict]) -> Optional[int]:
        if status is None:
            return None
        if self.returncode is None:
            code, sig = status.get("code"), status.get("signal")
            if sig is not None:
                self.returncode = -int(sig)
            elif code is not None and code > 128:
                self.returncode = -(code - 128)  # the pid-1 process reports its worker's signal as 128 + n
            else:
                self.returncode = int(code) if code is not None else 0
        return self.returncode

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self._record(self._ask({"op": "wait", "pid": self.pid, "timeout": 0}))
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None:
            deadline = time.monotonic() + (timeout if timeout is not None else 3600)
            while self.returncode is None:
                left = max(0.0, deadline - time.monotonic())
                self._record(self._ask({"op": "wait", "pid": self.pid, "timeout": min(left, 1.0)}))
                if self.returncode is None and time.monotonic() >= deadline:
                    raise subprocess.TimeoutExpired("forked worker", timeout)
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            self._record(self._ask({"op": "kill", "pid": self.pid}))

    def _ask(self, message: dict) -> Optional[dict]:
        try:
            return self.server.request(message).get("status")
        except SandboxError:
            # The server is gone, and with it (bwrap's pid namespace) every worker it started.
            return {"code": None, "signal": 9}
