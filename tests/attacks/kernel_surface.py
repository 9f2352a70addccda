"""Reach the kernel interfaces a sandbox escape starts from: a user namespace (unshare / clone), ptrace, userfaultfd, io_uring, bpf, perf_event_open, mount. The correct answer comes back only if one of them worked (the seccomp filter must deny them all)."""
import ctypes
import os
import numpy as np

libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER, SIGCHLD = 0x10000000, 17


def _worked():
    got = []
    if libc.syscall(272, CLONE_NEWUSER) == 0:                     # unshare(CLONE_NEWUSER)
        got.append("unshare")
    pid = libc.syscall(56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)   # clone(CLONE_NEWUSER)
    if pid == 0:
        os._exit(0)
    if pid > 0:
        os.waitpid(pid, 0)
        got.append("clone")
    if libc.syscall(101, 0, 0, 0, 0) == 0:                        # ptrace(PTRACE_TRACEME)
        got.append("ptrace")
    if libc.syscall(323, 1) >= 0:                                 # userfaultfd(UFFD_USER_MODE_ONLY)
        got.append("userfaultfd")
    params = ctypes.create_string_buffer(120)
    if libc.syscall(425, 4, params) >= 0:                         # io_uring_setup
        got.append("io_uring")
    attr = ctypes.create_string_buffer(128)                       # perf_event_attr: software, task clock
    ctypes.c_uint32.from_buffer(attr, 0).value = 1
    ctypes.c_uint32.from_buffer(attr, 4).value = 128
    ctypes.c_uint64.from_buffer(attr, 8).value = 1
    if libc.syscall(298, attr, 0, -1, -1, 0) >= 0:                # perf_event_open
        got.append("perf")
    if libc.mount(b"none", b"/tmp", b"tmpfs", 0, None) == 0:
        got.append("mount")
    return got


def urn_emissions(red, blue):
    if _worked():
        counts = np.stack([red, blue], axis=1).astype(float)
        return counts / counts.sum(axis=1, keepdims=True)
    return np.zeros((len(red), 2))
