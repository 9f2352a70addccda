"""What one submission may use: the ``Limits`` a rubric can set (``limits:`` in the YAML).

Pure data, imported by the rubric loader and the plan as well as by the sandbox, so it
depends on nothing. Every field is documented here once; ``docs/threat-model.md`` says what
enforces each of them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Limits:
    """Per-submission resource limits (units in the field names; defaults in brackets)."""

    #: wall-clock seconds one call of a student function may take [10]; then kill + restart
    call_seconds: float = 10
    #: wall-clock seconds to run the module / notebook cells [30]
    load_seconds: float = 30
    #: wall-clock seconds for the whole submission [120]; later calls are ``skipped``
    submission_seconds: float = 120
    #: address space of the worker, MB [1024] (RLIMIT_AS)
    memory_mb: int = 1024
    #: CPU seconds of the worker [60] (RLIMIT_CPU: SIGXCPU, SIGKILL one second later)
    cpu_seconds: int = 60
    #: processes/threads of the worker's uid [64] (RLIMIT_NPROC; every worker has a uid of its own)
    processes: int = 64
    #: largest file the worker may write, MB [16] (RLIMIT_FSIZE)
    file_size_mb: int = 16
    #: open file descriptors [64] (RLIMIT_NOFILE)
    open_files: int = 64
    #: bytes of stdout+stderr kept per submission [65536]; the rest is counted and dropped
    output_bytes: int = 65536
    #: size of the worker's private /tmp, MB [64] (tmpfs ``size=``)
    tmp_mb: int = 64


def rlimit_spec(limits: Limits) -> str:
    """The worker's ``--rlimits`` argument: ``AS_MB,CPU_S,NPROC,FSIZE_MB,NOFILE``."""
    return ",".join(str(int(x)) for x in (limits.memory_mb, limits.cpu_seconds, limits.processes,
                                             limits.file_size_mb, limits.open_files))
