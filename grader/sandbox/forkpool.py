"""The parent's side of the fork server: warm sandboxes that start a submission in milliseconds.

One fork server per grading slot (``--jobs N`` gives N), started lazily inside
bwrap and kept for the life of the grader process. ``ForkedProcess`` looks
like the part of ``subprocess.Popen`` the session uses (``pid``, ``poll``,
``wait``, ``kill``), so a worker started this way is handled exactly like one
started with its own bwrap. See ``grader/forkserver.py`` for what happens on
the other side and why.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from grader.errors import SandboxError
from grader.sandbox.launch import BASE_UID, Limits, build_forkserver_launch, rlimit_spec

_MAX_REPLY = 1 << 16
#: Worker uids for forked workers: the upper half of this grader's block (``sandbox.worker_uid``
#: uses the lower half), one per live worker, so no two submissions ever share a uid.
_UID_FIRST = BASE_UID + (os.getpid() % 8192) * 128 + 64
_UID_COUNT = 64


class _UidPool:
    def __init__(self):
        self.lock = threading.Lock()
        self.free = list(range(_UID_FIRST, _UID_FIRST + _UID_COUNT))

    def take(self) -> int:
        with self.lock:
            if not self.free:
                raise SandboxError("more than 64 workers alive at once; lower --jobs")
            return self.free.pop(0)

    def give(self, uid: int) -> None:
        with self.lock:
            self.free.append(uid)


_uids = _UidPool()


class ForkServer:
    """A running fork server (one per slot): spawn, kill and wait for sandboxed workers."""

    def __init__(self, slot: int):
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.lock = threading.Lock()
        launch = build_forkserver_launch(child.fileno(), slot)
        try:
            self.proc = subprocess.Popen(launch.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, **launch.popen_kwargs())
        except OSError as exc:
            raise SandboxError(f"could not start the fork server: {exc}") from None
        finally:
            child.close()
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
        if reply.get("ok") is not True:
            raise SandboxError(f"the fork server failed: {reply.get('error') or self._death()}")
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


_servers: dict[int, ForkServer] = {}
_servers_lock = threading.Lock()
#: Fork servers are started from these long-lived threads only: bwrap's --die-with-parent is
#: tied to the *thread* that started it, and a server started from a short-lived thread (a batch
#: or probe thread) would be killed when that thread ends.
_launcher = ThreadPoolExecutor(max_workers=8, thread_name_prefix="hwgrader-forkserver")


_slot_locks: dict[int, threading.Lock] = {}


def server_for(slot: int) -> ForkServer:
    """The slot's fork server, started (or restarted, if it died) on first use."""
    with _servers_lock:
        lock = _slot_locks.setdefault(slot, threading.Lock())
    with lock:  # one start per slot at a time; different slots start side by side
        server = _servers.get(slot)
        if server is not None and server.alive:
            return server
        if server is not None:
            server.close()
        server = _launcher.submit(ForkServer, slot).result()
        with _servers_lock:
            _servers[slot] = server
        return server


@atexit.register
def _close_all() -> None:
    with _servers_lock:
        for server in _servers.values():
            server.close()
        _servers.clear()


class ForkedProcess:
    """A worker forked by a fork server, with the slice of ``Popen``'s interface the session needs.

    ``pid`` is the pid of the submission's pid-1 process *inside the fork server's sandbox*; the
    server is the only one who can signal or reap it, so every operation goes through it.
    ``returncode`` follows ``Popen``: ``-n`` for a death by signal ``n``.
    """

    def __init__(self, slot: int, limits: Limits, fds: tuple[int, int, int]):
        self.server = server_for(slot)
        self.uid = _uids.take()
        try:
            reply = self.server.request({"op": "spawn", "uid": self.uid, "rlimits": rlimit_spec(limits),
                                         "tmp_mb": int(limits.tmp_mb)}, fds)
        except SandboxError:
            _uids.give(self.uid)
            raise
        self.pid = int(reply["pid"])
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
            _uids.give(self.uid)
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
