"""Numeric comparison of a student's outputs with the expected ones. Pure: no I/O, no state.

Inputs are plain float64 arrays that the parent rebuilt from raw bytes, never
objects a student made, so nothing here can be lied to. Checks run in the
order that gives the most useful message: count, shape, finiteness, values.
Messages name the output and say what differed, PrairieLearn-style::

    'out' has the wrong shape: got (9, 9), expected (11, 11)
    'alpha' has NaN at 12 of 121 entries
    'out' is wrong at 3 of 121 entries; max abs error 3 at [4, 7] (expected 18, got 15)
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from grader.grading.results import OutputCheck
from grader.grading.verdicts import Verdict


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _shape(shape: tuple) -> str:
    return "()" if shape == () else "(" + ", ".join(str(s) for s in shape) + (",)" if len(shape) == 1 else ")")


def _aligned(got: np.ndarray, expected: np.ndarray) -> Optional[np.ndarray]:
    """``got`` in the expected shape, or None. Only a size-1 answer to a scalar is reshaped."""
    if got.shape == expected.shape:
        return got
    if expected.ndim == 0 and got.size == 1:
        return got.reshape(())
    return None


def compare_output(name: str, got: np.ndarray, expected: np.ndarray, *,
                   rtol: float, atol: float, keep_values: bool) -> tuple[OutputCheck, Optional[Verdict]]:
    """Compare one output; returns the check and its failure kind (None when it passed)."""
    aligned = _aligned(got, expected)
    kept = dict(expected=expected, got=got) if keep_values else {}
    if aligned is None:
        msg = f"'{name}' has the wrong shape: got {_shape(got.shape)}, expected {_shape(expected.shape)}"
        return OutputCheck(name, False, msg, **kept), Verdict.SHAPE
    if keep_values:
        kept["got"] = aligned
    finite_got, finite_expected = np.isfinite(aligned), np.isfinite(expected)
    if finite_got.all() and finite_expected.all():  # nearly every output: plain numbers on both sides
        error = np.abs(aligned - expected)
        wrong = error > atol + rtol * np.abs(expected)
    else:
        bad_finite = ~finite_got & finite_expected
        if bad_finite.any():
            nan = int(np.isnan(aligned[bad_finite]).sum())
            inf = int(bad_finite.sum()) - nan
            what = " and ".join(w for w in (f"NaN at {nan}" if nan else "", f"inf at {inf}" if inf else "") if w)
            msg = f"'{name}' has {what} of {aligned.size} entries"
            mask = bad_finite if keep_values else None
            return OutputCheck(name, False, msg, mismatch=mask, **kept), Verdict.NONFINITE
        with np.errstate(invalid="ignore"):
            error = np.abs(aligned - expected)
            # Where both are the same infinity (or NaN is expected and given) the entry agrees.
            error = np.where(finite_expected, error, np.where(_same_special(aligned, expected), 0.0, np.inf))
        wrong = error > atol + rtol * np.abs(np.where(finite_expected, expected, 0.0))
    mask = wrong if keep_values else None
    if aligned.size == 0:
        return OutputCheck(name, True, f"'{name}' is correct (empty)", mismatch=mask, **kept), None
    worst = np.unravel_index(int(np.argmax(error)), error.shape) if error.ndim else ()
    worst_error = float(error[worst])
    where = f" at [{', '.join(str(int(i)) for i in worst)}]" if worst else ""
    if not wrong.any():
        msg = f"'{name}' is correct (max abs error {_fmt(worst_error)})"
        return OutputCheck(name, True, msg, mismatch=mask, worst_index=tuple(int(i) for i in worst),
                           worst_error=worst_error, **kept), None
    count = f"at {int(wrong.sum())} of {wrong.size} entries; " if wrong.size > 1 else ""
    msg = (f"'{name}' is wrong {count}max abs error {_fmt(worst_error)}{where}"
           f" (expected {_fmt(float(expected[worst]))}, got {_fmt(float(aligned[worst]))})")
    return OutputCheck(name, False, msg, mismatch=mask, worst_index=tuple(int(i) for i in worst),
                       worst_error=worst_error, **kept), Verdict.WRONG


def _same_special(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (np.isnan(a) & np.isnan(b)) | (np.isinf(a) & np.isinf(b) & (np.sign(a) == np.sign(b)))


def compare_outputs(names: Sequence[str], got: Sequence[np.ndarray], expected: Sequence[np.ndarray], *,
                    rtol: float, atol: float, keep_values: bool) -> tuple[list[OutputCheck], Verdict]:
    """Compare every output; returns the checks and the case verdict: the most severe failure
    (a wrong shape before NaN before wrong values), ``Verdict.PASSED`` when none failed."""
    if len(got) != len(expected):
        raise ValueError("the worker returned a different number of outputs than requested")
    checks, kinds = [], set()
    for name, g, e in zip(names, got, expected):
        check, kind = compare_output(name, g, e, rtol=rtol, atol=atol, keep_values=keep_values)
        checks.append(check)
        if kind:
            kinds.add(kind)
    return checks, Verdict.worst(kinds)


def outputs_match(got: Sequence[np.ndarray], other: Sequence[np.ndarray], *, rtol: float, atol: float) -> bool:
    """True when every output agrees with ``other`` (NaN matches NaN): used to recognise a known mistake."""
    if len(got) != len(other):
        return False
    for g, o in zip(got, other):
        aligned = _aligned(g, o)
        if aligned is None or not np.allclose(aligned, o, rtol=rtol, atol=atol, equal_nan=True):
            return False
    return True
