"""The parent's end of a worker's pipes.

A worker has three pipes: requests (parent -> worker), replies (worker -> parent) and one
for its stdout+stderr. ``WorkerPipes`` makes them (channel fds never 0/1/2); ``Channel`` sends
``inside/protocol.py`` request frames with a deadline (non-blocking fds + ``select``) and owns
the reply fd. Reading replies is ``replies.ReplyReader``'s job (bounded memory, validated),
capturing the output ``capture.SplitOutput``'s.
"""

from __future__ import annotations

import os
import select
import time

from grader.sandbox.inside import protocol


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
    """Deadline-bounded framed requests on the request fd; the reply fd, non-blocking."""

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

    def close(self) -> None:
        for fd in (self.req_w, self.res_r):
            try:
                os.close(fd)
            except OSError:
                pass
