"""Mutate baum_welch's inputs, then patch the worker's own reply (sys.modules['__main__']._Worker._send) to drop the 'mutated' report.

The mutation check runs inside the (untrusted) worker, so this succeeds: the values are the correct ones,
so the part scores like honest code. Documented as advisory in docs/threat-model.md.
"""
import sys
import numpy as np

try:
    _W = sys.modules["__main__"]._Worker
    _orig = _W._send

    def _send(self, header, payload=b""):
        if isinstance(header, dict):
            header.pop("mutated", None)
        return _orig(self, header, payload)

    _W._send = _send
except Exception:
    pass


def _baum_welch(obs, pi, A, B, n_iter=100):
    obs = np.asarray(obs)
    pi = pi.copy()
    T, N = len(obs), len(pi)
    for _ in range(n_iter):
        # E-step with Rabiner's scaling
        e = B[:, obs].T
        alpha = np.zeros((T, N))
        c = np.zeros(T)
        alpha[0] = pi * e[0]
        c[0] = alpha[0].sum()
        alpha[0] /= c[0]
        for t in range(1, T):
            alpha[t] = (alpha[t - 1] @ A) * e[t]
            c[t] = alpha[t].sum()
            alpha[t] /= c[t]
        beta = np.ones((T, N))
        for t in range(T - 2, -1, -1):
            beta[t] = A @ (e[t + 1] * beta[t + 1]) / c[t + 1]
        gamma = alpha * beta
        xi = A * (alpha[:-1].T @ (e[1:] * beta[1:] / c[1:, None]))
        # M-step
        pi = gamma[0] / gamma[0].sum()
        A = xi / gamma[:-1].sum(axis=0)[:, None]
        new_B = np.zeros_like(B)
        for k in range(B.shape[1]):
            new_B[:, k] = gamma[obs == k].sum(axis=0)
        B = new_B / new_B.sum(axis=1, keepdims=True)
    return pi, A, B


def baum_welch(obs, pi, A, B, n_iter=100):
    new_pi, new_A, new_B = _baum_welch(obs, pi.copy(), A.copy(), B.copy(), n_iter)
    pi[...], A[...], B[...] = new_pi, new_A, new_B
    return pi, A, B
