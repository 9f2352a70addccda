"""Q4 — discrete HMM: urn emissions, forward, backward, Baum-Welch.

Conventions: ``A[i, j] = P(state j at t+1 | state i at t)``, ``B[i, k] = P(symbol k | state i)``,
``obs`` a 1-D integer array of symbol indices.

``baum_welch`` uses Rabiner's scaling (per-step normalisers c_t), so it is exact on
sequences of thousands of symbols. Zero occupancy: when a state's expected number of
visits (the denominator of its A row, or of its B row) is zero -- or subnormal, i.e.
the 0/0 of an unreachable state -- that row is **kept as it was** (the previous
iterate), so the result stays row-stochastic and never contains NaN.
"""

from __future__ import annotations

import numpy as np

from grader.assignment.registry import mistake

_TINY = np.finfo(float).tiny


def _f(a):
    return np.asarray(a, dtype=float)


def _obs(obs):
    return np.asarray(obs).astype(np.int64).reshape(-1)


def urn_emissions(red, blue):
    """Emission matrix from ball counts: row i = urn i, column 0 = P(red), column 1 = P(blue)."""
    counts = np.stack([_f(red).reshape(-1), _f(blue).reshape(-1)], axis=1)
    return counts / counts.sum(axis=1, keepdims=True)


def forward(obs, pi, A, B):
    """``(P(obs | model), alpha)`` with the unscaled forward variables ``alpha`` of shape (T, N)."""
    obs, pi, A, B = _obs(obs), _f(pi), _f(A), _f(B)
    alpha = np.empty((obs.size, pi.size))
    alpha[0] = pi * B[:, obs[0]]
    for t in range(1, obs.size):
        alpha[t] = (alpha[t - 1] @ A) * B[:, obs[t]]
    return float(alpha[-1].sum()), alpha


def backward(obs, A, B):
    """The unscaled backward variables ``beta`` of shape (T, N), ``beta[T-1] = 1``."""
    obs, A, B = _obs(obs), _f(A), _f(B)
    beta = np.empty((obs.size, A.shape[0]))
    beta[-1] = 1.0
    for t in range(obs.size - 2, -1, -1):
        beta[t] = A @ (B[:, obs[t + 1]] * beta[t + 1])
    return beta


def _scaled_forward_backward(obs, pi, A, B):
    """Scaled alpha_hat, beta_hat and normalisers c (P(obs) = prod c); alpha_hat rows sum to 1."""
    T, N = obs.size, pi.size
    emis = B[:, obs].T  # (T, N): emis[t, i] = B[i, obs[t]]
    ahat = np.empty((T, N))
    c = np.empty(T)
    a = pi * emis[0]
    c[0] = a.sum()
    ahat[0] = a / c[0]
    for t in range(1, T):
        a = (ahat[t - 1] @ A) * emis[t]
        c[t] = a.sum()
        ahat[t] = a / c[t]
    bhat = np.empty((T, N))
    bhat[-1] = 1.0
    for t in range(T - 2, -1, -1):
        bhat[t] = A @ (emis[t + 1] * bhat[t + 1]) / c[t + 1]
    return ahat, bhat, c, emis


def _expectations(obs, pi, A, B):
    """gamma (T, N) and the summed xi (N, N) of one E-step, with scaling."""
    ahat, bhat, c, emis = _scaled_forward_backward(obs, pi, A, B)
    gamma = ahat * bhat
    xi_sum = A * (ahat[:-1].T @ (emis[1:] * bhat[1:] / c[1:, None]))
    return gamma, xi_sum


def _m_step(obs, gamma, xi_sum, A, B):
    """Re-estimate (pi, A, B); rows whose expected occupancy is zero keep their old values."""
    M = B.shape[1]
    new_pi = gamma[0] / gamma[0].sum()
    occ_a = gamma[:-1].sum(axis=0)
    ok_a = occ_a > _TINY
    new_A = A.copy()
    new_A[ok_a] = xi_sum[ok_a] / occ_a[ok_a, None]
    counts = np.zeros((M, gamma.shape[1]))
    np.add.at(counts, obs, gamma)  # counts[k, i] = sum_{t: obs_t = k} gamma[t, i]
    occ_b = gamma.sum(axis=0)
    ok_b = occ_b > _TINY
    new_B = B.copy()
    new_B[ok_b] = counts.T[ok_b] / occ_b[ok_b, None]
    return new_pi, new_A, new_B


def baum_welch(obs, pi, A, B, n_iter=100):
    """``(pi, A, B)`` after ``n_iter`` scaled Baum-Welch re-estimations; arguments untouched."""
    obs = _obs(obs)
    pi, A, B = _f(pi).copy(), _f(A).copy(), _f(B).copy()
    for _ in range(int(n_iter)):
        gamma, xi_sum = _expectations(obs, pi, A, B)
        pi, A, B = _m_step(obs, gamma, xi_sum, A, B)
    return pi, A, B


# ----------------------------------------------------------------- known mistakes

@mistake("q4.urn_columns_swapped", of="urn_emissions", title="red and blue columns swapped",
         hint="Column 0 of B is P(red) = red / (red + blue) and column 1 is P(blue); "
              "check the order of your columns.")
def _urn_columns_swapped(red, blue):
    return urn_emissions(red, blue)[:, ::-1].copy()


@mistake("q4.forward_no_initial_emission", of="forward", title="alpha_1 without the emission",
         hint="The forward recursion starts with alpha_1(i) = pi_i * b_i(o_1): the first "
              "observation must be emitted too.")
def _forward_no_initial_emission(obs, pi, A, B):
    obs, pi, A, B = _obs(obs), _f(pi), _f(A), _f(B)
    alpha = np.empty((obs.size, pi.size))
    alpha[0] = pi
    for t in range(1, obs.size):
        alpha[t] = (alpha[t - 1] @ A) * B[:, obs[t]]
    return float(alpha[-1].sum()), alpha


@mistake("q4.forward_transposed_A", of="forward", title="A used transposed",
         hint="A[i, j] is the probability of going from state i to state j, so "
              "alpha_{t+1}(j) = sum_i alpha_t(i) A[i, j] b_j(o_{t+1}) (alpha @ A, not A @ alpha).")
def _forward_transposed_A(obs, pi, A, B):
    return forward(obs, pi, _f(A).T, B)


@mistake("q4.backward_current_emission", of="backward", title="beta uses the current symbol",
         hint="beta_t(i) = sum_j A[i, j] b_j(o_{t+1}) beta_{t+1}(j): the emission is that of "
              "the *next* observation o_{t+1}, not o_t.")
def _backward_current_emission(obs, A, B):
    obs, A, B = _obs(obs), _f(A), _f(B)
    beta = np.empty((obs.size, A.shape[0]))
    beta[-1] = 1.0
    for t in range(obs.size - 2, -1, -1):
        beta[t] = A @ (B[:, obs[t]] * beta[t + 1])
    return beta


@mistake("q4.unscaled", of="baum_welch", title="no scaling (underflow on long sequences)",
         hint="On a few thousand symbols the unscaled forward/backward variables underflow to 0 "
              "and the updates become 0/0 = NaN; normalise alpha_t at every step (and beta_t by "
              "the same factors) or work in log space.")
def _unscaled(obs, pi, A, B, n_iter=100):
    obs = _obs(obs)
    pi, A, B = _f(pi).copy(), _f(A).copy(), _f(B).copy()
    with np.errstate(all="ignore"):
        for _ in range(int(n_iter)):
            prob, alpha = forward(obs, pi, A, B)
            beta = backward(obs, A, B)
            gamma = alpha * beta / prob
            emis = B[:, obs].T
            xi_sum = A * (alpha[:-1].T @ (emis[1:] * beta[1:])) / prob
            pi = gamma[0]
            A = xi_sum / gamma[:-1].sum(axis=0)[:, None]
            counts = np.zeros((B.shape[1], pi.size))
            np.add.at(counts, obs, gamma)
            B = counts.T / gamma.sum(axis=0)[:, None]
    return pi, A, B


@mistake("q4.pi_not_reestimated", of="baum_welch", title="pi not re-estimated",
         hint="Baum-Welch re-estimates the initial distribution as well: pi_i = gamma_1(i), "
              "the posterior of state i at the first time step.")
def _pi_not_reestimated(obs, pi, A, B, n_iter=100):
    obs = _obs(obs)
    pi0, A, B = _f(pi).copy(), _f(A).copy(), _f(B).copy()
    for _ in range(int(n_iter)):
        gamma, xi_sum = _expectations(obs, pi0, A, B)
        _, A, B = _m_step(obs, gamma, xi_sum, A, B)
    return pi0, A, B


@mistake("q4.emission_normalised_in_loop", of="baum_welch",
         title="emission rows normalised inside the symbol loop",
         hint="Fill every column B[:, k] = sum_{t: o_t = k} gamma_t / sum_t gamma_t first and "
              "normalise once; normalising the rows inside the loop over symbols rescales the "
              "columns already written.")
def _emission_normalised_in_loop(obs, pi, A, B, n_iter=100):
    obs = _obs(obs)
    pi, A, B = _f(pi).copy(), _f(A).copy(), _f(B).copy()
    with np.errstate(all="ignore"):
        for _ in range(int(n_iter)):
            gamma, xi_sum = _expectations(obs, pi, A, B)
            new_pi, new_A, _ = _m_step(obs, gamma, xi_sum, A, B)
            new_B = np.zeros_like(B)
            for k in range(B.shape[1]):
                new_B[:, k] = gamma[obs == k].sum(axis=0)
                new_B = new_B / new_B.sum(axis=1, keepdims=True)
            pi, A, B = new_pi, new_A, new_B
    return pi, A, B
