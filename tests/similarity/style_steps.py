# Q1-Q3 and Q5, following the lecture's computation graph step by step (Q4 not done).
import numpy as np
import cvxopt


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    n = x.shape[0]
    step1 = np.sum(x, axis=0) / n
    step2 = x - step1
    step3 = step2 ** 2
    step4 = np.sum(step3, axis=0) / n
    step5 = np.sqrt(step4 + eps)
    step6 = 1.0 / step5
    step7 = step2 * step6
    return step7 * gamma + beta


def batchnorm_backward(dout, x, gamma, eps=1e-5):
    n = x.shape[0]
    step1 = np.sum(x, axis=0) / n
    step2 = x - step1
    step4 = np.sum(step2 ** 2, axis=0) / n
    step5 = np.sqrt(step4 + eps)
    step6 = 1.0 / step5
    step7 = step2 * step6
    d_beta = np.sum(dout, axis=0)
    d_gamma = np.sum(dout * step7, axis=0)
    d_step7 = dout * gamma
    d_step6 = np.sum(d_step7 * step2, axis=0)
    d_step2 = d_step7 * step6
    d_step5 = -d_step6 / step5 ** 2
    d_step4 = 0.5 * d_step5 / step5
    d_step3 = d_step4 * np.ones_like(x) / n
    d_step2 = d_step2 + 2 * step2 * d_step3
    d_step1 = -np.sum(d_step2, axis=0)
    d_x = d_step2 + d_step1 / n
    return d_x, d_gamma, d_beta


def reparameterize(mean, log_stddev, noise):
    stddev = np.exp(log_stddev)
    z = mean + stddev * noise
    return z


def reparameterize_backward(dz, log_stddev, noise):
    d_mean = 1.0 * dz
    d_stddev = dz * noise
    d_log_stddev = d_stddev * np.exp(log_stddev)
    return d_mean, d_log_stddev


def kl_to_standard_normal(mean, log_stddev):
    per_dim = -log_stddev + (np.exp(log_stddev) ** 2 + mean ** 2) / 2.0 - 0.5
    return per_dim.sum(axis=1)


def svm_dual_alphas(X, y):
    n = len(y)
    yX = y.reshape(-1, 1) * X
    H = np.dot(yX, yX.T)
    cvxopt.solvers.options['show_progress'] = False
    result = cvxopt.solvers.qp(cvxopt.matrix(H), cvxopt.matrix(-1.0 * np.ones((n, 1))),
                               cvxopt.matrix(-1.0 * np.eye(n)), cvxopt.matrix(np.zeros((n, 1))),
                               cvxopt.matrix(1.0 * y.reshape(1, -1)), cvxopt.matrix(np.zeros((1, 1))))
    return np.array(result['x']).reshape(-1)


def optimal_margin_svm(X, y):
    alphas = svm_dual_alphas(X, y)
    w = np.sum((alphas * y).reshape(-1, 1) * X, axis=0)
    idx = np.where(alphas > 1e-6)[0]
    b = np.mean(y[idx] - np.dot(X[idx], w))
    return w, b


def zero_insert(x, factor=2):
    out_shape = list(x.shape)
    out_shape[0] = (x.shape[0] - 1) * factor + 1
    out_shape[1] = (x.shape[1] - 1) * factor + 1
    out = np.zeros(out_shape)
    out[0::factor, 0::factor] = x
    return out


def conv2d_valid(p, k, stride=1):
    out_rows = (p.shape[0] - k.shape[0]) // stride + 1
    out_cols = (p.shape[1] - k.shape[1]) // stride + 1
    out = np.zeros((out_rows, out_cols))
    for r in range(out_rows):
        for c in range(out_cols):
            r0, c0 = r * stride, c * stride
            out[r, c] = np.sum(p[r0:r0 + k.shape[0], c0:c0 + k.shape[1]] * k)
    return out


def subpixel_conv(x, k, padding=2):
    inserted = zero_insert(x, 2)
    pad_width = [(padding, padding), (padding, padding)]
    if inserted.ndim == 3:
        pad_width.append((0, 0))
    padded = np.pad(inserted, pad_width, mode='constant')
    return np.maximum(0, conv2d_valid(padded, k))
