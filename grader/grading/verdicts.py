"""The one vocabulary of case verdicts: how one call of one student function on one case was judged.

Every writer, the engine and the comparison name verdicts through :class:`Verdict` only. A
``Verdict`` is a ``str`` (its value), so results.json tags, ``data-verdict`` attributes and
f-strings show the same word as before the enum existed (``"passed"``, ``"wrong"``, ...).

Each member carries:

* ``label``: the plain words students and instructors read ("wrong values");
* ``severity``: how bad it is, 0 (passed) upwards; when several outputs of one case fail
  differently the case takes the most severe one (a wrong shape hides wrong values);
* ``run_failure``: the run itself broke (time, memory, the worker died or sent garbage)
  rather than the numbers being wrong; listed apart in the class overview.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Verdict"]


class Verdict(StrEnum):
    label: str
    severity: int
    run_failure: bool

    def __new__(cls, value: str, label: str, severity: int, run_failure: bool = False):
        member = str.__new__(cls, value)
        member._value_ = value
        member.label = label
        member.severity = severity
        member.run_failure = run_failure
        return member

    #: every output within tolerance
    PASSED = ("passed", "passed", 0)
    #: numbers differ beyond tolerance
    WRONG = ("wrong", "wrong values", 1)
    #: NaN or inf where a finite number was expected
    NONFINITE = ("nonfinite", "NaN or infinite values", 2)
    #: an output has the wrong shape or count
    SHAPE = ("shape", "wrong shape", 3)
    #: modified an input the rubric says it must leave alone
    MUTATED = ("mutated", "modified its inputs", 4)
    #: not convertible to a float array (object, string, ragged, too large)
    REJECTED = ("rejected", "output is not a numeric array", 5)
    #: the student's function raised
    EXCEPTION = ("exception", "raised an exception", 6)
    #: the submission does not define the function
    MISSING = ("missing", "function not defined", 7)
    #: the call ran past its wall-clock (or CPU) limit
    TIMEOUT = ("timeout", "ran out of time", 8, True)
    #: the worker ran out of its memory limit
    MEMORY = ("memory", "ran out of memory", 9, True)
    #: the worker's reply broke the reply schema (malformed, too deep, too large, wrong types)
    INVALID_REPLY = ("invalid_reply", "invalid reply", 10, True)
    #: the worker died (exit, signal) or closed its channel
    CRASH = ("crash", "the worker process crashed", 11, True)
    #: not run: the submission's time budget was spent, or it failed to load
    SKIPPED = ("skipped", "not run", 12)

    @classmethod
    def worst(cls, verdicts) -> "Verdict":
        """The most severe of ``verdicts`` (``PASSED`` when there is none)."""
        return max((cls(v) for v in verdicts), key=lambda v: v.severity, default=cls.PASSED)
