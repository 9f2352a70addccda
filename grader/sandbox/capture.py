"""A submission's printed output (its workers' stdout+stderr), split at the first hidden call.

The worker is never told which calls are hidden; the parent is. Before it sends the first
hidden call of a session it calls :meth:`SplitOutput.seal`: everything the workers wrote
until then (the load and every public call: the worker flushes ``sys.stdout``/``sys.stderr``
before each reply, so those bytes are already in the pipe) is read into the *visible* part,
and everything read afterwards goes to the *hidden* part, whoever wrote it and whenever
(a thread started during a public call that prints later lands there too: the split errs
towards hiding). The engine runs every public case before the first hidden one, so nothing a
worker learnt on a hidden case can be in the visible part.

Reading is exact because every read of a pipe happens under the one lock, by the drain
thread or by ``seal``: no bytes are ever "read but not yet filed" while the split moves.
Each part keeps its first ``cap`` bytes; ``tail`` keeps the last 4 KiB of all of it (memory
markers of a dying worker).
"""

from __future__ import annotations

import os
import select
import threading

__all__ = ["SplitOutput"]

_TAIL = 4096
#: Most bytes read under the lock at once: a worker printing without pause cannot keep the drain
#: thread holding the lock (and ``seal`` waiting for it); larger than any pipe's buffer (1 MiB
#: max for an unprivileged process), so ``seal`` still empties the pipe.
_BURST = 2 << 20


class _Part:
    def __init__(self, cap: int):
        self.cap = cap
        self.buf = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = self.cap - len(self.buf)
        if room > 0:
            self.buf += data[:room]
        self.dropped += max(0, len(data) - max(room, 0))

    def text(self) -> tuple[str, bool]:
        return bytes(self.buf).decode("utf-8", errors="replace"), self.dropped > 0


class SplitOutput:
    """Capped capture of a session's workers' output, shared across restarts (see module doc)."""

    def __init__(self, cap: int):
        self.lock = threading.Lock()
        self._visible = _Part(cap)
        self._hidden = _Part(cap)
        self._sealed = False
        self._recent = bytearray()
        self._fds: set[int] = set()   # pipes a drain thread is reading now

    @property
    def sealed(self) -> bool:
        return self._sealed

    def add(self, data: bytes) -> None:
        """File ``data`` (the parent's own notes, e.g. a restart marker) in the current part."""
        with self.lock:
            self._add(data)

    def _add(self, data: bytes) -> None:
        (self._hidden if self._sealed else self._visible).add(data)
        self._recent += data[-_TAIL:]
        del self._recent[:-_TAIL]

    def _read_ready(self, fd: int) -> bool:
        """Read what is in the pipe now, at most ``_BURST`` bytes (lock held); False at end of file."""
        budget = _BURST
        while budget > 0:
            try:
                data = os.read(fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                return False
            if not data:
                return False
            self._add(data)
            budget -= len(data)
        return True

    def drain(self, fd: int) -> None:
        """Read ``fd`` until end of file (run in a thread per worker), then close it."""
        os.set_blocking(fd, False)
        with self.lock:
            self._fds.add(fd)
        try:
            while True:
                try:
                    select.select([fd], [], [])
                except InterruptedError:
                    continue
                except (OSError, ValueError):
                    break
                with self.lock:
                    if not self._read_ready(fd):
                        break
        finally:
            with self.lock:
                self._fds.discard(fd)
                try:
                    os.close(fd)
                except OSError:
                    pass

    def seal(self) -> None:
        """From now on, everything read is hidden; what the pipes hold now is still visible."""
        with self.lock:
            if self._sealed:
                return
            for fd in list(self._fds):
                self._read_ready(fd)
            self._sealed = True

    def tail(self, n: int = _TAIL) -> bytes:
        with self.lock:
            return bytes(self._recent[-n:])

    def visible(self) -> tuple[str, bool]:
        """What was printed before the first hidden call, and whether some of it was dropped."""
        with self.lock:
            return self._visible.text()

    def hidden(self) -> tuple[str, bool]:
        """What was printed from the first hidden call on (for the instructor only)."""
        with self.lock:
            return self._hidden.text()
