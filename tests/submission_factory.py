"""The example submissions that are derived from ``submissions/correct_module.py``.

Each known mistake of the reference package (``@mistake`` in ``reference/``) has an example
submission ``submissions/mistake_<id with dots as underscores>.py``: the correct module with
exactly that one bug, written the way a student would write it. The edits live here, as exact
text replacements, so the examples stay in sync with the correct module; the notebook, the
non-ASCII copy and the hanging submission are derived the same way.

    python tests/submission_factory.py        # rewrite the derived files in submissions/

``tests/test_examples.py`` checks that the files on disk are what this module produces.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "submissions"
CORRECT = SUBMISSIONS / "correct_module.py"
CORRECT_HEADER = "# Homework: deep-learning fundamentals -- a complete, correct submission.\n"

NON_ASCII_COPY = "學生_103590450.py"
NOTEBOOK = "colab_notebook.ipynb"
HANGS = "hangs_in_one_function.py"
SLOW = "slow_but_correct.py"


@dataclass(frozen=True)
class MistakeExample:
    id: str                         # the reference registry's id, e.g. "q1.unbiased_variance_forward"
    function: str                   # the student function that carries the bug
    edits: tuple[tuple[str, str], ...]
    # Other functions that call the buggy one and therefore fail too, with the diagnosis they get.
    knock_on: dict[str, str] = field(default_factory=dict)

    @property
    def question(self) -> str:
        return self.id.split(".", 1)[0]

    @property
    def filename(self) -> str:
        return "mistake_" + self.id.replace(".", "_") + ".py"


_BN_FORWARD_STATS = ("    mu = x.mean(axis=0)\n    var = x.var(axis=0)\n    x_hat = (x - mu) / np.sqrt(var + eps)\n")
_BN_DX = "    dx = inv_std / n * (n * dx_hat - dx_hat.sum(axis=0) - x_hat * (dx_hat * x_hat).sum(axis=0))\n"
_KL = "    return 0.5 * np.sum(mean ** 2 + np.exp(2 * log_stddev) - 1 - 2 * log_stddev, axis=-1)\n"
_QP = '    sol = solvers.qp(P, q, G, h, A, b, options={"show_progress": False})\n'
_SV_B = "    sv = alpha > 1e-4 * alpha.max()\n    b = np.mean(y[sv] - X[sv] @ w)\n"
_BW_B_LOOP = ("        for k in range(B.shape[1]):\n"
              "            new_B[:, k] = gamma[obs == k].sum(axis=0)\n"
              "        B = new_B / new_B.sum(axis=1, keepdims=True)\n")
_SUBPIXEL = ("    u = zero_insert(x, 2)\n"
             "    pad = [(padding, padding), (padding, padding)] + [(0, 0)] * (u.ndim - 2)\n"
             "    return np.maximum(conv2d_valid(np.pad(u, pad), k), 0)\n")

MISTAKES: tuple[MistakeExample, ...] = (
    # ---- Q1
    MistakeExample("q1.unbiased_variance_forward", "batchnorm_forward", (
        (_BN_FORWARD_STATS, _BN_FORWARD_STATS.replace("x.var(axis=0)", "x.var(axis=0, ddof=1)")),)),
    MistakeExample("q1.unbiased_variance_backward", "batchnorm_backward", (
        ("    var = x.var(axis=0)\n    inv_std", "    var = x.var(axis=0, ddof=1)\n    inv_std"),
        (_BN_DX, "    dx = inv_std * (dx_hat - dx_hat.mean(axis=0)"
                 " - x_hat * (dx_hat * x_hat).sum(axis=0) / (n - 1))\n"))),
    MistakeExample("q1.dgamma_dbeta_swapped", "batchnorm_backward", (
        ("    return dx, dgamma, dbeta\n", "    return dx, dbeta, dgamma\n"),)),
    MistakeExample("q1.dx_ignores_batch_stats", "batchnorm_backward", (
        (_BN_DX, "    dx = dx_hat * inv_std\n"),)),
    # ---- Q2
    MistakeExample("q2.logvar_reparameterize", "reparameterize", (
        ("    return mean + np.exp(log_stddev) * noise\n", "    return mean + np.exp(0.5 * log_stddev) * noise\n"),)),
    MistakeExample("q2.logvar_backward", "reparameterize_backward", (
        ("    dlog_stddev = dz * np.exp(log_stddev) * noise\n",
         "    dlog_stddev = dz * 0.5 * np.exp(0.5 * log_stddev) * noise\n"),)),
    MistakeExample("q2.backward_missing_noise", "reparameterize_backward", (
        ("    dlog_stddev = dz * np.exp(log_stddev) * noise\n", "    dlog_stddev = dz * np.exp(log_stddev)\n"),)),
    MistakeExample("q2.logvar_kl", "kl_to_standard_normal", (
        (_KL, "    return 0.5 * np.sum(mean ** 2 + np.exp(log_stddev) - 1 - log_stddev, axis=-1)\n"),)),
    MistakeExample("q2.kl_wrong_sign", "kl_to_standard_normal", (
        (_KL, _KL.replace("return 0.5 *", "return -0.5 *")),)),
    MistakeExample("q2.kl_missing_mean", "kl_to_standard_normal", (
        (_KL, _KL.replace("mean ** 2 + ", "")),)),
    MistakeExample("q2.kl_missing_constant", "kl_to_standard_normal", (
        (_KL, _KL.replace(" - 1 - ", " - ")),)),
    MistakeExample("q2.kl_not_summed", "kl_to_standard_normal", (
        (_KL, _KL.replace("np.sum(", "np.mean(")),)),
    # ---- Q3
    MistakeExample("q3.alphas_no_equality", "svm_dual_alphas", (
        (_QP, '    sol = solvers.qp(P, q, G, h, options={"show_progress": False})\n'),),
        knock_on={"optimal_margin_svm": "q3.svm_no_equality"}),
    MistakeExample("q3.svm_no_equality", "optimal_margin_svm", (
        ("    alpha = svm_dual_alphas(X, y)\n",
         "    n = X.shape[0]\n"
         "    Xy = X * y[:, None]\n"
         "    sol = solvers.qp(matrix(Xy @ Xy.T), matrix(-np.ones(n)), matrix(-np.eye(n)), matrix(np.zeros(n)),\n"
         '                     options={"show_progress": False})\n'
         '    alpha = np.array(sol["x"]).ravel()\n'),)),
    MistakeExample("q3.w_without_labels", "optimal_margin_svm", (
        ("    w = (alpha * y) @ X\n", "    w = alpha @ X\n"),)),
    MistakeExample("q3.b_from_non_support_vector", "optimal_margin_svm", (
        (_SV_B, "    i = np.argmin(alpha)\n    b = y[i] - X[i] @ w\n"),)),
    MistakeExample("q3.b_from_all_points", "optimal_margin_svm", (
        (_SV_B, "    b = np.mean(y - X @ w)\n"),)),
    # ---- Q4
    MistakeExample("q4.urn_columns_swapped", "urn_emissions", (
        ("np.stack([red, blue], axis=1)", "np.stack([blue, red], axis=1)"),)),
    MistakeExample("q4.forward_no_initial_emission", "forward", (
        ("    alpha[0] = pi * B[:, obs[0]]\n", "    alpha[0] = pi\n"),)),
    MistakeExample("q4.forward_transposed_A", "forward", (
        ("        alpha[t] = (alpha[t - 1] @ A) * B[:, obs[t]]\n", "        alpha[t] = (A @ alpha[t - 1]) * B[:, obs[t]]\n"),)),
    MistakeExample("q4.backward_current_emission", "backward", (
        ("        beta[t] = A @ (B[:, obs[t + 1]] * beta[t + 1])\n", "        beta[t] = A @ (B[:, obs[t]] * beta[t + 1])\n"),)),
    MistakeExample("q4.unscaled", "baum_welch", (
        ("        # E-step with Rabiner's scaling\n", "        # E-step\n"),
        ("        c = np.zeros(T)\n", ""),
        ("        c[0] = alpha[0].sum()\n        alpha[0] /= c[0]\n", ""),
        ("            c[t] = alpha[t].sum()\n            alpha[t] /= c[t]\n", ""),
        ("            beta[t] = A @ (e[t + 1] * beta[t + 1]) / c[t + 1]\n",
         "            beta[t] = A @ (e[t + 1] * beta[t + 1])\n"),
        ("        gamma = alpha * beta\n        xi = A * (alpha[:-1].T @ (e[1:] * beta[1:] / c[1:, None]))\n",
         "        prob = alpha[-1].sum()\n"
         "        gamma = alpha * beta / prob\n"
         "        xi = A * (alpha[:-1].T @ (e[1:] * beta[1:])) / prob\n"))),
    MistakeExample("q4.pi_not_reestimated", "baum_welch", (
        ("        pi = gamma[0] / gamma[0].sum()\n", ""),)),
    MistakeExample("q4.emission_normalised_in_loop", "baum_welch", (
        (_BW_B_LOOP, _BW_B_LOOP.replace("        B = new_B / new_B", "            new_B = new_B / new_B")
         + "        B = new_B\n"),)),
    # ---- Q5
    MistakeExample("q5.conv_flipped_kernel", "conv2d_valid", (
        ("def conv2d_valid(p, k, stride=1):\n", "def conv2d_valid(p, k, stride=1):\n    k = k[::-1, ::-1]\n"),),
        knock_on={"subpixel_conv": "q5.subpixel_flipped_kernel"}),
    MistakeExample("q5.conv_ignores_stride", "conv2d_valid", (
        ("    oh = (p.shape[0] - kh) // stride + 1\n", "    stride = 1\n    oh = (p.shape[0] - kh) // stride + 1\n"),)),
    MistakeExample("q5.zero_insert_wrong_size", "zero_insert", (
        ("    u = np.zeros(((H - 1) * factor + 1, (W - 1) * factor + 1) + x.shape[2:])\n",
         "    u = np.zeros((H * factor, W * factor) + x.shape[2:])\n"),),
        knock_on={"subpixel_conv": "q5.subpixel_wrong_zero_insert"}),
    MistakeExample("q5.subpixel_flipped_kernel", "subpixel_conv", (
        (_SUBPIXEL, _SUBPIXEL.replace("np.pad(u, pad), k)", "np.pad(u, pad), k[::-1, ::-1])")),)),
    MistakeExample("q5.subpixel_missing_relu", "subpixel_conv", (
        (_SUBPIXEL, _SUBPIXEL.replace("np.maximum(conv2d_valid(np.pad(u, pad), k), 0)",
                                      "conv2d_valid(np.pad(u, pad), k)")),)),
    MistakeExample("q5.subpixel_wrong_zero_insert", "subpixel_conv", (
        (_SUBPIXEL, _SUBPIXEL.replace("    u = zero_insert(x, 2)\n",
                                      "    u = np.zeros((2 * x.shape[0], 2 * x.shape[1]) + x.shape[2:])\n"
                                      "    u[::2, ::2] = x\n")),)),
    MistakeExample("q5.subpixel_wrong_padding", "subpixel_conv", (
        (_SUBPIXEL, _SUBPIXEL.replace("[(padding, padding), (padding, padding)]", "[(1, 1), (1, 1)]")),)),
    MistakeExample("q5.subpixel_padding_before_insert", "subpixel_conv", (
        (_SUBPIXEL, "    pad = [(padding, padding), (padding, padding)] + [(0, 0)] * (x.ndim - 2)\n"
                    "    u = zero_insert(np.pad(x, pad), 2)\n"
                    "    return np.maximum(conv2d_valid(u, k), 0)\n"),)),
)


def _apply(source: str, edits, label: str) -> str:
    for old, new in edits:
        count = source.count(old)
        if count != 1:
            raise ValueError(f"{label}: the text to replace occurs {count} times in {CORRECT.name}: {old!r}")
        source = source.replace(old, new)
    return source


def correct_source() -> str:
    source = CORRECT.read_text(encoding="utf-8")
    if not source.startswith(CORRECT_HEADER):
        raise ValueError(f"{CORRECT.name} must start with {CORRECT_HEADER!r}")
    return source


def mistake_source(example: MistakeExample) -> str:
    source = _apply(correct_source(), example.edits, example.id)
    return source.replace(CORRECT_HEADER, f"# Homework: deep-learning fundamentals -- example with one known "
                                          f"mistake ({example.id}) in {example.function}.\n", 1)


def hanging_source() -> str:
    """``baum_welch`` never finishes (its loop counter is never incremented).

    The training demo at import is left out: it would hang the import as well.
    """
    source = correct_source().replace(
        CORRECT_HEADER, "# Homework: deep-learning fundamentals -- correct except that baum_welch never returns.\n", 1)
    return _apply(source, (
        ("    for _ in range(n_iter):\n", "    it = 0\n    while it < n_iter:  # (forgot it += 1)\n"),
        ("pi1, A1, B1 = baum_welch(obs0, pi0, A0, B0, n_iter=100)\n"
         'print("P(obs) after: ", forward(obs0, pi1, A1, B1)[0])\n',
         "# pi1, A1, B1 = baum_welch(obs0, pi0, A0, B0, n_iter=100)  # takes too long?\n"),
    ), HANGS)


_SLOWLY = '''

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
'''


def slow_source() -> str:
    """Correct, and 50 times slower than the reference on every case (in CPU time)."""
    source = correct_source().replace(
        CORRECT_HEADER, "# Homework: deep-learning fundamentals -- correct, but 50 times slower than the "
                        "reference on every case.\n", 1)
    source = _apply(source, (
        ("import numpy as np\n", "import time\n\nimport numpy as np\n"),
        ("\n\n# ---------------------------------------------------------------- Q1 batch normalization\n",
         _SLOWLY + "\n\n# ---------------------------------------------------------------- Q1 batch normalization\n"),
    ), SLOW)
    source = source[:source.index("# ---------------------------------------------------------------- trying it out")]
    tree = ast.parse(source)
    lines = source.split("\n")
    for node in reversed(tree.body):
        if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
            lines.insert(node.lineno - 1, "@_fifty_times_slower")
    return "\n".join(lines).rstrip("\n") + "\n"


def _segments(source: str) -> dict[str, str]:
    """Top-level function definitions of ``source`` by name."""
    tree = ast.parse(source)
    return {node.name: ast.get_source_segment(source, node) for node in tree.body
            if isinstance(node, ast.FunctionDef)}


def _answer(source: str, name: str) -> str:
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == name:
            return ast.literal_eval(node.value)
    raise ValueError(f"{CORRECT.name} has no {name}")


def notebook():
    """The correct module as a Colab notebook (an ``nbformat`` v4 node)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    src = correct_source()
    fn = _segments(src)

    def code(*names, before=""):
        return new_code_cell(before + "\n\n\n".join(fn[n] for n in names))

    cells = [
        new_markdown_cell("# HW: deep-learning fundamentals\nStudent 103590450"),
        new_code_cell("%matplotlib inline\n!pip install cvxopt\nimport numpy as np"),
        new_code_cell("from keras.layers import Dense  # try the Keras version later"),
        new_markdown_cell("## Q1 Batch normalization"),
        code("batchnorm_forward", "batchnorm_backward"),
        new_markdown_cell("**Answer Q1**\n\n" + _answer(src, "ANSWER_Q1")),
        new_markdown_cell("## Q2 VAE"),
        code("reparameterize", "reparameterize_backward"),
        code("kl_to_standard_normal"),
        new_markdown_cell("**Answer Q2**\n\n" + _answer(src, "ANSWER_Q2")),
        new_markdown_cell("## Q3 SVM"),
        code("svm_dual_alphas", "optimal_margin_svm", before="from cvxopt import matrix, solvers\n\n\n"),
        new_code_cell("X = np.array([[1.0, -1.0], [-1.0, -1.0]])\ny = np.array([1.0, -1.0])\n"
                      "w, b = optimal_margin_svm(X, y)\nprint(w, b)"),
        new_markdown_cell("## Q4 HMM"),
        code("urn_emissions", "forward", "backward"),
        code("baum_welch"),
        new_code_cell("B0 = urn_emissions(np.array([4, 2, 3]), np.array([2, 4, 3]))\n"
                      "pi0, A0 = np.full(3, 1 / 3), np.full((3, 3), 1 / 3)\n"
                      "obs0 = np.array([0, 0, 1, 0, 1])\n"
                      "pi1, A1, B1 = baum_welch(obs0, pi0, A0, B0, n_iter=100)\n"
                      "print(pi1, A1, B1, sep='\\n')"),
        new_markdown_cell("## Q5 Sub-pixel convolution"),
        code("zero_insert", "conv2d_valid"),
        code("subpixel_conv"),
        new_code_cell("%%time\nx = np.arange(25.0).reshape(5, 5)\nprint(subpixel_conv(x, np.ones((3, 3))).shape)"),
    ]
    nb = new_notebook(cells=cells, metadata={
        "colab": {"provenance": [], "name": "HW_103590450.ipynb"},
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    })
    for number, cell in enumerate(nb.cells, start=1):
        cell.id = f"cell-{number}"  # stable ids: the file is regenerated byte for byte
    nbformat.validate(nb)
    return nb


#: The notebook's cell numbers (1-based, as the grader counts them).
NOTEBOOK_KERAS_CELL = 3


def derived_files() -> dict[str, str]:
    """File name -> text of every example derived from the correct module."""
    import nbformat

    files = {example.filename: mistake_source(example) for example in MISTAKES}
    files[NON_ASCII_COPY] = correct_source()
    files[HANGS] = hanging_source()
    files[SLOW] = slow_source()
    files[NOTEBOOK] = nbformat.writes(notebook()) + "\n"
    return files


def main() -> int:
    for name, text in derived_files().items():
        (SUBMISSIONS / name).write_text(text, encoding="utf-8")
        print("wrote", SUBMISSIONS / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
