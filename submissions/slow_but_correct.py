# Homework: deep-learning fundamentals -- correct, but 50 times slower than the reference on every case.
import time

import numpy as np
from cvxopt import matrix, solvers

ANSWER_Q1 = """gamma and beta are not statistics of the data: they are free parameters that let the
network rescale and shift the normalised activations (it can even undo the normalisation and
recover the identity if that is what minimises the loss). There is nothing to compute from the
samples, only the batch mean and variance are computed per mini-batch (running averages of them
are used at test time). gamma and beta are trained like any other weight: backpropagation gives
dL/dgamma = sum(dout * x_hat) and dL/dbeta = sum(dout) over the batch, and the optimiser (SGD, Adam)
updates them together with the rest of the network."""

ANSWER_Q2 = """如果直接從 N(μ, σ²) 取樣 z，sampling 這個操作對 μ 和 σ 不可微分，decoder 的 loss 的
gradient 就無法 backpropagate 回 encoder。Reparameterization trick 把取樣改寫成
z = μ + σ·ε，其中 ε ~ N(0, I) 與參數無關，隨機性變成一個輸入，z 就是 μ 和 σ 的 deterministic、
可微分函數：dz/dμ = 1，dz/dσ = ε（用 log σ 時 dz/dlog σ = σ·ε）。這樣得到 low-variance 的
gradient estimator，再和 KL term 一起用 SGD 訓練。"""


# Stands for a correct submission written in plain Python loops: every homework function below
# computes its answer, then keeps the CPU busy in a plain loop for 49 times as long as that took,
# so each call costs 50 times the work of the vectorised code (the reference's time), whatever
# the machine and its load. The grader must still give it full marks (rubric limits: CallTiming).
_depth = 0


def _fifty_times_slower(function):
    def slowly(*args, **kwargs):
        global _depth
        _depth += 1
        started = time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            _depth -= 1
            if _depth == 0:  # a helper called by another homework function is not slowed twice
                spin_until = time.process_time() + 49 * (time.process_time() - started)
                while time.process_time() < spin_until:
                    pass
    slowly.__name__ = function.__name__
    return slowly


# ---------------------------------------------------------------- Q1 batch normalization

@_fifty_times_slower
def batchnorm_forward(x, gamma, beta, eps=1e-5):
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta


@_fifty_times_slower
def batchnorm_backward(dout, x, gamma, eps=1e-5):
    n = x.shape[0]
    mu = x.mean(axis=0)
    var = x.var(axis=0)
    inv_std = 1.0 / np.sqrt(var + eps)
    x_hat = (x - mu) * inv_std
    dbeta = dout.sum(axis=0)
    dgamma = (dout * x_hat).sum(axis=0)
    dx_hat = dout * gamma
    dx = inv_std / n * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, dgamma, dbeta


# ---------------------------------------------------------------- Q2 VAE

@_fifty_times_slower
def reparameterize(mean, log_stddev, noise):
    return mean + np.exp(log_stddev) * noise


@_fifty_times_slower
def reparameterize_backward(dz, log_stddev, noise):
    dmean = dz.copy()
    dlog_stddev = dz * np.exp(log_stddev) * noise
    return dmean, dlog_stddev


@_fifty_times_slower
def kl_to_standard_normal(mean, log_stddev):
    return 0.5 * np.sum(mean ** 2 + np.exp(2 * log_stddev) - 1 - 2 * log_stddev, axis=-1)


# ---------------------------------------------------------------- Q3 SVM

@_fifty_times_slower
def svm_dual_alphas(X, y):
    n = X.shape[0]
    Xy = X * y[:, None]
    P = matrix(Xy @ Xy.T)
    q = matrix(-np.ones(n))
    G = matrix(-np.eye(n))
    h = matrix(np.zeros(n))
    A = matrix(y.reshape(1, -1))
    b = matrix(np.zeros(1))
    sol = solvers.qp(P, q, G, h, A, b, options={"show_progress": False})
    return np.array(sol["x"]).ravel()


@_fifty_times_slower
def optimal_margin_svm(X, y):
    alpha = svm_dual_alphas(X, y)
    w = (alpha * y) @ X
    sv = alpha > 1e-4 * alpha.max()
    b = np.mean(y[sv] - X[sv] @ w)
    return w, b


# ---------------------------------------------------------------- Q4 HMM

@_fifty_times_slower
def urn_emissions(red, blue):
    counts = np.stack([red, blue], axis=1).astype(float)
    return counts / counts.sum(axis=1, keepdims=True)


@_fifty_times_slower
def forward(obs, pi, A, B):
    T = len(obs)
    alpha = np.zeros((T, len(pi)))
    alpha[0] = pi * B[:, obs[0]]
    for t in range(1, T):
        alpha[t] = (alpha[t - 1] @ A) * B[:, obs[t]]
    return alpha[-1].sum(), alpha


@_fifty_times_slower
def backward(obs, A, B):
    T = len(obs)
    beta = np.ones((T, A.shape[0]))
    for t in range(T - 2, -1, -1):
        beta[t] = A @ (B[:, obs[t + 1]] * beta[t + 1])
    return beta


@_fifty_times_slower
def baum_welch(obs, pi, A, B, n_iter=100):
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


# ---------------------------------------------------------------- Q5 sub-pixel convolution

@_fifty_times_slower
def zero_insert(x, factor=2):
    H, W = x.shape[:2]
    u = np.zeros(((H - 1) * factor + 1, (W - 1) * factor + 1) + x.shape[2:])
    u[::factor, ::factor] = x
    return u


@_fifty_times_slower
def conv2d_valid(p, k, stride=1):
    kh, kw = k.shape[:2]
    oh = (p.shape[0] - kh) // stride + 1
    ow = (p.shape[1] - kw) // stride + 1
    out = np.zeros((oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = p[i:i + (oh - 1) * stride + 1:stride, j:j + (ow - 1) * stride + 1:stride]
            out += (patch * k[i, j]).reshape(oh, ow, -1).sum(axis=-1)
    return out


@_fifty_times_slower
def subpixel_conv(x, k, padding=2):
    u = zero_insert(x, 2)
    pad = [(padding, padding), (padding, padding)] + [(0, 0)] * (u.ndim - 2)
    return np.maximum(conv2d_valid(np.pad(u, pad), k), 0)
