# Homework: deep-learning fundamentals -- the handout's template, handed in untouched.
import numpy as np

ANSWER_Q1 = ""  # TODO: Q1 written answer

ANSWER_Q2 = ""  # TODO: Q2 written answer


def batchnorm_forward(x, gamma, beta, eps=1e-5):
    # TODO: out = gamma * (x - mean) / sqrt(var + eps) + beta
    pass


def batchnorm_backward(dout, x, gamma, eps=1e-5):
    # TODO: return dx, dgamma, dbeta
    pass


def reparameterize(mean, log_stddev, noise):
    raise NotImplementedError


def reparameterize_backward(dz, log_stddev, noise):
    raise NotImplementedError


def kl_to_standard_normal(mean, log_stddev):
    raise NotImplementedError


def svm_dual_alphas(X, y):
    raise NotImplementedError


def optimal_margin_svm(X, y):
    raise NotImplementedError


def urn_emissions(red, blue):
    pass


def forward(obs, pi, A, B):
    raise NotImplementedError


def backward(obs, A, B):
    raise NotImplementedError


def baum_welch(obs, pi, A, B, n_iter=100):
    raise NotImplementedError


def zero_insert(x, factor=2):
    pass


def conv2d_valid(p, k, stride=1):
    raise NotImplementedError


def subpixel_conv(x, k, padding=2):
    raise NotImplementedError
