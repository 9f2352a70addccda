"""Q3 — optimal-margin (hard-margin, linear) SVM through its dual and ``cvxopt.solvers.qp``.

Dual:  minimise 1/2 a^T P a - 1^T a  with  P_ij = y_i y_j x_i . x_j,
       subject to  a >= 0  (G = -I, h = 0)  and  sum_i a_i y_i = 0  (A = y^T, b = 0).
Then w = sum_i a_i y_i x_i, and b is averaged over the support vectors
(a_i > SV_RTOL * max(a)): b = mean_s (y_s - w . x_s).
"""

from __future__ import annotations

import numpy as np
from cvxopt import matrix, solvers

from grader.assignment.registry import mistake

_SV_RTOL = 1e-4  # support vector: alpha > _SV_RTOL * max(alpha)


def _xy(X, y):
    X = np.ascontiguousarray(X, dtype=float)
    y = np.ascontiguousarray(y, dtype=float).reshape(-1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, d) and y (n,); got {X.shape} and {y.shape}")
    return X, y


def _solve_dual(X, y, equality=True):
    n = X.shape[0]
    Xy = X * y[:, None]
    P = matrix(np.ascontiguousarray(Xy @ Xy.T))
    q = matrix(-np.ones(n))
    G = matrix(-np.eye(n))
    h = matrix(np.zeros(n))
    if equality:
        A = matrix(y.reshape(1, -1).copy())
        b = matrix(np.zeros(1))
        sol = solvers.qp(P, q, G, h, A, b, options={"show_progress": False})
    else:
        sol = solvers.qp(P, q, G, h, options={"show_progress": False})
    return np.array(sol["x"], dtype=float).reshape(-1)


def _support(alpha):
    return alpha > _SV_RTOL * alpha.max()


def _w_b(X, y, alpha):
    w = (alpha * y) @ X
    sv = _support(alpha)
    b = float(np.mean(y[sv] - X[sv] @ w))
    return w, b


def svm_dual_alphas(X, y):
    """The Lagrange multipliers ``alpha`` (shape (n,)) of the hard-margin dual."""
    X, y = _xy(X, y)
    return _solve_dual(X, y)


def optimal_margin_svm(X, y):
    """``(w, b)`` of the maximum-margin hyperplane ``w . x + b = 0``; ``b`` a Python float."""
    X, y = _xy(X, y)
    return _w_b(X, y, _solve_dual(X, y))


# ----------------------------------------------------------------- known mistakes

_NO_EQ_HINT = ("The dual has the equality constraint sum_i alpha_i y_i = 0 (it comes from the "
               "bias b): pass A = y^T and b = 0 to cvxopt.solvers.qp.")


@mistake("q3.alphas_no_equality", of="svm_dual_alphas", title="missing sum(alpha*y) = 0",
         hint=_NO_EQ_HINT)
def _alphas_no_equality(X, y):
    X, y = _xy(X, y)
    return _solve_dual(X, y, equality=False)


@mistake("q3.svm_no_equality", of="optimal_margin_svm", title="missing sum(alpha*y) = 0",
         hint=_NO_EQ_HINT)
def _svm_no_equality(X, y):
    X, y = _xy(X, y)
    return _w_b(X, y, _solve_dual(X, y, equality=False))


@mistake("q3.w_without_labels", of="optimal_margin_svm", title="w computed without the labels",
         hint="w = sum_i alpha_i y_i x_i: each support vector is weighted by its label as well "
              "as its multiplier.")
def _w_without_labels(X, y):
    X, y = _xy(X, y)
    alpha = _solve_dual(X, y)
    w = alpha @ X
    sv = _support(alpha)
    return w, float(np.mean(y[sv] - X[sv] @ w))


@mistake("q3.b_from_non_support_vector", of="optimal_margin_svm",
         title="b from a non-support vector",
         hint="b = y_s - w . x_s holds only for support vectors (alpha_s > 0, up to the solver's "
              "tolerance); pick those points (and average over them), not an arbitrary one.")
def _b_from_non_support_vector(X, y):
    X, y = _xy(X, y)
    alpha = _solve_dual(X, y)
    w = (alpha * y) @ X
    i = int(np.argmin(alpha))
    return w, float(y[i] - X[i] @ w)


@mistake("q3.b_from_all_points", of="optimal_margin_svm", title="b averaged over all points",
         hint="Average y_s - w . x_s over the support vectors only (alpha_s above a small "
              "tolerance); points away from the margin give a different value.")
def _b_from_all_points(X, y):
    X, y = _xy(X, y)
    alpha = _solve_dual(X, y)
    w = (alpha * y) @ X
    return w, float(np.mean(y - X @ w))
