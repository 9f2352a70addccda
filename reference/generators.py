"""Seeded input generators named by the rubric's cases.

Each ``@generator("name")`` function takes a ``numpy.random.Generator`` first and returns a
dict of named inputs: float64 arrays, int64 arrays (observation sequences, counts) or ints.
Everything is drawn from ``rng`` only, so an instance is fixed by its seed.
"""

from __future__ import annotations

import numpy as np

from grader.assignment.registry import generator

from .q4_hmm import _expectations, _m_step


@generator("batchnorm_batch")
def batchnorm_batch(rng, n, d):
    """``x`` (n, d) with per-feature offsets and scales, ``gamma``, ``beta`` (d,), ``dout`` (n, d)."""
    offset = rng.uniform(-3.0, 3.0, size=d)
    scale = np.exp(rng.uniform(-1.0, 1.5, size=d))
    x = offset + scale * rng.standard_normal((n, d))
    gamma = rng.uniform(0.5, 2.0, size=d) * rng.choice([-1.0, 1.0], size=d)
    beta = rng.normal(0.0, 1.0, size=d)
    dout = rng.standard_normal((n, d))
    return {"x": x, "gamma": gamma, "beta": beta, "dout": dout}


@generator("vae_batch")
def vae_batch(rng, n, l):
    """``mean``, ``log_stddev`` (in [-2, 1]), standard-normal ``noise`` and ``dz``, all (n, l)."""
    mean = rng.normal(0.0, 1.5, size=(n, l))
    log_stddev = rng.uniform(-2.0, 1.0, size=(n, l))
    noise = rng.standard_normal((n, l))
    dz = rng.standard_normal((n, l))
    return {"mean": mean, "log_stddev": log_stddev, "noise": noise, "dz": dz}


def _rotation(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@generator("separable_points")
def separable_points(rng, n_pos, n_neg, d, margin):
    """Linearly separable ``X`` (n_pos + n_neg, d) with labels ``y`` = +1/-1 (float).

    The maximum-margin hyperplane is known by construction and well conditioned: two or
    three support vectors lie exactly on the margin planes (geometric gap = ``margin``;
    with three, the lone one projects strictly inside the segment of the other two, so
    every alpha is clearly positive and unique), and every other point is at least
    ``margin / 2`` beyond its margin plane, so its alpha is clearly zero.
    """
    n_pos, n_neg, d, margin = int(n_pos), int(n_neg), int(d), float(margin)
    if n_pos < 1 or n_neg < 1 or d < 1 or margin <= 0:
        raise ValueError("separable_points needs n_pos, n_neg, d >= 1 and margin > 0")
    half = margin / 2.0
    spread = 2.0 * max(margin, 1.0)
    n = n_pos + n_neg
    y = np.concatenate([np.ones(n_pos), -np.ones(n_neg)])
    canon = np.empty((n, d))
    # points off the margin: |x_1| >= half + margin/2 (functional margin >= 2)
    depth = half + margin * rng.uniform(0.5, 2.0, size=n)
    canon[:, 0] = y * depth
    canon[:, 1:] = spread * rng.standard_normal((n, d - 1))
    # support vectors: index 0 is positive, n_pos is negative
    pos_sv, neg_sv = [0], [n_pos]
    if d >= 2 and (n_pos >= 2 or n_neg >= 2):
        if n_pos >= 2 and (n_neg < 2 or rng.random() < 0.5):
            pair, lone = [0, 1], n_pos
        else:
            pair, lone = [n_pos, n_pos + 1], 0
        while True:
            ends = spread * rng.standard_normal((2, d - 1))
            if np.linalg.norm(ends[0] - ends[1]) >= spread:
                break
        lam = rng.uniform(0.3, 0.7)
        canon[pair, 1:] = ends
        canon[lone, 1:] = lam * ends[0] + (1.0 - lam) * ends[1]
        support = pair + [lone]
    else:
        canon[n_pos, 1:] = canon[0, 1:]
        support = pos_sv + neg_sv
    canon[support, 0] = y[support] * half
    rot = _rotation(rng, d)
    shift = rng.normal(0.0, 2.0, size=d)
    X = canon @ rot.T + shift
    order = rng.permutation(n)
    return {"X": np.ascontiguousarray(X[order]), "y": y[order].copy()}


@generator("urn_counts")
def urn_counts(rng, n_urns):
    """Ball counts per urn: ``red`` and ``blue``, int64 arrays of shape (n_urns,) in 1..9."""
    red = rng.integers(1, 10, size=int(n_urns), dtype=np.int64)
    blue = rng.integers(1, 10, size=int(n_urns), dtype=np.int64)
    return {"red": red, "blue": blue}


def _stochastic(rng, rows, cols, concentration=3.0):
    return rng.dirichlet(np.full(cols, concentration), size=rows)


def _sample_sequence(rng, pi, A, B, length):
    n_states, n_symbols = B.shape
    cum_a, cum_b = np.cumsum(A, axis=1), np.cumsum(B, axis=1)
    u_state, u_symbol = rng.random(length), rng.random(length)
    states = np.empty(length, dtype=np.int64)
    states[0] = min(np.searchsorted(np.cumsum(pi), u_state[0], side="right"), n_states - 1)
    for t in range(1, length):
        states[t] = min(np.searchsorted(cum_a[states[t - 1]], u_state[t], side="right"),
                        n_states - 1)
    obs = (u_symbol[:, None] >= cum_b[states]).sum(axis=1)
    return np.minimum(obs, n_symbols - 1).astype(np.int64)


@generator("hmm_instance")
def hmm_instance(rng, n_states, n_symbols, length):
    """A starting model (``pi``, ``A``, ``B``) and ``obs`` (int64, ``length`` symbols).

    ``A`` and ``B`` rows are Dirichlet(3) (no tiny entry), ``pi`` Dirichlet(3) (strictly
    positive). ``obs`` is sampled from a *different* random HMM of the same size. The
    instance is redrawn (from the same ``rng``, so still fixed by the seed) until every
    state's expected occupancy, before and after one Baum-Welch step, is at least
    ``0.1 * length / n_states``.
    """
    n_states, n_symbols, length = int(n_states), int(n_symbols), int(length)
    if n_states < 1 or n_symbols < 1 or length < 1:
        raise ValueError("hmm_instance needs n_states, n_symbols, length >= 1")
    floor = 0.1 * length / n_states
    for _ in range(200):
        true_pi = rng.dirichlet(np.full(n_states, 3.0))
        true_A = _stochastic(rng, n_states, n_states)
        true_B = _stochastic(rng, n_states, n_symbols)
        obs = _sample_sequence(rng, true_pi, true_A, true_B, length)
        pi = rng.dirichlet(np.full(n_states, 3.0))
        A = _stochastic(rng, n_states, n_states)
        B = _stochastic(rng, n_states, n_symbols)
        gamma, xi_sum = _expectations(obs, pi, A, B)
        new = _m_step(obs, gamma, xi_sum, A, B)
        gamma_next, _ = _expectations(obs, *new)
        if min(gamma.sum(axis=0).min(), gamma_next.sum(axis=0).min()) >= floor:
            return {"obs": obs, "pi": pi, "A": A, "B": B}
    raise ValueError(f"hmm_instance: no instance with occupancy >= {floor:g} per state "
                     f"after 200 draws (n_states={n_states}, length={length})")


@generator("integer_image_and_kernel")
def integer_image_and_kernel(rng, h, w, channels, kh, kw, low=-5, high=5):
    """Integer-valued float64 image ``x`` and kernel ``k`` with entries in [low, high].

    ``channels == 0``: ``x`` (h, w), ``k`` (kh, kw); otherwise channels last:
    ``x`` (h, w, channels), ``k`` (kh, kw, channels).
    """
    extra = () if int(channels) == 0 else (int(channels),)
    x = rng.integers(int(low), int(high) + 1, size=(int(h), int(w)) + extra).astype(np.float64)
    k = rng.integers(int(low), int(high) + 1, size=(int(kh), int(kw)) + extra).astype(np.float64)
    return {"x": x, "k": k}
