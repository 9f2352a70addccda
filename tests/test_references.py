"""The reference package checked against the lecture's answers and independent implementations.

Independent means code nobody here wrote (hmmlearn, scikit-learn, scipy) or a different
route to the same number (finite differences, brute-force path sums, per-dimension
closed forms). Also: references never modify their inputs, every registered mistake is
diagnosable (differs from its reference on some generator instance), and the package
loads through ``grader.assignment.registry.ReferenceSet``.
"""

from __future__ import annotations

import inspect
import itertools
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate, signal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from grader.assignment.registry import ReferenceSet  # noqa: E402
from reference import generators as gen  # noqa: E402
from reference import q1_batchnorm, q2_vae, q3_svm, q4_hmm, q5_subpixel  # noqa: E402

SEEDS = list(range(20))


def rng(seed):
    return np.random.default_rng(seed)


def central_diff(f, arrays, which, h=1e-6):
    """d f(*arrays) / d arrays[which], elementwise, by central differences."""
    base = [np.array(a, dtype=float) for a in arrays]
    grad = np.zeros_like(base[which])
    for idx in np.ndindex(grad.shape):
        plus = [a.copy() for a in base]
        minus = [a.copy() for a in base]
        plus[which][idx] += h
        minus[which][idx] -= h
        grad[idx] = (f(*plus) - f(*minus)) / (2 * h)
    return grad


# ============================================================ lecture answers (pinned)

def test_q3_lecture_instance():
    X = np.array([[1.0, -1.0], [-1.0, -1.0]])
    y = np.array([1.0, -1.0])
    alpha = q3_svm.svm_dual_alphas(X, y)
    w, b = q3_svm.optimal_margin_svm(X, y)
    assert alpha.shape == (2,) and w.shape == (2,) and isinstance(b, float)
    np.testing.assert_allclose(alpha, [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(w, [1.0, 0.0], atol=1e-6)
    assert abs(b) < 1e-6


def test_q4_lecture_three_urns():
    B = q4_hmm.urn_emissions(np.array([4.0, 2.0, 3.0]), np.array([2.0, 4.0, 3.0]))
    np.testing.assert_allclose(B, [[2 / 3, 1 / 3], [1 / 3, 2 / 3], [0.5, 0.5]])
    obs = np.array([0, 0, 1, 0, 1])
    pi, A = np.full(3, 1 / 3), np.full((3, 3), 1 / 3)
    pi_, A_, B_ = q4_hmm.baum_welch(obs, pi, A, B)  # default n_iter = 100
    np.testing.assert_allclose(pi_, [1, 0, 0], atol=1e-3)
    np.testing.assert_allclose(A_, [[0, 0, 1], [0, 0, 1], [0, 1, 0]], atol=1e-3)
    np.testing.assert_allclose(B_, [[1, 0], [0, 1], [1, 0]], atol=1e-3)
    prob, _ = q4_hmm.forward(obs, pi_, A_, B_)
    assert prob == pytest.approx(1.0, abs=1e-3)


LECTURE_IMAGE = np.array([[6, 0, -4, 0, 1], [4, 4, 0, 2, 1], [3, -7, 1, 4, 2],
                          [-2, 2, 1, -4, 2], [5, 1, 2, 4, -1]], dtype=float)
LECTURE_KERNEL = np.array([[3, -1, 2], [-2, 1, -3], [-2, 0, 3]], dtype=float)


def test_q5_lecture_instance():
    out = q5_subpixel.subpixel_conv(LECTURE_IMAGE, LECTURE_KERNEL)
    assert out.shape == (11, 11)
    np.testing.assert_array_equal(out[0], [18, 0, 0, 0, 0, 0, 8, 0, 3, 0, 0])
    np.testing.assert_array_equal(out[2], [24, 0, 22, 0, 0, 4, 0, 0, 1, 0, 1])
    assert (out >= 0).all()


# ============================================================ Q1 batch norm

@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q1_forward_matches_per_feature_loop(seed):
    inst = gen.batchnorm_batch(rng(seed), n=7 + seed % 5, d=1 + seed % 4)
    x, gamma, beta = inst["x"], inst["gamma"], inst["beta"]
    out = q1_batchnorm.batchnorm_forward(x, gamma, beta)
    for j in range(x.shape[1]):
        col = x[:, j]
        mu = sum(col) / len(col)
        var = sum((v - mu) ** 2 for v in col) / len(col)
        expected = gamma[j] * (col - mu) / np.sqrt(var + 1e-5) + beta[j]
        np.testing.assert_allclose(out[:, j], expected, rtol=1e-10, atol=1e-12)
    # normalised output has batch mean beta and (biased) std ~ |gamma|
    np.testing.assert_allclose(out.mean(axis=0), beta, atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q1_backward_vs_finite_differences(seed):
    inst = gen.batchnorm_batch(rng(seed), n=4 + seed % 5, d=1 + seed % 3)
    x, gamma, beta, dout = inst["x"], inst["gamma"], inst["beta"], inst["dout"]
    eps = 1e-5 if seed % 2 else 1e-3
    dx, dgamma, dbeta = q1_batchnorm.batchnorm_backward(dout, x, gamma, eps)

    def loss(x_, g_, b_):
        return float(np.sum(dout * q1_batchnorm.batchnorm_forward(x_, g_, b_, eps)))

    for which, got in ((0, dx), (1, dgamma), (2, dbeta)):
        fd = central_diff(loss, (x, gamma, beta), which)
        assert got.shape == fd.shape
        np.testing.assert_allclose(got, fd, rtol=1e-5, atol=1e-6)


# ============================================================ Q2 VAE

@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q2_reparameterize_and_backward(seed):
    inst = gen.vae_batch(rng(seed), n=3 + seed % 4, l=2 + seed % 3)
    mean, ls, noise, dz = inst["mean"], inst["log_stddev"], inst["noise"], inst["dz"]
    assert ls.min() >= -2 and ls.max() <= 1
    std = np.sqrt(np.exp(2 * ls))
    np.testing.assert_allclose(q2_vae.reparameterize(mean, ls, noise), mean + std * noise,
                               rtol=1e-12)
    dmean, dls = q2_vae.reparameterize_backward(dz, ls, noise)

    def loss(m_, s_):
        return float(np.sum(dz * q2_vae.reparameterize(m_, s_, noise)))

    np.testing.assert_allclose(dmean, central_diff(loss, (mean, ls), 0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(dls, central_diff(loss, (mean, ls), 1), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q2_kl_closed_form_via_variances(seed):
    inst = gen.vae_batch(rng(seed), n=2 + seed % 5, l=1 + seed % 4)
    mean, ls = inst["mean"], inst["log_stddev"]
    kl = q2_vae.kl_to_standard_normal(mean, ls)
    assert kl.shape == (mean.shape[0],)
    sigma = np.exp(ls)
    var = sigma * sigma
    # KL(N(m, s^2) || N(0, 1)) = -log s + (s^2 + m^2)/2 - 1/2, per dimension
    expected = np.sum(-np.log(sigma) + (var + mean ** 2) / 2 - 0.5, axis=1)
    np.testing.assert_allclose(kl, expected, rtol=1e-10, atol=1e-12)
    assert (kl >= 0).all()


@pytest.mark.parametrize("m, ls", [(0.0, 0.0), (1.3, -0.7), (-0.4, 0.8), (2.0, -1.9)],
                         ids=["standard", "narrow", "wide", "far"])
def test_q2_kl_by_quadrature(m, ls):
    s = np.exp(ls)
    p = lambda z: np.exp(-0.5 * ((z - m) / s) ** 2) / (s * np.sqrt(2 * np.pi))  # noqa: E731
    log_ratio = lambda z: (-0.5 * ((z - m) / s) ** 2 - np.log(s)) + 0.5 * z ** 2  # noqa: E731
    expected, _ = integrate.quad(lambda z: p(z) * log_ratio(z), m - 12 * s, m + 12 * s)
    got = q2_vae.kl_to_standard_normal(np.array([[m]]), np.array([[ls]]))
    assert got[0] == pytest.approx(expected, rel=1e-7, abs=1e-10)


# ============================================================ Q3 SVM

def _svm_params(seed):
    return dict(n_pos=3 + seed % 7, n_neg=2 + (3 * seed) % 6, d=1 + seed % 5,
                margin=[0.5, 1.0, 2.0][seed % 3])


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q3_against_sklearn(seed):
    from sklearn.svm import SVC

    inst = gen.separable_points(rng(seed), **_svm_params(seed))
    X, y = inst["X"], inst["y"]
    alpha = q3_svm.svm_dual_alphas(X, y)
    w, b = q3_svm.optimal_margin_svm(X, y)
    assert alpha.shape == (X.shape[0],) and w.shape == (X.shape[1],) and isinstance(b, float)

    clf = SVC(kernel="linear", C=1e10, tol=1e-10).fit(X, y)
    scale = max(1.0, float(np.linalg.norm(clf.coef_[0])))
    np.testing.assert_allclose(w, clf.coef_[0], atol=1e-4 * scale)
    assert b == pytest.approx(float(clf.intercept_[0]), abs=1e-4 * scale)
    sk_alpha = np.zeros(X.shape[0])
    sk_alpha[clf.support_] = np.abs(clf.dual_coef_[0])
    np.testing.assert_allclose(alpha, sk_alpha, atol=1e-4 * max(1.0, sk_alpha.max()))
    # the same support vectors, the dual's constraints, and geometric margin >= requested gap
    support = alpha > 1e-4 * alpha.max()
    assert set(np.flatnonzero(support)) == set(clf.support_)
    assert abs(float(alpha @ y)) < 1e-6 * max(1.0, alpha.max())
    functional = y * (X @ w + b)
    np.testing.assert_allclose(functional[support], 1.0, atol=1e-5)
    assert functional.min() > 1 - 1e-5
    assert 2 / np.linalg.norm(w) == pytest.approx(_svm_params(seed)["margin"], rel=1e-5)
    assert (~support).sum() >= 1  # the generator gives points that are not support vectors


# ============================================================ Q4 HMM

def _hmmlearn(pi, A, B, n_iter):
    from hmmlearn.hmm import CategoricalHMM

    model = CategoricalHMM(n_components=A.shape[0], n_features=B.shape[1], n_iter=n_iter,
                           tol=-np.inf, init_params="", params="ste")
    model.startprob_, model.transmat_, model.emissionprob_ = pi.copy(), A.copy(), B.copy()
    return model


@pytest.fixture(autouse=True, scope="module")
def _quiet_hmmlearn():
    logger = logging.getLogger("hmmlearn")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


def _hmm_params(seed, length):
    return dict(n_states=2 + seed % 3, n_symbols=2 + (seed // 3) % 3, length=length)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q4_forward_probability_vs_hmmlearn_score(seed):
    inst = gen.hmm_instance(rng(seed), **_hmm_params(seed, 6 + seed))
    obs, pi, A, B = inst["obs"], inst["pi"], inst["A"], inst["B"]
    prob, alpha = q4_hmm.forward(obs, pi, A, B)
    assert alpha.shape == (obs.size, A.shape[0])
    log_prob = _hmmlearn(pi, A, B, 1).score(obs.reshape(-1, 1))
    assert np.log(prob) == pytest.approx(log_prob, rel=1e-10, abs=1e-10)
    beta = q4_hmm.backward(obs, A, B)
    np.testing.assert_allclose((alpha * beta).sum(axis=1), prob, rtol=1e-10)


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q4_alpha_beta_brute_force(seed):
    T = 1 + seed % 5
    inst = gen.hmm_instance(rng(seed), n_states=2 + seed % 2, n_symbols=2 + seed % 3, length=T)
    obs, pi, A, B = inst["obs"], inst["pi"], inst["A"], inst["B"]
    N = A.shape[0]
    beta = q4_hmm.backward(obs, A, B)
    _, alpha = q4_hmm.forward(obs, pi, A, B)
    assert beta.shape == (T, N)
    np.testing.assert_array_equal(beta[-1], 1.0)
    for t in range(T):
        for i in range(N):
            b = 0.0  # sum over every continuation path s_{t+1..T-1}
            for path in itertools.product(range(N), repeat=T - 1 - t):
                p, prev = 1.0, i
                for u, s in enumerate(path, start=t + 1):
                    p *= A[prev, s] * B[s, obs[u]]
                    prev = s
                b += p
            assert beta[t, i] == pytest.approx(b, rel=1e-12)
            a = 0.0  # sum over every prefix path s_{0..t-1} ending in i at t
            for path in itertools.product(range(N), repeat=t):
                states = list(path) + [i]
                p = pi[states[0]] * B[states[0], obs[0]]
                for u in range(1, t + 1):
                    p *= A[states[u - 1], states[u]] * B[states[u], obs[u]]
                a += p
            assert alpha[t, i] == pytest.approx(a, rel=1e-12)


@pytest.mark.parametrize("n_iter", [1, 25], ids=["one_step", "25_steps"])
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q4_baum_welch_vs_hmmlearn(seed, n_iter):
    inst = gen.hmm_instance(rng(seed), **_hmm_params(seed, 40 + 7 * seed))
    obs, pi, A, B = inst["obs"], inst["pi"], inst["A"], inst["B"]
    got = q4_hmm.baum_welch(obs, pi, A, B, n_iter=n_iter)
    model = _hmmlearn(pi, A, B, n_iter).fit(obs.reshape(-1, 1))
    assert model.monitor_.iter == n_iter
    tol = 1e-9 if n_iter == 1 else 1e-6
    for mine, theirs in zip(got, (model.startprob_, model.transmat_, model.emissionprob_)):
        np.testing.assert_allclose(mine, theirs, atol=tol)


@pytest.mark.parametrize("seed", range(3), ids=lambda s: f"seed{s}")
def test_q4_baum_welch_long_sequence(seed):
    inst = gen.hmm_instance(rng(seed), n_states=3, n_symbols=4, length=3000)
    obs, pi, A, B = inst["obs"], inst["pi"], inst["A"], inst["B"]
    with np.errstate(all="ignore"):
        assert q4_hmm.forward(obs, pi, A, B)[0] == 0.0  # unscaled alpha underflows here
    got = q4_hmm.baum_welch(obs, pi, A, B, n_iter=5)
    for p in got:
        assert np.isfinite(p).all() and (p >= 0).all()
    np.testing.assert_allclose(got[0].sum(), 1.0)
    np.testing.assert_allclose(got[1].sum(axis=1), 1.0)
    np.testing.assert_allclose(got[2].sum(axis=1), 1.0)
    model = _hmmlearn(pi, A, B, 5).fit(obs.reshape(-1, 1))
    for mine, theirs in zip(got, (model.startprob_, model.transmat_, model.emissionprob_)):
        np.testing.assert_allclose(mine, theirs, atol=1e-8)


def test_q4_zero_occupancy_keeps_row():
    # state 1 can never be reached: its expected occupancy is exactly 0 (a 0/0 update)
    pi = np.array([1.0, 0.0])
    A = np.array([[1.0, 0.0], [0.3, 0.7]])
    B = np.array([[0.6, 0.4], [0.1, 0.9]])
    obs = np.array([0, 1, 1, 0, 1])
    pi_, A_, B_ = q4_hmm.baum_welch(obs, pi, A, B, n_iter=3)
    for p in (pi_, A_, B_):
        assert np.isfinite(p).all()
    np.testing.assert_allclose(pi_, [1.0, 0.0])
    np.testing.assert_allclose(A_, A)                 # row 1 kept as it was
    np.testing.assert_allclose(B_, [[0.4, 0.6], B[1]])  # state 0 re-estimated, state 1 kept


@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q4_urn_emissions(seed):
    inst = gen.urn_counts(rng(seed), n_urns=1 + seed % 5)
    red, blue = inst["red"], inst["blue"]
    assert red.dtype == np.int64 and red.min() >= 1 and blue.max() <= 9
    B = q4_hmm.urn_emissions(red, blue)
    for i in range(red.size):
        assert B[i, 0] == pytest.approx(red[i] / (red[i] + blue[i]))
        assert B[i, 1] == pytest.approx(blue[i] / (red[i] + blue[i]))


def test_hmm_instance_is_seeded_and_sampled_elsewhere():
    a = gen.hmm_instance(rng(7), n_states=3, n_symbols=4, length=200)
    b = gen.hmm_instance(rng(7), n_states=3, n_symbols=4, length=200)
    for key in ("obs", "pi", "A", "B"):
        np.testing.assert_array_equal(a[key], b[key])
    assert a["obs"].dtype == np.int64 and a["obs"].min() >= 0 and a["obs"].max() < 4
    assert (a["pi"] > 0).all() and a["A"].min() > 1e-4 and a["B"].min() > 1e-4
    np.testing.assert_allclose(a["A"].sum(axis=1), 1.0)
    np.testing.assert_allclose(a["B"].sum(axis=1), 1.0)


# ============================================================ Q5 sub-pixel convolution

def _scipy_valid(p, k):
    """Valid cross-correlation summed over channels, via scipy."""
    if p.ndim == 2:
        return signal.correlate2d(p, k, mode="valid")
    return sum(signal.correlate(p[..., c], k[..., c], mode="valid") for c in range(p.shape[2]))


def _conv_params(seed):
    channels = [0, 1, 3][seed % 3]
    kh, kw = 1 + seed % 4, 1 + (seed // 2) % 3
    return dict(h=kh + 2 + seed % 5, w=kw + 1 + seed % 6, channels=channels, kh=kh, kw=kw)


@pytest.mark.parametrize("stride", [1, 2, 3], ids=lambda s: f"stride{s}")
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q5_conv2d_valid_vs_scipy(seed, stride):
    inst = gen.integer_image_and_kernel(rng(seed), **_conv_params(seed))
    x, k = inst["x"], inst["k"]
    out = q5_subpixel.conv2d_valid(x, k, stride=stride)
    expected = _scipy_valid(x, k)[::stride, ::stride]
    assert out.ndim == 2
    np.testing.assert_array_equal(out, expected)
    assert out.shape == ((x.shape[0] - k.shape[0]) // stride + 1,
                         (x.shape[1] - k.shape[1]) // stride + 1)


@pytest.mark.parametrize("padding", [0, 1, 2, 3], ids=lambda p: f"pad{p}")
@pytest.mark.parametrize("seed", SEEDS, ids=lambda s: f"seed{s}")
def test_q5_subpixel_vs_scipy(seed, padding):
    channels = [0, 1, 3][seed % 3]
    inst = gen.integer_image_and_kernel(rng(seed), h=2 + seed % 5, w=2 + (seed // 5) % 4,
                                        channels=channels, kh=3, kw=2 + seed % 2)
    x, k = inst["x"], inst["k"]
    H, W = x.shape[:2]
    u = np.zeros((2 * H - 1, 2 * W - 1) + x.shape[2:])
    for i, j in itertools.product(range(H), range(W)):
        u[2 * i, 2 * j] = x[i, j]
    np.testing.assert_array_equal(q5_subpixel.zero_insert(x), u)
    spatial = ((padding, padding), (padding, padding)) + ((0, 0),) * (x.ndim - 2)
    p = np.pad(u, spatial)
    expected = np.maximum(_scipy_valid(p, k), 0)
    out = q5_subpixel.subpixel_conv(x, k, padding=padding)
    assert out.ndim == 2 and out.shape == expected.shape
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("factor", [1, 2, 3, 4], ids=lambda f: f"factor{f}")
def test_q5_zero_insert_factors(factor):
    x = gen.integer_image_and_kernel(rng(factor), h=3, w=4, channels=2, kh=1, kw=1)["x"]
    u = q5_subpixel.zero_insert(x, factor)
    assert u.shape == (2 * factor + 1, 3 * factor + 1, 2)
    np.testing.assert_array_equal(u[::factor, ::factor], x)
    assert np.count_nonzero(u) == np.count_nonzero(x)


def test_integer_image_and_kernel_shapes():
    two_d = gen.integer_image_and_kernel(rng(0), h=5, w=6, channels=0, kh=3, kw=2)
    three_d = gen.integer_image_and_kernel(rng(0), h=5, w=6, channels=4, kh=3, kw=2,
                                           low=-2, high=2)
    assert two_d["x"].shape == (5, 6) and two_d["k"].shape == (3, 2)
    assert three_d["x"].shape == (5, 6, 4) and three_d["k"].shape == (3, 2, 4)
    for arr in (*two_d.values(), *three_d.values()):
        assert arr.dtype == np.float64 and (arr == np.round(arr)).all()
    assert three_d["x"].min() >= -2 and three_d["x"].max() <= 2


# ============================================================ every reference, every mistake

# function -> list of (generator, generator params, renames {param: key}, extra kwargs)
INSTANCES = {
    "batchnorm_forward": [("batchnorm_batch", dict(n=8, d=3), {}, {})],
    "batchnorm_backward": [("batchnorm_batch", dict(n=8, d=3), {}, {})],
    "reparameterize": [("vae_batch", dict(n=4, l=3), {}, {})],
    "reparameterize_backward": [("vae_batch", dict(n=4, l=3), {}, {})],
    "kl_to_standard_normal": [("vae_batch", dict(n=4, l=3), {}, {})],
    "svm_dual_alphas": [("separable_points", dict(n_pos=6, n_neg=4, d=3, margin=1.0), {}, {})],
    "optimal_margin_svm": [("separable_points", dict(n_pos=6, n_neg=4, d=3, margin=1.0), {}, {})],
    "urn_emissions": [("urn_counts", dict(n_urns=3), {}, {})],
    "forward": [("hmm_instance", dict(n_states=3, n_symbols=4, length=12), {}, {})],
    "backward": [("hmm_instance", dict(n_states=3, n_symbols=4, length=12), {}, {})],
    "baum_welch": [("hmm_instance", dict(n_states=3, n_symbols=4, length=30), {}, {"n_iter": 4}),
                   ("hmm_instance", dict(n_states=3, n_symbols=4, length=3000), {},
                    {"n_iter": 2})],
    "zero_insert": [("integer_image_and_kernel", dict(h=5, w=4, channels=0, kh=3, kw=3), {}, {}),
                    ("integer_image_and_kernel", dict(h=4, w=3, channels=2, kh=3, kw=3), {},
                     {"factor": 3})],
    "conv2d_valid": [("integer_image_and_kernel", dict(h=7, w=6, channels=0, kh=3, kw=2),
                      {"p": "x"}, {}),
                     ("integer_image_and_kernel", dict(h=7, w=8, channels=3, kh=3, kw=3),
                      {"p": "x"}, {"stride": 2})],
    "subpixel_conv": [("integer_image_and_kernel", dict(h=5, w=5, channels=0, kh=3, kw=3), {}, {}),
                      ("integer_image_and_kernel", dict(h=4, w=3, channels=2, kh=3, kw=2), {},
                       {"padding": 1})],
}

REFS = ReferenceSet.load(ROOT / "reference")


def _calls(fn_name, seeds=range(3)):
    """(description, kwargs) for the generator instances of a reference function."""
    params = list(inspect.signature(REFS.function(fn_name)).parameters)
    for gen_name, gparams, renames, extra in INSTANCES[fn_name]:
        for seed in seeds:
            inst = REFS.generators[gen_name](np.random.default_rng(seed), **gparams)
            kwargs = {p: inst[renames.get(p, p)] for p in params
                      if renames.get(p, p) in inst}
            kwargs.update(extra)
            yield f"{gen_name}{gparams}{extra} seed {seed}", kwargs


def _as_arrays(out):
    parts = out if isinstance(out, tuple) else (out,)
    return [np.asarray(p, dtype=float) for p in parts]


def _differs(a, b):
    a, b = _as_arrays(a), _as_arrays(b)
    if len(a) != len(b):
        return True
    return any(x.shape != y.shape or not np.allclose(x, y, rtol=1e-4, atol=1e-8)
               for x, y in zip(a, b))


def test_reference_set_loads_and_lists_everything():
    mods = (q1_batchnorm, q2_vae, q3_svm, q4_hmm, q5_subpixel)
    marked = {getattr(fn, "_hwgrader_mistake")[0]: mod.__name__.split(".")[-1]
              for mod in mods for fn in vars(mod).values()
              if callable(fn) and hasattr(fn, "_hwgrader_mistake")}
    assert set(REFS.mistakes) == set(marked)
    for mid, module in marked.items():
        assert mid.startswith(module.split("_")[0] + ".")  # q3.* lives in q3_svm
    assert set(REFS.functions) == set(INSTANCES)
    assert set(REFS.generators) == {"batchnorm_batch", "vae_batch", "separable_points",
                                    "urn_counts", "hmm_instance", "integer_image_and_kernel"}
    required = {"q1.unbiased_variance_forward", "q1.unbiased_variance_backward",
                "q1.dgamma_dbeta_swapped", "q2.logvar_reparameterize", "q2.logvar_backward",
                "q2.logvar_kl", "q2.kl_wrong_sign", "q2.kl_missing_mean",
                "q3.alphas_no_equality", "q3.svm_no_equality", "q3.w_without_labels",
                "q3.b_from_non_support_vector", "q4.unscaled", "q4.pi_not_reestimated",
                "q4.emission_normalised_in_loop", "q5.conv_flipped_kernel",
                "q5.subpixel_flipped_kernel", "q5.subpixel_missing_relu",
                "q5.zero_insert_wrong_size", "q5.subpixel_wrong_zero_insert",
                "q5.subpixel_wrong_padding"}
    assert required <= set(REFS.mistakes)


@pytest.mark.parametrize("fn_name", sorted(INSTANCES))
def test_reference_leaves_inputs_unchanged(fn_name):
    fn = REFS.function(fn_name)
    for where, kwargs in _calls(fn_name, seeds=[0]):
        copies = {k: np.copy(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        with np.errstate(all="ignore"):
            fn(**kwargs)
        for k, v in kwargs.items():
            if isinstance(v, np.ndarray):
                assert v.dtype == copies[k].dtype
                np.testing.assert_array_equal(v, copies[k], err_msg=f"{fn_name} changed {k} ({where})")


@pytest.mark.parametrize("mistake_id", sorted(REFS.mistakes))
def test_mistake_is_diagnosable(mistake_id):
    m = REFS.mistakes[mistake_id]
    reference = REFS.function(m.of)
    assert m.title and m.hint and mistake_id.split(".")[0] in {"q1", "q2", "q3", "q4", "q5"}
    for _, kwargs in _calls(m.of):
        expected = reference(**kwargs)
        for p in _as_arrays(expected):
            assert np.isfinite(p).all()
        with np.errstate(all="ignore"):
            if _differs(m.function(**kwargs), expected):
                return
    pytest.fail(f"{mistake_id} agrees with {m.of} on every generator instance")
