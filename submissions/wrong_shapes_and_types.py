# Homework: deep-learning fundamentals -- the numbers are mostly right, but many functions hand
# them back in the wrong shape or as something that is not an array at all.
import numpy as np
from cvxopt import matrix, solvers


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
    return (gamma * x_hat + beta).T                      # (D, N) instead of (N, D)


def batchnorm_backward(dout, x, gamma, eps=1e-5):
    n = x.shape[0]
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - x.mean(axis=0)) * inv_std
    dx_hat = dout * gamma
    dx = inv_std / n * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    dgamma = (dout * x_hat).sum(axis=0, keepdims=True)   # (1, D) instead of (D,)
    dbeta = dout.sum(axis=0, keepdims=True)
    return dx, dgamma, dbeta


def reparameterize(mean, log_stddev, noise):
    return (mean + np.exp(log_stddev) * noise).tolist()  # a nested list is fine


def reparameterize_backward(dz, log_stddev, noise):
    return {"dmean": dz, "dlog_stddev": dz * np.exp(log_stddev) * noise}   # a dict


def kl_to_standard_normal(mean, log_stddev):
    terms = mean ** 2 + np.exp(2 * log_stddev) - 1 - 2 * log_stddev
    return 0.5 * terms.sum(axis=1, keepdims=True)        # (N, 1) instead of (N,)


def svm_dual_alphas(X, y):
    n = X.shape[0]
    Xy = X * y[:, None]
    sol = solvers.qp(matrix(Xy @ Xy.T), matrix(-np.ones(n)), matrix(-np.eye(n)), matrix(np.zeros(n)),
                     matrix(y.reshape(1, -1)), matrix(np.zeros(1)), options={"show_progress": False})
    return sol["x"]                                      # a cvxopt (n, 1) matrix


def optimal_margin_svm(X, y):
    alpha = np.array(svm_dual_alphas(X, y)).ravel()
    w = (alpha * y) @ X
    sv = alpha > 1e-4 * alpha.max()
    b = np.mean(y[sv] - X[sv] @ w)
    return w, f"{b:.4f}"                                 # b formatted as a string


def urn_emissions(red, blue):
    counts = np.stack([red, blue], axis=1).astype(float)
    B = counts / counts.sum(axis=1, keepdims=True)       # forgot to return B


def forward(obs, pi, A, B):
    alpha = np.zeros((len(pi), len(obs)))                # one column per time step: (N, T)
    alpha[:, 0] = pi * B[:, obs[0]]
    for t in range(1, len(obs)):
        alpha[:, t] = (alpha[:, t - 1] @ A) * B[:, obs[t]]
    return alpha[:, -1].sum(), alpha


def backward(obs, A, B):
    betas = [1.0]                                        # beta_T = 1 ... as a number
    for t in range(len(obs) - 2, -1, -1):
        betas.insert(0, A @ (B[:, obs[t + 1]] * betas[0]))
    return betas                                         # ragged: arrays and a float


def baum_welch(obs, pi, A, B, n_iter=100):
    pi = pi.copy()
    T, N = len(obs), len(pi)
    log_likelihood = 0.0
    for _ in range(n_iter):
        e = B[:, obs].T
        alpha, c = np.zeros((T, N)), np.zeros(T)
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
        log_likelihood = np.log(c).sum()
        pi = gamma[0] / gamma[0].sum()
        A = xi / gamma[:-1].sum(axis=0)[:, None]
        new_B = np.zeros_like(B)
        for k in range(B.shape[1]):
            new_B[:, k] = gamma[obs == k].sum(axis=0)
        B = new_B / new_B.sum(axis=1, keepdims=True)
    return pi, A, B, log_likelihood                      # four values instead of three


def zero_insert(x, factor=2):
    H, W = x.shape[:2]
    u = np.zeros(((H - 1) * factor + 1, (W - 1) * factor + 1) + x.shape[2:])
    u[::factor, ::factor] = x
    return u


def conv2d_valid(p, k, stride=1):
    kh, kw = k.shape[:2]
    oh = (p.shape[0] - kh) // stride + 1
    ow = (p.shape[1] - kw) // stride + 1
    out = np.zeros((oh, ow) + p.shape[2:])               # keeps the channel axis: (oh, ow, C)
    for i in range(kh):
        for j in range(kw):
            out += p[i:i + (oh - 1) * stride + 1:stride, j:j + (ow - 1) * stride + 1:stride] * k[i, j]
    return out


def subpixel_conv(x, k, padding=2):
    u = zero_insert(x, 2)
    pad = [(padding, padding), (padding, padding)] + [(0, 0)] * (u.ndim - 2)
    return np.maximum(conv2d_valid(np.pad(u, pad), k), 0)
