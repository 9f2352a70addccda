"""The one place that hands out worker uids (when the grader runs as root).

Every worker process gets a uid that no other worker of this grader process ever had: a uid
owns kernel state that outlives its processes (its user keyring, its RLIMIT_NPROC count,
files it left in a shared directory), so a recycled uid would let one student pass data to
the next. uids come from a block of ``BLOCK`` consecutive ids chosen by the grader's pid, so
two graders on one machine rarely share a block, and are never given back.

When the grader is not root, workers keep its uid but each runs in a user namespace of its
own (``bwrap --unshare-all``), which gives it a user keyring of its own too.
"""

from __future__ import annotations

import os
import threading

from grader.errors import SandboxError

#: First uid of the first block: far above any uid a real account has (and below 2**31).
BASE_UID = 1 << 30
#: uids per grader process; a batch needing more workers than this stops with an error.
BLOCK = 1 << 16
_BLOCKS = 16_000


class UidAllocator:
    """Monotonic uid allocator over one block; thread-safe; never reuses a uid."""

    def __init__(self, first: int, count: int = BLOCK):
        self.first, self.count = first, count
        self._next = first
        self._lock = threading.Lock()

    @classmethod
    def for_process(cls, pid: int | None = None) -> "UidAllocator":
        pid = os.getpid() if pid is None else pid
        return cls(BASE_UID + (pid % _BLOCKS) * BLOCK)

    def take(self) -> int:
        """A uid no worker of this allocator had before."""
        with self._lock:
            if self._next >= self.first + self.count:
                raise SandboxError(f"this grader process started more than {self.count} workers; "
                                   "no worker uid is ever reused, so start a new grader process")
            uid = self._next
            self._next += 1
            return uid

    def issued(self) -> range:
        """Every uid handed out so far (the leftover-process check looks for these)."""
        with self._lock:
            return range(self.first, self._next)


_lock = threading.Lock()
_allocator: UidAllocator | None = None


def allocator() -> UidAllocator:
    """This process's allocator: uids are a machine-wide resource, so one per process, not per
    batch (two batches in one process must not reuse each other's uids either)."""
    global _allocator
    with _lock:
        if _allocator is None or _allocator.first != UidAllocator.for_process().first:
            _allocator = UidAllocator.for_process()  # new after a fork (pytest-xdist, multiprocessing)
        return _allocator
