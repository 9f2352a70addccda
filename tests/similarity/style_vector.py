"""My homework: vectorised numpy, einsum where it reads well."""
import numpy as np
from cvxopt import matrix as cvx_matrix
from cvxopt import solvers as cvx_solvers

cvx_solvers.options["show_progress"] = False


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    centred = x - np.mean(x, axis=0, keepdims=True)
    std = np.sqrt(np.mean(centred * centred, axis=0) + eps)
    return centred / std * gamma + beta


def batchnorm_backward(dout, x, gamma, eps=1e-5):
    N = len(x)
    centred = x - np.mean(x, axis=0)
    istd = (np.mean(centred ** 2, axis=0) + eps) ** -0.5
    xn = centred * istd
    dxn = dout * gamma
    dx = istd * (dxn - np.mean(dxn, axis=0) - xn * np.mean(dxn * xn, axis=0))
    return dx, np.einsum("nd,nd->d", dout, xn), np.sum(dout, axis=0)


def reparameterize(mean, log_stddev, noise):
    return np.exp(log_stddev) * noise + mean


def reparameterize_backward(dz, log_stddev, noise):
    return dz + 0.0, np.exp(log_stddev) * noise * dz


def kl_to_standard_normal(mean, log_stddev):
    var = np.exp(2 * log_stddev)
    return np.sum(var + mean * mean - 1.0 - np.log(var), axis=1) / 2


def svm_dual_alphas(X, y):
    m = X.shape[0]
    K = np.einsum("i,j,id,jd->ij", y, y, X, X)
    P, q = cvx_matrix(K), cvx_matrix(np.full(m, -1.0))
    G, h = cvx_matrix(np.diag(np.full(m, -1.0))), cvx_matrix(np.zeros((m, 1)))
    A_eq, b_eq = cvx_matrix(y[np.newaxis, :].astype(float)), cvx_matrix(np.zeros((1, 1)))
    return np.ravel(cvx_solvers.qp(P, q, G, h, A_eq, b_eq)["x"])


def optimal_margin_svm(X, y):
    a = svm_dual_alphas(X, y)
    w = X.T @ (a * y)
    on_margin = a > a.max() * 1e-5
    return w, float(np.median(y[on_margin] - X[on_margin].dot(w)))


def urn_emissions(red, blue):
    both = np.column_stack((red, blue)).astype(float)
    return both / both.sum(1)[:, None]


def forward(obs, pi, A, B):
    a = [pi * B[:, obs[0]]]
    for o in obs[1:]:
        a.append(a[-1] @ A * B[:, o])
    a = np.vstack(a)
    return a[-1].sum(), a


def backward(obs, A, B):
    b = [np.ones(A.shape[0])]
    for o in obs[:0:-1]:
        b.append(A @ (B[:, o] * b[-1]))
    return np.vstack(b[::-1])


def baum_welch(obs, pi, A, B, n_iter=100):
    obs = np.asarray(obs)
    p, T_, E = pi.copy(), A.copy(), B.copy()
    onehot = np.eye(B.shape[1])[obs]
    for it in range(n_iter):
        # log-space forward-backward
        logE, logT = np.log(E[:, obs].T + 1e-300), np.log(T_ + 1e-300)
        la = np.empty((len(obs), len(p)))
        lb = np.zeros_like(la)
        la[0] = np.log(p + 1e-300) + logE[0]
        for t in range(1, len(obs)):
            m = la[t - 1][:, None] + logT
            top = m.max(axis=0)
            la[t] = top + np.log(np.exp(m - top).sum(axis=0)) + logE[t]
        for t in range(len(obs) - 2, -1, -1):
            m = logT + (logE[t + 1] + lb[t + 1])[None, :]
            top = m.max(axis=1)
            lb[t] = top + np.log(np.exp(m - top[:, None]).sum(axis=1))
        lg = la + lb
        lg -= lg.max(axis=1, keepdims=True)
        g = np.exp(lg)
        g /= g.sum(axis=1, keepdims=True)
        lx = la[:-1, :, None] + logT[None] + (logE[1:] + lb[1:])[:, None, :]
        lx -= lx.max(axis=(1, 2), keepdims=True)
        xi = np.exp(lx)
        xi /= xi.sum(axis=(1, 2), keepdims=True)
        p = g[0]
        T_ = xi.sum(0) / xi.sum(0).sum(1, keepdims=True)
        E = g.T @ onehot
        E /= E.sum(1, keepdims=True)
    return p, T_, E


def zero_insert(x, factor=2):
    u = np.zeros((factor * (x.shape[0] - 1) + 1, factor * (x.shape[1] - 1) + 1, *x.shape[2:]), dtype=float)
    u[::factor, ::factor, ...] = x
    return u


def conv2d_valid(p, k, stride=1):
    from numpy.lib.stride_tricks import sliding_window_view
    win = sliding_window_view(p, k.shape)[::stride, ::stride]
    axes = tuple(range(2, win.ndim))
    flat = win.reshape(win.shape[0], win.shape[1], -1)
    return flat @ k.reshape(-1)


def subpixel_conv(x, k, padding=2):
    up = zero_insert(x)
    up = np.pad(up, ((padding,) * 2, (padding,) * 2) + ((0, 0),) * (up.ndim - 2))
    return np.clip(conv2d_valid(up, k), 0, None)
