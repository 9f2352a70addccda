"""Which isolation levels the sandbox tests run under, and the level CI requires.

A level that does not work here is skipped with the probe's reason, except the one named by
``HWGRADER_REQUIRE_ISOLATION`` (and every level weaker than it that is sandboxed, since the
default picks the strongest): that one must work, so CI fails instead of skipping. CI sets it
per install layout (``.ci/run``): ``bwrap-fork`` as root, ``bwrap`` as an ordinary user.
"""

from __future__ import annotations

import os
from typing import Optional

import pytest

from grader.sandbox import detect
from grader.sandbox.levels import Isolation

REQUIRED_ENV = "HWGRADER_REQUIRE_ISOLATION"


def required() -> Optional[Isolation]:
    value = os.environ.get(REQUIRED_ENV)
    if not value:
        return None
    return Isolation(value)


def params(*, sandboxed_only: bool = False) -> list:
    """pytest params, one per level: runnable, required (fails in the test if broken) or skipped."""
    out = []
    need = required()
    for level in Isolation:
        if sandboxed_only and not level.sandboxed:
            continue
        why = detect.probe(level)
        if why is None or level is need:
            out.append(pytest.param(level, id=level.value))
        else:
            out.append(pytest.param(level, id=level.value, marks=pytest.mark.skip(reason=f"{level}: {why}")))
    return out


def require_working(level: Isolation) -> None:
    """Fail (not skip) when a required level does not work."""
    why = detect.probe(level)
    if why is not None:
        pytest.fail(f"{REQUIRED_ENV}={level} but it cannot run here: {why}")


def best() -> Isolation:
    """The level the session tests run under by default: the strongest that works here."""
    return detect.choose(allow_process=True).level
