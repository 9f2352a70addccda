"""One exception tree for everything a user can see.

The CLI catches ``HwgraderError`` once, prints ``message`` on one line and
exits with ``exit_code``. Anything else escaping is a bug in hwgrader.
A *student's* mistake is never an exception here: it becomes a graded
failure in the results.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What every ``hwgrader`` command exits with (``shared/spec/interfaces.md``); defined here only."""

    OK = 0                # done (grade: the batch was graded, whatever the scores)
    TESTS_FAILED = 1      # check: some public test failed; audit: a known mistake passes every case
    USAGE = 2             # usage, rubric, input or environment problem (one line on stderr)
    INTERNAL = 3          # hwgrader's own failure
    INTERRUPTED = 130     # Ctrl-C


class HwgraderError(Exception):
    """Base of every error shown to a user; ``exit_code`` is what the CLI returns."""

    exit_code = ExitCode.USAGE

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # one line, written for the user
        return self.message


class UsageError(HwgraderError):
    """The command line asks for something that cannot be done (missing folder, bad flag)."""

    exit_code = ExitCode.USAGE


class RubricError(HwgraderError):
    """A rubric file is malformed; the message names the file, the key and the problem."""

    exit_code = ExitCode.USAGE

    def __init__(self, path, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        where = f"{self.path}: {key}: " if key else f"{self.path}: "
        super().__init__(where + problem)


class RegistrationError(HwgraderError):
    """A reference module registers a generator or mistake that does not fit (wrong name or signature)."""

    exit_code = ExitCode.USAGE


class KitError(HwgraderError):
    """A student kit (public cases file) is missing or unreadable."""

    exit_code = ExitCode.USAGE


class GradebookError(HwgraderError):
    """The gradebook file in an output folder is missing, damaged, foreign or newer than this hwgrader,
    or a manual grade / import does not fit it; the message names the file or the row."""

    exit_code = ExitCode.USAGE


class ClusterError(HwgraderError):
    """``--scheduler`` cannot be used: Dask not installed, scheduler unreachable, no worker can sandbox."""

    exit_code = 2


class SandboxError(HwgraderError):
    """The grader could not start an isolated worker at all (not a student failure)."""

    exit_code = ExitCode.INTERNAL


class IsolationUnavailable(HwgraderError):
    """The required (or any sandboxed) isolation level cannot run here; the message says why and
    how to fix it. An environment problem, not hwgrader's failure."""

    exit_code = ExitCode.USAGE
