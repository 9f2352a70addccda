# Homework submission, written with explicit loops wherever the maths has a sum.
import numpy
import cvxopt


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    rows, cols = x.shape
    result = numpy.empty_like(x, dtype=float)
    for j in range(cols):
        column = x[:, j]
        center = column.sum() / rows
        spread = ((column - center) ** 2).sum() / rows
        result[:, j] = gamma[j] * (column - center) / numpy.sqrt(spread + eps) + beta[j]
    return result


def batchnorm_backward(dout, x, gamma, eps=1e-5):
    rows, cols = x.shape
    grad_x = numpy.zeros((rows, cols))
    grad_gamma = numpy.zeros(cols)
    grad_beta = numpy.zeros(cols)
    for j in range(cols):
        column = x[:, j]
        center = column.sum() / rows
        deviation = column - center
        variance = (deviation ** 2).sum() / rows
        inverse = 1.0 / numpy.sqrt(variance + eps)
        normed = deviation * inverse
        upstream = dout[:, j]
        grad_beta[j] = upstream.sum()
        grad_gamma[j] = (upstream * normed).sum()
        g = upstream * gamma[j]
        grad_x[:, j] = (inverse / rows) * (rows * g - g.sum() - normed * (g * normed).sum())
    return grad_x, grad_gamma, grad_beta


def reparameterize(mean, log_stddev, noise):
    sigma = numpy.exp(log_stddev)
    return mean + sigma * noise


def reparameterize_backward(dz, log_stddev, noise):
    sigma = numpy.exp(log_stddev)
    return numpy.array(dz, dtype=float), dz * noise * sigma


def kl_to_standard_normal(mean, log_stddev):
    total = numpy.zeros(mean.shape[0])
    for i in range(mean.shape[0]):
        for l in range(mean.shape[1]):
            s = log_stddev[i, l]
            total[i] += 0.5 * (mean[i, l] ** 2 + numpy.exp(2.0 * s) - 1.0) - s
    return total


def svm_dual_alphas(X, y):
    count = len(y)
    gram = numpy.zeros((count, count))
    for i in range(count):
        for j in range(count):
            gram[i, j] = y[i] * y[j] * numpy.dot(X[i], X[j])
    cvxopt.solvers.options["show_progress"] = False
    solution = cvxopt.solvers.qp(
        cvxopt.matrix(gram), cvxopt.matrix(-numpy.ones(count)),
        cvxopt.matrix(-numpy.identity(count)), cvxopt.matrix(numpy.zeros(count)),
        cvxopt.matrix(y.astype(float), (1, count)), cvxopt.matrix(0.0))
    return numpy.array(solution["x"]).flatten()


def optimal_margin_svm(X, y):
    multipliers = svm_dual_alphas(X, y)
    weights = numpy.zeros(X.shape[1])
    for i in range(len(y)):
        weights += multipliers[i] * y[i] * X[i]
    support = numpy.argmax(multipliers)
    offset = y[support] - numpy.dot(weights, X[support])
    return weights, offset


def urn_emissions(red, blue):
    emissions = numpy.zeros((len(red), 2))
    for urn in range(len(red)):
        balls = red[urn] + blue[urn]
        emissions[urn, 0] = red[urn] / balls
        emissions[urn, 1] = blue[urn] / balls
    return emissions


def forward(obs, pi, A, B):
    steps, states = len(obs), len(pi)
    fwd = numpy.zeros((steps, states))
    for s in range(states):
        fwd[0, s] = pi[s] * B[s, obs[0]]
    for t in range(1, steps):
        for s in range(states):
            fwd[t, s] = sum(fwd[t - 1, r] * A[r, s] for r in range(states)) * B[s, obs[t]]
    return fwd[steps - 1].sum(), fwd


def backward(obs, A, B):
    steps, states = len(obs), A.shape[0]
    bwd = numpy.ones((steps, states))
    for t in range(steps - 2, -1, -1):
        for s in range(states):
            bwd[t, s] = sum(A[s, r] * B[r, obs[t + 1]] * bwd[t + 1, r] for r in range(states))
    return bwd


def _scaled_passes(obs, pi, A, B):
    steps, states = len(obs), len(pi)
    fwd = numpy.zeros((steps, states))
    scale = numpy.zeros(steps)
    fwd[0] = pi * B[:, obs[0]]
    scale[0] = fwd[0].sum()
    fwd[0] = fwd[0] / scale[0]
    for t in range(1, steps):
        fwd[t] = fwd[t - 1].dot(A) * B[:, obs[t]]
        scale[t] = fwd[t].sum()
        fwd[t] = fwd[t] / scale[t]
    bwd = numpy.ones((steps, states))
    for t in range(steps - 2, -1, -1):
        bwd[t] = A.dot(B[:, obs[t + 1]] * bwd[t + 1]) / scale[t + 1]
    return fwd, bwd, scale


def baum_welch(obs, pi, A, B, n_iter=100):
    obs = numpy.array(obs)
    start, trans, emit = numpy.array(pi, dtype=float), numpy.array(A, dtype=float), numpy.array(B, dtype=float)
    steps, states = len(obs), len(start)
    for _ in range(n_iter):
        fwd, bwd, scale = _scaled_passes(obs, start, trans, emit)
        occupancy = fwd * bwd
        occupancy = occupancy / occupancy.sum(axis=1, keepdims=True)
        pair_counts = numpy.zeros((states, states))
        for t in range(steps - 1):
            block = numpy.outer(fwd[t], emit[:, obs[t + 1]] * bwd[t + 1]) * trans / scale[t + 1]
            pair_counts += block
        start = occupancy[0]
        trans = pair_counts / pair_counts.sum(axis=1, keepdims=True)
        counts = numpy.zeros_like(emit)
        for t in range(steps):
            counts[:, obs[t]] += occupancy[t]
        emit = counts / counts.sum(axis=1, keepdims=True)
    return start, trans, emit


def zero_insert(x, factor=2):
    height, width = x.shape[0], x.shape[1]
    shape = ((height - 1) * factor + 1, (width - 1) * factor + 1) + tuple(x.shape[2:])
    upsampled = numpy.zeros(shape)
    for i in range(height):
        for j in range(width):
            upsampled[i * factor, j * factor] = x[i, j]
    return upsampled


def conv2d_valid(p, k, stride=1):
    kh, kw = k.shape[0], k.shape[1]
    out_h = (p.shape[0] - kh) // stride + 1
    out_w = (p.shape[1] - kw) // stride + 1
    result = numpy.zeros((out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = p[i * stride:i * stride + kh, j * stride:j * stride + kw]
            result[i, j] = (window * k).sum()
    return result


def subpixel_conv(x, k, padding=2):
    spread = zero_insert(x, 2)
    widths = [(padding, padding), (padding, padding)] + [(0, 0)] * (spread.ndim - 2)
    response = conv2d_valid(numpy.pad(spread, widths), k)
    return numpy.where(response > 0, response, 0.0)
