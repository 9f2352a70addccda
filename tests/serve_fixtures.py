"""Gradebooks for the ``serve`` tests, built through the gradebook's own API from synthetic results."""

from __future__ import annotations

import copy
import random
from functools import lru_cache
from pathlib import Path

import fixtures_results as fx  # noqa: I001  (puts the repo root on sys.path)
from grader.assignment.plan import build_plan
from grader.assignment.rubric import load_rubric
from grader.gradebook.store import Gradebook
from grader.grading.results import SubmissionResult

RUBRIC = Path(__file__).resolve().parents[1] / "rubrics" / "homework.yaml"

Q2_ANSWER = ("如果直接從 N(μ, σ²) 取樣 z，sampling 這個操作對 μ 和 σ 不可微分，decoder 的 loss 的 gradient "
             "就無法 backpropagate 回 encoder。Reparameterization trick 把取樣改寫成 z = μ + σ·ε，"
             "其中 ε ~ N(0, I) 與參數無關。")
BIDI_ANSWER = "abc\u202edcba\u202c and a zero\u200bwidth space\x07"
_WORDS = ("gamma beta 參數 反向傳播 gradient 梯度 mini-batch 平均 variance 變異數 normalisation identity "
          "SGD Adam running average 測試時 weight loss 訓練 可學習 statistics").split()


@lru_cache(maxsize=1)
def plan():
    return build_plan(load_rubric(RUBRIC))


def _ungraded(r: SubmissionResult) -> SubmissionResult:
    for q in r.questions:
        if q.written is not None:
            q.written.score, q.written.graded = 0.0, False
    return r


def _with_answers(r: SubmissionResult, q1, q2) -> SubmissionResult:
    for q in r.questions:
        if q.written is not None:
            q.written.answer = {"q1": q1, "q2": q2}[q.id]
    return r


def class_results() -> list[SubmissionResult]:
    """The report fixtures' class plus answers made to test groups, key terms and hidden characters."""
    batch = [_ungraded(r) for r in fx.class_batch()]
    base = fx.perfect_student("twin_a")
    batch.append(_ungraded(_with_answers(base, fx.CHINESE + " 用 SGD 訓練。", Q2_ANSWER)))
    batch.append(_ungraded(_with_answers(fx.perfect_student("twin_b"), fx.CHINESE + "  用SGD訓練", Q2_ANSWER + " ")))
    batch.append(_ungraded(_with_answers(fx.perfect_student("bidi"), BIDI_ANSWER, "x" * 20000)))
    return batch


def synthetic_class(n: int, seed: int = 7) -> list[SubmissionResult]:
    """``n`` students with distinct, plausible answers (a few near-identical pairs)."""
    rng = random.Random(seed)
    template = _ungraded(fx.perfect_student("template"))
    out = []
    for i in range(n):
        r = copy.deepcopy(template)
        r.student = r.file = f"s{i:04d}"
        q1 = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(40, 160)))
        q2 = Q2_ANSWER if i % 50 == 0 else " ".join(rng.choice(_WORDS) for _ in range(60))
        out.append(_with_answers(r, q1, q2))
    r.file += ".py"
    return out


def make_gradebook(out_dir: Path, results: list[SubmissionResult]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    with Gradebook.open(out_dir, create=True) as gb:
        gb.sync_plan(plan())
        with gb.transaction():
            for r in results:
                gb.store_result(r, f"content-{r.student}", "test-run-key")
    return out_dir
