"""Synthetic but realistic ``SubmissionResult`` objects for the report tests.

The homework layout mirrors the handout (five questions, 20 points each, Q1
and Q2 with a 6-point written part). Expected values are computed with small
numpy implementations so grids show plausible numbers; wrong outputs are made
by hand so the tests know exactly which cells are wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:  # the package may not be installed when tests run from a checkout
    sys.path.insert(0, _ROOT)

from grader.grading.verdicts import Verdict  # noqa: E402
from grader.grading.results import (  # noqa: E402
    CaseResult,
    CellFailure,
    Diagnosis,
    OutputCheck,
    QuestionResult,
    SubmissionResult,
    WrittenResult,
)

XSS_SCRIPT = "<script>window.__pwned=1</script>"
XSS_IMG = '<img src=x onerror="window.__pwned=1">'
CHINESE = "γ 和 β 是可學習的參數，透過反向傳播 (backpropagation) 更新。"
XSS_NAME = "mallory<img src=x onerror=window.__pwned=1>"
CHINESE_NAME = "張偉"

# --------------------------------------------------------------------------
# tiny reference implementations (display values only)

KERNEL = np.array([[3.0, -1, 2], [-2, 1, -3], [-2, 0, 3]])


def _bn_forward(x, gamma, beta, eps=1e-5):
    return gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + eps) + beta


def _zero_insert(x, factor=2):
    h, w = x.shape[:2]
    u = np.zeros(((h - 1) * factor + 1, (w - 1) * factor + 1) + x.shape[2:])
    u[::factor, ::factor] = x
    return u


def _conv2d_valid(p, k, stride=1):
    kh, kw = k.shape[:2]
    oh = (p.shape[0] - kh) // stride + 1
    ow = (p.shape[1] - kw) // stride + 1
    out = np.empty((oh, ow))
    for i in range(oh):
        for j in range(ow):
            out[i, j] = np.sum(p[i * stride:i * stride + kh, j * stride:j * stride + kw] * k)
    return out


def _subpixel(x, k, padding=2):
    u = np.pad(_zero_insert(x), padding)
    return np.maximum(_conv2d_valid(u, k), 0.0)


def _hmm_forward(obs, pi, A, B):
    alpha = np.zeros((len(obs), len(pi)))
    alpha[0] = pi * B[:, obs[0]]
    for t in range(1, len(obs)):
        alpha[t] = (alpha[t - 1] @ A) * B[:, obs[t]]
    return alpha[-1].sum(), alpha


def _hmm_backward(obs, A, B):
    beta = np.ones((len(obs), A.shape[0]))
    for t in range(len(obs) - 2, -1, -1):
        beta[t] = A @ (B[:, obs[t + 1]] * beta[t + 1])
    return beta


# --------------------------------------------------------------------------
# the planned cases


def _inputs() -> dict[str, dict[str, Any]]:
    rng = np.random.default_rng(7)
    x_bn = np.array([[1.0, 2, 3], [4, 5, 6], [7, 8, 10], [2, 0, 1]])
    img = np.array([[1.0, 2, 0, 1, 3], [0, 1, 2, 2, 1], [3, 1, 0, 1, 2], [1, 0, 2, 3, 1], [2, 2, 1, 0, 1]])
    urns = np.array([[4.0, 2], [2, 4], [3, 3]])
    B = urns / urns.sum(1, keepdims=True)
    return {
        "q1.1": dict(x=x_bn, gamma=np.array([1.0, 2.0, 0.5]), beta=np.array([0.0, 1.0, -1.0])),
        "q1.3": dict(dout=rng.normal(size=(4, 3)).round(3), x=x_bn, gamma=np.array([1.0, 2.0, 0.5])),
        "q2.1": dict(mean=np.array([[0.5, -1.0]]), log_stddev=np.array([[0.0, np.log(2)]]),
                     noise=np.array([[1.0, -0.5]])),
        "q2.2": dict(dz=np.array([[1.0, 1.0]]), log_stddev=np.array([[0.0, np.log(2)]]),
                     noise=np.array([[1.0, -0.5]])),
        "q3.1": dict(X=np.array([[1.0, -1], [-1, -1]]), y=np.array([1.0, -1])),
        "q3.2": dict(X=np.array([[1.0, -1], [-1, -1]]), y=np.array([1.0, -1])),
        "q4.1": dict(red=urns[:, 0], blue=urns[:, 1]),
        "q4.2": dict(obs=np.array([0, 0, 1, 0, 1]), pi=np.full(3, 1 / 3), A=np.full((3, 3), 1 / 3), B=B),
        "q4.3": dict(obs=np.array([0, 0, 1, 0, 1]), A=np.full((3, 3), 1 / 3), B=B),
        "q5.1": dict(x=img[:3, :3]),
        "q5.2": dict(p=rng.integers(-3, 4, size=(6, 6)).astype(float), k=KERNEL, stride=2),
        "q5.3": dict(x=img, k=KERNEL),
    }


def _expected(number: str, a: dict[str, Any]) -> dict[str, Any]:
    if number == "q1.1":
        return {"out": _bn_forward(a["x"], a["gamma"], a["beta"])}
    if number == "q1.3":
        x, g, dout, eps = a["x"], a["gamma"], a["dout"], 1e-5
        n = x.shape[0]
        xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + eps)
        dxhat = dout * g
        dx = (n * dxhat - dxhat.sum(0) - xhat * (dxhat * xhat).sum(0)) / (n * np.sqrt(x.var(0) + eps))
        return {"dx": dx, "dgamma": (dout * xhat).sum(0), "dbeta": dout.sum(0)}
    if number == "q2.1":
        return {"z": a["mean"] + np.exp(a["log_stddev"]) * a["noise"]}
    if number == "q2.2":
        return {"dmean": a["dz"], "dlog_stddev": a["dz"] * np.exp(a["log_stddev"]) * a["noise"]}
    if number == "q3.1":
        return {"alpha": np.array([0.5, 0.5])}
    if number == "q3.2":
        return {"w": np.array([1.0, 0.0]), "b": np.array(0.0)}
    if number == "q4.1":
        return {"B": np.stack([a["red"], a["blue"]], 1) / (a["red"] + a["blue"])[:, None]}
    if number == "q4.2":
        prob, alpha = _hmm_forward(a["obs"], a["pi"], a["A"], a["B"])
        return {"prob": np.array(prob), "alpha": alpha}
    if number == "q4.3":
        return {"beta": _hmm_backward(a["obs"], a["A"], a["B"])}
    if number == "q5.1":
        return {"u": _zero_insert(a["x"])}
    if number == "q5.2":
        return {"out": _conv2d_valid(a["p"], a["k"], a["stride"])}
    if number == "q5.3":
        return {"out": _subpixel(a["x"], a["k"])}
    raise KeyError(number)


# (question, title, [(number, part, case, function, visibility, points)], written points)
LAYOUT: list[tuple[str, str, list[tuple[str, str, str, str, str, float]], float]] = [
    ("q1", "Batch normalization", [
        ("q1.1", "forward", "lecture", "batchnorm_forward", "public", 3),
        ("q1.2", "forward", "random", "batchnorm_forward", "hidden", 3),
        ("q1.3", "backward", "lecture", "batchnorm_backward", "public", 4),
        ("q1.4", "backward", "random", "batchnorm_backward", "hidden", 4),
    ], 6),
    ("q2", "VAE reparameterization trick", [
        ("q2.1", "sample", "lecture", "reparameterize", "public", 4),
        ("q2.2", "backward", "lecture", "reparameterize_backward", "public", 5),
        ("q2.3", "kl", "random", "kl_to_standard_normal", "hidden", 5),
    ], 6),
    ("q3", "Optimal margin SVM", [
        ("q3.1", "dual", "lecture", "svm_dual_alphas", "public", 10),
        ("q3.2", "primal", "lecture", "optimal_margin_svm", "public", 10),
    ], 0),
    ("q4", "Discrete HMM training", [
        ("q4.1", "emissions", "lecture", "urn_emissions", "public", 4),
        ("q4.2", "forward", "lecture", "forward", "public", 5),
        ("q4.3", "backward", "lecture", "backward", "public", 5),
        ("q4.4", "baum_welch", "long", "baum_welch", "hidden", 6),
    ], 0),
    ("q5", "Sub-pixel convolution", [
        ("q5.1", "zero_insert", "lecture", "zero_insert", "public", 5),
        ("q5.2", "conv", "random", "conv2d_valid", "public", 5),
        ("q5.3", "subpixel", "lecture", "subpixel_conv", "public", 10),
    ], 0),
]

WRITTEN = {
    "q1": ("Why are γ and β learned?",
           "Why are γ and β learned by backpropagation rather than computed directly from the "
           "training samples, and how is their training carried out?",
           ["Explains that γ, β restore representational power (the layer can undo the normalization)",
            "States that they are updated by gradient descent with dL/dγ, dL/dβ like other weights",
            "Mentions that batch statistics are not parameters"]),
    "q2": ("Why the reparameterization trick?",
           "Why is the reparameterization trick necessary for training a VAE, and how is it accomplished?",
           ["Sampling is not differentiable w.r.t. the encoder outputs",
            "z = μ + σ·ε with ε ~ N(0, I) moves the randomness to an input",
            "Gradients then flow through μ and log σ"]),
}

DEFAULT_ANSWERS = {
    "q1": "γ and β let the network undo the normalization when that helps; they are ordinary "
          "parameters trained by gradient descent using dL/dγ = Σ dout·x̂ and dL/dβ = Σ dout.",
    "q2": "Sampling z ~ N(μ, σ²) blocks gradients. Writing z = μ + exp(log σ)·ε with ε ~ N(0, I) "
          "makes z a deterministic function of μ and log σ, so backprop works.",
}


def compare(name: str, expected: Any, got: Any, visibility: str = "public",
            rtol: float = 1e-6, atol: float = 1e-8) -> OutputCheck:
    """An ``OutputCheck`` the way ``compare.py`` would produce it."""
    e = np.asarray(expected, dtype=float)
    g = np.asarray(got, dtype=float)
    if e.shape != g.shape:
        msg = f"'{name}' has shape {g.shape}, expected {e.shape}"
        if visibility == "hidden":
            return OutputCheck(name, False, f"'{name}' has the wrong shape")
        return OutputCheck(name, False, msg, expected=e, got=g)
    mismatch = ~np.isclose(g, e, rtol=rtol, atol=atol)
    err = np.abs(g - e)
    passed = not mismatch.any()
    if passed:
        msg = f"'{name}' matches (max abs error {float(err.max()) if err.size else 0.0:.3g})"
        worst_index, worst_error = None, None
    else:
        idx = np.unravel_index(int(np.argmax(np.where(mismatch, err, -1))), e.shape)
        worst_index = tuple(int(i) for i in idx)
        worst_error = float(err[idx])
        msg = f"'{name}' max abs error {worst_error:.3g} at {list(worst_index)}"
    if visibility == "hidden":
        return OutputCheck(name, passed, "matches" if passed else f"'{name}' has wrong values")
    return OutputCheck(name, passed, msg, expected=e, got=g, mismatch=mismatch,
                       worst_index=worst_index, worst_error=worst_error)


Override = dict[str, Any]  # number -> dict(verdict=..., got={...}, diagnosis=..., traceback=...)


def build_result(
    student: str,
    *,
    file: Optional[str] = None,
    overrides: Optional[dict[str, Override]] = None,
    answers: Optional[dict[str, Optional[str]]] = None,
    graded: Optional[dict[str, float]] = None,
    isolation: str = "bwrap",
    **kwargs: Any,
) -> SubmissionResult:
    """A full submission; every case passes unless ``overrides[number]`` says otherwise.

    An override may hold ``verdict`` (default "wrong"), ``got`` (output name ->
    array, compared with the expected one), ``diagnosis``, ``traceback``,
    ``message``, ``mutated``, ``score``.
    """
    overrides = overrides or {}
    answers = DEFAULT_ANSWERS if answers is None else answers
    graded = graded or {}
    inputs = _inputs()
    questions = []
    for qid, title, cases, wpoints in LAYOUT:
        qcases = []
        for number, part, case, function, vis, points in cases:
            ov = overrides.get(number)
            qcases.append(_case(qid, number, part, case, function, vis, points, inputs.get(number), ov))
        written = None
        if wpoints:
            wtitle, prompt, criteria = WRITTEN[qid]
            written = WrittenResult(
                question=qid, number=f"{qid}.{len(cases) + 1}", title=wtitle, prompt=prompt,
                criteria=criteria, max_score=wpoints, answer=answers.get(qid),
                score=graded.get(qid, 0.0), graded=qid in graded,
            )
        questions.append(QuestionResult(qid, title, 20.0, qcases, written))
    return SubmissionResult(student=student, file=file or f"{student}.py", isolation=isolation,
                            questions=questions, **kwargs)


def _case(qid, number, part, case, function, vis, points, inputs, ov: Optional[Override]) -> CaseResult:
    hidden = vis == "hidden"
    if inputs is not None:
        expected = _expected(number, inputs)
    else:  # hidden cases: a stand-in output name, never any values
        expected = {"out": np.zeros(3)}
    verdict = "passed" if ov is None else ov.get("verdict", "wrong")
    got = dict(expected)
    if ov and "got" in ov:
        got.update(ov["got"])
    outputs: list[OutputCheck] = []
    if verdict in ("passed", "wrong"):
        for name, e in expected.items():
            if hidden:
                ok = verdict == "passed"
                outputs.append(OutputCheck(name, ok, "matches" if ok else f"'{name}' has wrong values"))
            else:
                outputs.append(compare(name, e, got[name]))
        if verdict == "wrong" and not hidden:
            assert not all(o.passed for o in outputs), f"{number}: override produced no wrong value"
    score = float(points) if verdict == "passed" else float(ov.get("score", 0.0))
    if verdict == "passed":
        message = "all outputs match"
    elif ov and "message" in ov:
        message = ov["message"]
    elif verdict == "wrong":
        message = next(o.message for o in outputs if not o.passed)
    else:
        message = f"{function}: {Verdict(verdict).label}"
    return CaseResult(
        question=qid, part=part, case=case, number=number, function=function,
        visibility=vis, max_score=float(points), score=score, verdict=verdict, message=message,
        outputs=outputs,
        inputs=None if hidden else inputs,
        diagnosis=None if ov is None else ov.get("diagnosis"),
        mutated=[] if ov is None else list(ov.get("mutated", [])),
        traceback=None if ov is None else ov.get("traceback"),
        seconds=0.012,
    )


# --------------------------------------------------------------------------
# the students

NO_RELU = Diagnosis(
    mistake="q5.no_relu",
    title="ReLU not applied after the convolution",
    hint="subpixel_conv must return relu(conv2d_valid(...)): replace negative values by 0 "
         "with np.maximum(out, 0).",
)
UNBIASED = Diagnosis(
    mistake="q1.unbiased_variance",
    title="unbiased variance (divided by N-1)",
    hint="Batch norm uses the biased variance: x.var(axis=0), i.e. divide by N, not N-1 (ddof=0).",
)

#: cells of the 11×11 sub-pixel output that the "wrong" student gets wrong
SUBPIXEL_WRONG_CELLS = [(0, 4), (3, 8), (6, 3), (10, 9)]


def subpixel_wrong_got() -> np.ndarray:
    a = _inputs()["q5.3"]
    out = _subpixel(a["x"], a["k"]).copy()
    for k, (i, j) in enumerate(SUBPIXEL_WRONG_CELLS):
        out[i, j] = -(k + 1) * 1.5  # what the conv gives before the ReLU
    return out


def perfect_student(name: str = "103590450") -> SubmissionResult:
    return build_result(name, graded={"q1": 6.0, "q2": 6.0}, seconds=3.2,
                        output="epoch 100: loss 0.0312\n")


def subpixel_wrong_student(name: str = "103590451") -> SubmissionResult:
    a = _inputs()["q1.1"]
    x = a["x"]
    unbiased = a["gamma"] * (x - x.mean(0)) / np.sqrt(x.var(0, ddof=1) + 1e-5) + a["beta"]
    return build_result(
        name,
        overrides={
            "q1.1": dict(got={"out": unbiased}, diagnosis=UNBIASED),
            "q1.2": dict(diagnosis=UNBIASED),
            "q4.4": dict(message="'pi' has wrong values"),
            "q5.3": dict(got={"out": subpixel_wrong_got()}, diagnosis=NO_RELU, mutated=["x"]),
        },
        graded={"q1": 4.0},
        seconds=5.0,
        output="Training...\nloss=0.51\nloss=0.32\n",
    )


CRASH_TRACEBACK = """Traceback (most recent call last):
  File "103590452.py", line 41, in batchnorm_backward
    dx = dxhat / np.sqrt(var + eps) - dgamma @ xhat
ValueError: matmul: Input operand 1 has a mismatch in its core dimension 0, with gufunc signature (n?,k),(k,m?)->(n?,m?) (size 4 is different from 3)
"""


def crashed_student(name: str = "103590452") -> SubmissionResult:
    return build_result(
        name,
        overrides={
            "q1.3": dict(verdict="exception", traceback=CRASH_TRACEBACK,
                         message="batchnorm_backward raised ValueError: matmul: Input operand 1 has a mismatch"),
            "q1.4": dict(verdict="exception", message="batchnorm_backward raised ValueError"),
            "q2.3": dict(verdict="memory", message="kl_to_standard_normal ran out of memory (limit 1 GiB)"),
            "q4.4": dict(verdict="timeout", message="baum_welch ran past 10 s"),
            "q5.3": dict(verdict="crash", message="the worker exited with signal 11 (SIGSEGV)"),
        },
        incidents=["baum_welch (long) timed out after 10 s; worker restarted",
                   "subpixel_conv (lecture): worker killed by signal 11; worker restarted"],
        output="".join(f"iteration {i}: loss {1 / (i + 1):.4f}\n" for i in range(200)),
        output_truncated=True,
        isolation="unshare",
        seconds=31.5,
    )


def load_error_student(name: str = "103590453") -> SubmissionResult:
    r = build_result(
        name,
        overrides={n: dict(verdict="skipped", message="not run: the submission failed to load")
                   for _, _, cases, _ in LAYOUT for (n, *_rest) in cases},
        answers={},
        load_error="SyntaxError: invalid syntax (103590453.py, line 12)\n    def forward(obs, pi, A, B)\n                              ^",
    )
    return r


def xss_student(name: str = XSS_NAME) -> SubmissionResult:
    evil = f"{XSS_SCRIPT} {XSS_IMG} {CHINESE}"
    return build_result(
        name,
        file=f"{name}.ipynb",
        overrides={
            "q2.1": dict(verdict="exception", traceback=f"Traceback (most recent call last):\nValueError: {evil}",
                         message=f"reparameterize raised ValueError: {evil}"),
            "q3.1": dict(verdict="rejected", message=f"'alpha' is not numeric: {XSS_SCRIPT}"),
        },
        answers={"q1": f"答案：{evil}\n  第二行 keeps   its spacing.", "q2": XSS_IMG},
        cell_failures=[CellFailure(cell=3, summary=f"NameError: {XSS_SCRIPT}",
                                   traceback=f"Traceback (most recent call last):\n  Cell 3\nNameError: {XSS_IMG}")],
        output=f"hello {evil}\n",
        incidents=[f"reparameterize: {XSS_IMG}"],
    )


def chinese_student(name: str = CHINESE_NAME) -> SubmissionResult:
    return build_result(
        name,
        file=f"{name}.ipynb",
        overrides={
            "q1.2": dict(message="'out' has wrong values"),   # a hidden failing case
            "q3.2": dict(verdict="missing", message="optimal_margin_svm is not defined"),
        },
        answers={"q1": "γ 與 β 讓網路可以恢復原本的表示能力；它們是參數，用反向傳播和梯度下降更新。",
                 "q2": None},
        cell_failures=[CellFailure(
            cell=2, summary="ModuleNotFoundError: No module named 'keras'",
            traceback="Traceback (most recent call last):\n  Cell 2, line 1\n    from keras.layers import Dense\n"
                      "ModuleNotFoundError: No module named 'keras'")],
        output="載入資料...\n",
    )


def class_batch() -> list[SubmissionResult]:
    return [perfect_student(), subpixel_wrong_student(), crashed_student(),
            load_error_student(), xss_student(), chinese_student()]


BUILDERS: dict[str, Callable[[], SubmissionResult]] = {
    "perfect": perfect_student,
    "subpixel": subpixel_wrong_student,
    "crashed": crashed_student,
    "load_error": load_error_student,
    "xss": xss_student,
    "chinese": chinese_student,
}
