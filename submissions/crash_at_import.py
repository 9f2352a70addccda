# Homework: deep-learning fundamentals -- Q1 and Q2 done, then the module loads a data file that
# only exists on the student's laptop: the import stops there, so Q3-Q5 are never defined.
import numpy as np

ANSWER_Q1 = ("gamma and beta are trainable parameters, not statistics of the batch: they are "
             "learned by backpropagation (dgamma = sum(dout * x_hat), dbeta = sum(dout)).")


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    x_hat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + eps)
    return gamma * x_hat + beta


def batchnorm_backward(dout, x, gamma, eps=1e-5):
    n = x.shape[0]
    inv_std = 1.0 / np.sqrt(x.var(axis=0) + eps)
    x_hat = (x - x.mean(axis=0)) * inv_std
    dx_hat = dout * gamma
    dx = inv_std / n * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def reparameterize(mean, log_stddev, noise):
    return mean + np.exp(log_stddev) * noise


def reparameterize_backward(dz, log_stddev, noise):
    return dz.copy(), dz * np.exp(log_stddev) * noise


def kl_to_standard_normal(mean, log_stddev):
    return 0.5 * np.sum(mean ** 2 + np.exp(2 * log_stddev) - 1 - 2 * log_stddev, axis=-1)


# Q3: try the SVM on my own data first
data = np.load("C:/Users/student/Desktop/hw_data.npz")
X_train, y_train = data["X"], data["y"]

ANSWER_Q2 = "z = mu + sigma * eps makes the sample differentiable."


def svm_dual_alphas(X, y):
    raise NotImplementedError


def optimal_margin_svm(X, y):
    raise NotImplementedError


def urn_emissions(red, blue):
    counts = np.stack([red, blue], axis=1).astype(float)
    return counts / counts.sum(axis=1, keepdims=True)
