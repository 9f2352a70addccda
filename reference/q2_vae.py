"""Q2 — VAE reparameterization trick: sample, its backward pass, KL to N(0, I).

``log_stddev`` is the log of the standard deviation (sigma = exp(log_stddev)),
not the log-variance.
"""

from __future__ import annotations

import numpy as np

from grader.assignment.registry import mistake


def _f(a):
    return np.asarray(a, dtype=float)


def reparameterize(mean, log_stddev, noise):
    """``z = mean + exp(log_stddev) * noise``."""
    return _f(mean) + np.exp(_f(log_stddev)) * _f(noise)


def reparameterize_backward(dz, log_stddev, noise):
    """``(dmean, dlog_stddev)`` given ``dz = dL/dz``: dz and dz * exp(log_stddev) * noise."""
    dz = _f(dz)
    return dz.copy(), dz * np.exp(_f(log_stddev)) * _f(noise)


def kl_to_standard_normal(mean, log_stddev):
    """KL(N(mean, sigma^2) || N(0, I)) per sample (summed over the last axis), shape (N,)."""
    mean, log_stddev = _f(mean), _f(log_stddev)
    terms = mean ** 2 + np.exp(2.0 * log_stddev) - 1.0 - 2.0 * log_stddev
    return 0.5 * terms.sum(axis=-1)


# ----------------------------------------------------------------- known mistakes

_LOGVAR_HINT = ("log_stddev is the log of the standard deviation, so sigma = exp(log_stddev); "
                "you used it as the log-variance (sigma = exp(log_stddev / 2)).")


@mistake("q2.logvar_reparameterize", of="reparameterize", title="log_stddev used as log-variance",
         hint=_LOGVAR_HINT)
def _logvar_reparameterize(mean, log_stddev, noise):
    return _f(mean) + np.exp(0.5 * _f(log_stddev)) * _f(noise)


@mistake("q2.logvar_backward", of="reparameterize_backward",
         title="log_stddev used as log-variance", hint=_LOGVAR_HINT)
def _logvar_backward(dz, log_stddev, noise):
    dz = _f(dz)
    return dz.copy(), dz * 0.5 * np.exp(0.5 * _f(log_stddev)) * _f(noise)


@mistake("q2.backward_missing_noise", of="reparameterize_backward",
         title="dlog_stddev without the noise factor",
         hint="z depends on log_stddev through exp(log_stddev) * noise, so the chain rule gives "
              "dz * exp(log_stddev) * noise; do not drop the noise.")
def _backward_missing_noise(dz, log_stddev, noise):
    dz = _f(dz)
    return dz.copy(), dz * np.exp(_f(log_stddev))


@mistake("q2.logvar_kl", of="kl_to_standard_normal", title="log_stddev used as log-variance",
         hint="With sigma = exp(log_stddev), sigma^2 = exp(2*log_stddev) and log sigma^2 = "
              "2*log_stddev; your KL treats log_stddev as the log-variance.")
def _logvar_kl(mean, log_stddev):
    mean, log_stddev = _f(mean), _f(log_stddev)
    return 0.5 * (mean ** 2 + np.exp(log_stddev) - 1.0 - log_stddev).sum(axis=-1)


@mistake("q2.kl_wrong_sign", of="kl_to_standard_normal", title="KL with the wrong sign",
         hint="A KL divergence is never negative: KL = 1/2 * sum(mean^2 + sigma^2 - 1 - log sigma^2). "
              "You returned its negative (the ELBO's regularisation term, not the KL).")
def _kl_wrong_sign(mean, log_stddev):
    return -kl_to_standard_normal(mean, log_stddev)


@mistake("q2.kl_missing_mean", of="kl_to_standard_normal", title="KL missing the mean^2 term",
         hint="The KL to N(0, I) penalises the mean as well: include mean^2 in "
              "1/2 * sum(mean^2 + sigma^2 - 1 - log sigma^2).")
def _kl_missing_mean(mean, log_stddev):
    log_stddev = _f(log_stddev)
    return 0.5 * (np.exp(2.0 * log_stddev) - 1.0 - 2.0 * log_stddev).sum(axis=-1)


@mistake("q2.kl_missing_constant", of="kl_to_standard_normal", title="KL missing the -1 term",
         hint="Each latent dimension contributes 1/2 * (mean^2 + sigma^2 - 1 - log sigma^2); "
              "the -1 makes the KL zero when mean = 0 and sigma = 1.")
def _kl_missing_constant(mean, log_stddev):
    mean, log_stddev = _f(mean), _f(log_stddev)
    return 0.5 * (mean ** 2 + np.exp(2.0 * log_stddev) - 2.0 * log_stddev).sum(axis=-1)


@mistake("q2.kl_not_summed", of="kl_to_standard_normal", title="KL averaged over latent dims",
         hint="The KL of a diagonal Gaussian is the sum over the L latent dimensions, "
              "not their mean.")
def _kl_not_summed(mean, log_stddev):
    return kl_to_standard_normal(mean, log_stddev) / _f(mean).shape[-1]
