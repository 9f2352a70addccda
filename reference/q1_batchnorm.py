"""Q1 — training-mode batch normalization (biased batch variance), forward and backward."""

from __future__ import annotations

import numpy as np

from grader.assignment.registry import mistake


def _normalize(x, eps, ddof=0):
    x = np.asarray(x, dtype=float)
    mean = x.mean(axis=0)
    var = x.var(axis=0, ddof=ddof)
    inv_std = 1.0 / np.sqrt(var + eps)
    return (x - mean) * inv_std, inv_std


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    """``gamma * (x - mean) / sqrt(var + eps) + beta`` with the per-feature batch mean and
    biased (divide-by-N) variance; ``x`` has shape (N, D)."""
    xhat, _ = _normalize(x, eps)
    return np.asarray(gamma, dtype=float) * xhat + np.asarray(beta, dtype=float)


def batchnorm_backward(dout, x, gamma, eps=1e-5):
    """Gradients ``(dx, dgamma, dbeta)`` of the loss given ``dout = dL/dout``."""
    dout = np.asarray(dout, dtype=float)
    xhat, inv_std = _normalize(x, eps)
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * np.asarray(gamma, dtype=float)
    dx = inv_std / n * (n * dxhat - dxhat.sum(axis=0) - xhat * (dxhat * xhat).sum(axis=0))
    return dx, dgamma, dbeta


# ----------------------------------------------------------------- known mistakes

@mistake("q1.unbiased_variance_forward", of="batchnorm_forward", title="unbiased variance",
         hint="Training-mode batch norm uses the biased batch variance: divide by N "
              "(np.var's default ddof=0), not by N-1.")
def _unbiased_variance_forward(x, gamma, beta, eps=1e-5):
    xhat, _ = _normalize(x, eps, ddof=1)
    return np.asarray(gamma, dtype=float) * xhat + np.asarray(beta, dtype=float)


@mistake("q1.unbiased_variance_backward", of="batchnorm_backward", title="unbiased variance",
         hint="The backward pass must differentiate the forward pass with the biased variance "
              "(divide by N); your gradients match a variance divided by N-1.")
def _unbiased_variance_backward(dout, x, gamma, eps=1e-5):
    dout = np.asarray(dout, dtype=float)
    xhat, inv_std = _normalize(x, eps, ddof=1)
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dxhat = dout * np.asarray(gamma, dtype=float)
    dx = inv_std * (dxhat - dxhat.mean(axis=0) - xhat * (dxhat * xhat).sum(axis=0) / (n - 1))
    return dx, dgamma, dbeta


@mistake("q1.dgamma_dbeta_swapped", of="batchnorm_backward", title="dgamma and dbeta swapped",
         hint="dgamma is sum(dout * x_hat) over the batch and dbeta is sum(dout); check the "
              "order in which you return them: (dx, dgamma, dbeta).")
def _dgamma_dbeta_swapped(dout, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = batchnorm_backward(dout, x, gamma, eps)
    return dx, dbeta, dgamma


@mistake("q1.dx_ignores_batch_stats", of="batchnorm_backward",
         title="dx ignores the batch statistics",
         hint="The mean and variance depend on every x in the batch, so dx is not just "
              "dout * gamma / sqrt(var + eps); add the terms through the mean and the variance.")
def _dx_ignores_batch_stats(dout, x, gamma, eps=1e-5):
    dx, dgamma, dbeta = batchnorm_backward(dout, x, gamma, eps)
    _, inv_std = _normalize(x, eps)
    return np.asarray(dout, dtype=float) * np.asarray(gamma, dtype=float) * inv_std, dgamma, dbeta
