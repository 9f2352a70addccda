"""The seccomp filter every sandboxed worker runs under (built with libseccomp, via pyseccomp).

A numpy homework never needs the kernel's keyrings, debugging, mount and namespace calls,
BPF, performance counters, userfaultfd, kexec/modules or io_uring; each is a way out of (or
into) a sandbox that namespaces alone do not close. They fail with ``EPERM``; everything else is
allowed. ``clone3`` fails with ``ENOSYS`` (its flags live in memory a filter cannot read), so
libc falls back to ``clone``, whose namespace flags are checked.

``GROUPS`` is the list the tests walk through (one test per group: the call fails inside, the
homework still runs). The filter is compiled once per grader process into classic BPF
(``bpf_program()``) and handed to bubblewrap as ``--seccomp FD`` (``bwrap``), or to the fork
server, which installs it in each submission's init process after the privilege drop
(``bwrap-fork``).
"""

from __future__ import annotations

import errno
import functools
import os
import tempfile

from grader.errors import SandboxError

#: group -> system calls denied with EPERM
GROUPS: dict[str, tuple[str, ...]] = {
    "keyring": ("keyctl", "add_key", "request_key"),
    "ptrace": ("ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd"),
    "mount": ("mount", "umount2", "pivot_root", "chroot", "move_mount", "open_tree", "fsopen",
              "fsconfig", "fsmount", "fspick", "mount_setattr"),
    "namespace": ("unshare", "setns"),
    "bpf": ("bpf",),
    "perf": ("perf_event_open",),
    "userfaultfd": ("userfaultfd",),
    "kernel": ("kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module",
               "reboot", "swapon", "swapoff", "acct", "syslog", "quotactl", "iopl", "ioperm",
               "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "lookup_dcookie",
               "open_by_handle_at", "name_to_handle_at", "personality", "vhangup"),
    "io_uring": ("io_uring_setup", "io_uring_enter", "io_uring_register"),
}
#: clone(2) flags that create namespaces: clone with any of them fails with EPERM
CLONE_NAMESPACE_FLAGS = {"CLONE_NEWNS": 0x00020000, "CLONE_NEWCGROUP": 0x02000000, "CLONE_NEWUTS": 0x04000000,
                         "CLONE_NEWIPC": 0x08000000, "CLONE_NEWUSER": 0x10000000, "CLONE_NEWPID": 0x20000000,
                         "CLONE_NEWNET": 0x40000000, "CLONE_NEWTIME": 0x00000080}


def _build():
    try:
        import pyseccomp as sc
    except (ImportError, OSError) as exc:  # OSError: libseccomp.so.2 itself is missing
        raise SandboxError(f"the seccomp filter cannot be built: {exc} "
                           "(install libseccomp2 and `pip install pyseccomp`)") from None
    f = sc.SyscallFilter(sc.ALLOW)
    for names in GROUPS.values():
        for name in names:
            try:
                f.add_rule(sc.ERRNO(errno.EPERM), name)
            except (ValueError, OSError):
                pass  # a call this kernel/architecture does not have (e.g. iopl on arm64)
    for flag in CLONE_NAMESPACE_FLAGS.values():
        f.add_rule(sc.ERRNO(errno.EPERM), "clone", sc.Arg(0, sc.MASKED_EQ, flag, flag))
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")
    return f


@functools.lru_cache(maxsize=1)
def bpf_program() -> bytes:
    """The compiled filter (an array of ``struct sock_filter``), built once per process."""
    f = _build()
    with tempfile.TemporaryFile() as out:
        f.export_bpf(out)
        out.seek(0)
        data = out.read()
    if not data or len(data) % 8:
        raise SandboxError(f"libseccomp exported a filter of {len(data)} bytes")
    return data


def bpf_fd() -> int:
    """A fresh file descriptor to read the program from (bwrap ``--seccomp FD`` reads to EOF).

    The caller passes it to exactly one child and closes it.
    """
    fd = os.memfd_create("hwgrader-seccomp", os.MFD_CLOEXEC)
    os.write(fd, bpf_program())
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
