"""The parent's end of a worker's pipes: framed requests out, framed replies in, output captured.

A worker has three pipes: requests (parent -> worker), replies (worker -> parent) and one
for its stdout+stderr. ``Channel`` sends and receives ``inside/protocol.py`` frames on the
first two with a deadline (non-blocking fds + ``select``); ``CappedOutput`` drains the third in a
thread and keeps its first ``cap`` bytes. Nothing here looks inside a reply: decoding and
validating it is the session's job.
"""

from __future__ import annotations

import errno
import os
import select
import threading
import time

from grader.sandbox.inside import protocol
from grader.sandbox.inside.protocol import ProtocolError


def high_fd(fd: int) -> int:
    """Make sure a channel fd is not 0/1/2 (the worker gets it at the same number)."""
    low = []
    while fd <= 2:
        low.append(fd)
        fd = os.dup(fd)  # non-inheritable, lowest free number
    for f in low:
        os.close(f)
    return fd


class WorkerPipes:
    """The three pipes of one worker: ``child_fds()`` go to it, the rest stay with the parent."""

    def __init__(self):
        req_r, self.req_w = os.pipe()
        self.res_r, res_w = os.pipe()
        self.out_r, out_w = os.pipe()
        self.req_r, self.res_w, self.out_w = high_fd(req_r), high_fd(res_w), out_w

    def child_fds(self) -> tuple[int, int, int]:
        """(request read end, reply write end, output write end)."""
        return self.req_r, self.res_w, self.out_w

    def close_child_ends(self) -> None:
        for fd in self.child_fds():
            os.close(fd)

    def close_all(self) -> None:
        for fd in (self.req_r, self.req_w, self.res_r, self.res_w, self.out_r, self.out_w):
            try:
                os.close(fd)
            except OSError:
                pass


class Channel:
    """Framed, deadline-bounded request/reply over the parent's two channel fds."""

    def __init__(self, req_w: int, res_r: int):
        self.req_w, self.res_r = req_w, res_r
        os.set_blocking(req_w, False)
        os.set_blocking(res_r, False)

    def send(self, header: dict, payload: bytes, deadline: float) -> None:
        """Raises TimeoutError past ``deadline``, EOFError if the worker closed its end."""
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

    def recv(self, deadline: float, max_payload: int) -> tuple[dict, bytes]:
        """Exactly one reply frame; ProtocolError on garbage, oversize or a second frame."""
        dec = protocol.FrameDecoder(max_payload=max_payload)
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
            try:
                data = os.read(self.res_r, 1 << 20)
            except BlockingIOError:
                continue
            except OSError as exc:
                if exc.errno in (errno.EAGAIN, errno.EINTR):
                    continue
                raise EOFError from None
            if not data:
                raise EOFError
            frames = dec.feed(data)  # ProtocolError on garbage / oversized
            if frames:
                if len(frames) > 1 or dec.pending:
                    raise ProtocolError("the worker sent more than one reply")
                return frames[0]

    def close(self) -> None:
        for fd in (self.req_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass


class CappedOutput:
    """Capture of a worker's stdout+stderr, shared across restarts: keeps the first ``cap`` bytes."""

    def __init__(self, cap: int):
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0
        self.lock = threading.Lock()

    def add(self, data: bytes) -> None:
        with self.lock:
            room = self.cap - len(self.buf)
            if room > 0:
                self.buf += data[:room]
            self.dropped += max(0, len(data) - max(room, 0))

    def tail(self, n: int = 4096) -> bytes:
        with self.lock:
            return bytes(self.buf[-n:])

    def text(self) -> tuple[str, bool]:
        """Everything kept, decoded, and whether something was dropped."""
        with self.lock:
            data, dropped = bytes(self.buf), self.dropped
        return data.decode("utf-8", errors="replace"), dropped > 0

    def drain(self, fd: int) -> None:
        """Read ``fd`` to its end (run in a thread), then close it."""
        try:
            while True:
                try:
                    data = os.read(fd, 1 << 16)
                except InterruptedError:
                    continue
                except OSError:
                    break
                if not data:
                    break
                self.add(data)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass

    def start_draining(self, fd: int, name: str) -> threading.Thread:
        t = threading.Thread(target=self.drain, args=(fd,), daemon=True, name=name)
        t.start()
        return t
