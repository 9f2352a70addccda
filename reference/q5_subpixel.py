"""Q5 — sub-pixel (fractionally strided, stride 1/2) convolution.

Cross-correlation (the kernel is not flipped), channels last: an image is (H, W) or
(H, W, C), a kernel (kh, kw) or (kh, kw, C); the sum runs over the channels, so every
output is 2-D. Padding applies to the two spatial axes only.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from grader.assignment.registry import mistake


def _f(a):
    return np.asarray(a, dtype=float)


def zero_insert(x, factor=2):
    """``u`` of shape ((H-1)*factor+1, (W-1)*factor+1[, C]) with u[::factor, ::factor] = x."""
    x = _f(x)
    factor = int(factor)
    h, w = x.shape[:2]
    u = np.zeros(((h - 1) * factor + 1, (w - 1) * factor + 1) + x.shape[2:])
    u[::factor, ::factor] = x
    return u


def conv2d_valid(p, k, stride=1):
    """``out[i, j] = sum(p[i*s : i*s+kh, j*s : j*s+kw] * k)`` over the valid positions."""
    p, k = _f(p), _f(k)
    stride = int(stride)
    if p.ndim != k.ndim or p.ndim not in (2, 3) or p.shape[2:] != k.shape[2:]:
        raise ValueError(f"image {p.shape} and kernel {k.shape} must both be 2-D or both "
                         f"channels-last 3-D with the same number of channels")
    kh, kw = k.shape[:2]
    windows = sliding_window_view(p, (kh, kw), axis=(0, 1))[::stride, ::stride]
    if p.ndim == 2:
        return np.einsum("ijab,ab->ij", windows, k)
    return np.einsum("ijcab,abc->ij", windows, k)


def _pad(u, padding):
    padding = int(padding)
    return np.pad(u, [(padding, padding), (padding, padding)] + [(0, 0)] * (u.ndim - 2))


def subpixel_conv(x, k, padding=2):
    """``relu(conv2d_valid(pad(zero_insert(x, 2), padding), k))``."""
    return np.maximum(conv2d_valid(_pad(zero_insert(x, 2), padding), k), 0.0)


# ----------------------------------------------------------------- known mistakes

def _flip(k):
    return _f(k)[::-1, ::-1]


_FLIP_HINT = ("Use cross-correlation as in the handout: multiply the window by k as it is; "
              "flipping the kernel (true convolution, e.g. scipy.signal.convolve2d) gives a "
              "different result for non-symmetric kernels.")


@mistake("q5.conv_flipped_kernel", of="conv2d_valid", title="kernel flipped (true convolution)",
         hint=_FLIP_HINT)
def _conv_flipped_kernel(p, k, stride=1):
    return conv2d_valid(p, _flip(k), stride)


@mistake("q5.conv_ignores_stride", of="conv2d_valid", title="stride ignored",
         hint="With stride s the window of output (i, j) starts at (i*s, j*s), so the output "
              "has (H - kh)//s + 1 rows; you slid the window one pixel at a time.")
def _conv_ignores_stride(p, k, stride=1):
    return conv2d_valid(p, k, 1)


@mistake("q5.zero_insert_wrong_size", of="zero_insert", title="zero insertion of the wrong size",
         hint="Zeros go only between pixels: the result has (H-1)*factor+1 rows, not "
              "H*factor (no trailing zeros after the last row/column).")
def _zero_insert_wrong_size(x, factor=2):
    x = _f(x)
    factor = int(factor)
    h, w = x.shape[:2]
    u = np.zeros((h * factor, w * factor) + x.shape[2:])
    u[::factor, ::factor] = x
    return u


@mistake("q5.subpixel_flipped_kernel", of="subpixel_conv", title="kernel flipped (true convolution)",
         hint=_FLIP_HINT)
def _subpixel_flipped_kernel(x, k, padding=2):
    return subpixel_conv(x, _flip(k), padding)


@mistake("q5.subpixel_missing_relu", of="subpixel_conv", title="missing ReLU",
         hint="The sub-pixel layer ends with a ReLU: negative outputs become 0 (np.maximum(out, 0)).")
def _subpixel_missing_relu(x, k, padding=2):
    return conv2d_valid(_pad(zero_insert(x, 2), padding), k)


@mistake("q5.subpixel_wrong_zero_insert", of="subpixel_conv", title="zero insertion of the wrong size",
         hint="Insert factor-1 = 1 zero *between* neighbouring pixels, giving (H-1)*2+1 rows; "
              "an H*2-row image adds a spurious zero row and column at the end.")
def _subpixel_wrong_zero_insert(x, k, padding=2):
    return np.maximum(conv2d_valid(_pad(_zero_insert_wrong_size(x, 2), padding), k), 0.0)


@mistake("q5.subpixel_wrong_padding", of="subpixel_conv", title="wrong padding",
         hint="Pad the zero-inserted image with `padding` zeros on each side of both spatial "
              "axes (2 by default, so a 5x5 image gives an 11x11 output); you padded by 1.")
def _subpixel_wrong_padding(x, k, padding=2):
    return np.maximum(conv2d_valid(_pad(zero_insert(x, 2), 1), k), 0.0)


@mistake("q5.subpixel_padding_before_insert", of="subpixel_conv",
         title="padded before inserting zeros",
         hint="Insert the zeros first and pad the result: pad(zero_insert(x, 2), padding); "
              "padding first spreads the border out.")
def _subpixel_padding_before_insert(x, k, padding=2):
    return np.maximum(conv2d_valid(zero_insert(_pad(_f(x), padding), 2), k), 0.0)
