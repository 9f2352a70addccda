"""Comparison messages say exactly what differed; nothing a student returns can fake a pass."""

from __future__ import annotations

import numpy as np
import pytest

from grader.grading.compare import compare_outputs, outputs_match


def compare(got, expected, rtol=1e-6, atol=1e-9, names=("out",)):
    got = [np.asarray(g, dtype=float) for g in got]
    expected = [np.asarray(e, dtype=float) for e in expected]
    return compare_outputs(names, got, expected, rtol=rtol, atol=atol, keep_values=True)


def test_equal_within_tolerance_passes():
    checks, verdict = compare([[1.0, 2.0 + 1e-9]], [[1.0, 2.0]])
    assert verdict == "passed" and checks[0].passed


def test_wrong_shape_names_both_shapes():
    checks, verdict = compare([np.zeros((9, 9))], [np.zeros((11, 11))])
    assert verdict == "shape"
    assert checks[0].message == "'out' has the wrong shape: got (9, 9), expected (11, 11)"


@pytest.mark.parametrize("got", [np.zeros((1, 11)), np.zeros(0), np.zeros((11, 1)), np.float64(0)],
                         ids=["row", "empty", "column", "scalar"])
def test_broadcastable_or_empty_shapes_do_not_pass(got):
    _, verdict = compare([got], [np.zeros((11, 11))])
    assert verdict == "shape"


def test_worst_error_position_and_values():
    expected = np.arange(121, dtype=float).reshape(11, 11)
    got = expected.copy()
    got[4, 7] += 3.0
    got[0, 0] += 1.0
    checks, verdict = compare([got], [expected])
    assert verdict == "wrong"
    assert checks[0].message == ("'out' is wrong at 2 of 121 entries; max abs error 3 at [4, 7] "
                                 "(expected 51, got 54)")
    assert checks[0].mismatch.sum() == 2 and checks[0].mismatch[4, 7]
    assert checks[0].worst_index == (4, 7)


def test_nan_is_counted_and_never_equal():
    expected = np.ones((11, 11))
    got = expected.copy()
    got.flat[:12] = np.nan
    checks, verdict = compare([got], [expected])
    assert verdict == "nonfinite"
    assert checks[0].message == "'out' has NaN at 12 of 121 entries"


def test_size_one_answer_to_a_scalar_is_accepted():
    checks, verdict = compare([[0.5]], [0.5], names=("b",))
    assert verdict == "passed"


def test_verdict_takes_the_most_informative_failure():
    _, verdict = compare([np.zeros(3), np.zeros((2, 2))], [np.ones(3), np.zeros(3)], names=("w", "b"))
    assert verdict == "shape"


def test_hidden_comparison_keeps_no_values():
    checks, _ = compare_outputs(["out"], [np.zeros(3)], [np.ones(3)], rtol=0, atol=0, keep_values=False)
    assert checks[0].expected is None and checks[0].got is None and checks[0].mismatch is None


def test_outputs_match_recognises_a_variant_including_nan():
    a = [np.array([1.0, np.nan]), np.array(2.0)]
    assert outputs_match(a, [np.array([1.0, np.nan]), np.array(2.0)], rtol=1e-6, atol=0)
    assert not outputs_match(a, [np.array([1.0, 0.0]), np.array(2.0)], rtol=1e-6, atol=0)
    assert not outputs_match(a, a[:1], rtol=1e-6, atol=0)
