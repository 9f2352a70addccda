"""A fresh, empty session keyring for each worker.

A login session's keyring (``@s``: Kerberos caches, tokens, ...) is inherited by every child
process, and possessing it is enough to read, add to or clear it even after a uid change. The
kernel keeps the session keyring in a *thread's* credentials, and a child inherits the keyring
of the thread that forked it, so the grading thread that is about to start a worker first joins
a new anonymous session keyring (``keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)``): the worker then
starts with an empty keyring of its own and never sees the grader's. Under ``bwrap-fork`` the
fork server's per-submission init process does the same after becoming the worker's uid
(``inside/forkserver.py``). The seccomp filter (``seccomp.py``) then denies every keyring call.
"""

from __future__ import annotations

import ctypes
import os
import platform

from grader.errors import SandboxError

KEYCTL_GET_KEYRING_ID = 0
KEYCTL_JOIN_SESSION_KEYRING = 1
KEY_SPEC_SESSION_KEYRING = -3
#: keyctl(2) numbers (the only two architectures hwgrader's sandbox supports).
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219}.get(platform.machine())

_libc = ctypes.CDLL(None, use_errno=True)


def join_fresh_session_keyring() -> int:
    """Give the calling thread (and every process it starts) a new, empty session keyring."""
    if SYS_KEYCTL is None:
        raise SandboxError(f"no keyctl system call number for {platform.machine()}")
    serial = _libc.syscall(SYS_KEYCTL, KEYCTL_JOIN_SESSION_KEYRING, None)
    if serial < 0:
        err = ctypes.get_errno()
        raise SandboxError(f"could not create a session keyring for the worker: {os.strerror(err)}")
    return serial


def session_keyring_id() -> int:
    """The calling thread's session keyring serial (without creating one)."""
    serial = _libc.syscall(SYS_KEYCTL, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 0)
    if serial < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return serial
