"""The rubric is validated when loaded: every problem is one line naming file, key and what is wrong."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from grader.errors import RubricError
from grader.assignment.plan import build_plan
from grader.assignment.rubric import load_rubric

ROOT = Path(__file__).resolve().parent.parent
RUBRIC = ROOT / "rubrics" / "homework.yaml"


@pytest.fixture(scope="module")
def rubric_data() -> dict:
    return yaml.safe_load(RUBRIC.read_text(encoding="utf-8"))


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    # the copy lives elsewhere: point it back at the real reference package
    return path


def mutated(data: dict, change) -> dict:
    data = copy.deepcopy(data)
    data["reference"] = str(ROOT / "reference")
    change(data)
    return data


def test_homework_rubric_loads_and_adds_up():
    rubric = load_rubric(RUBRIC)
    assert [q.id for q in rubric.questions] == ["q1", "q2", "q3", "q4", "q5"]
    assert all(q.points == 20 for q in rubric.questions)
    assert sum(q.points for q in rubric.questions) == 100
    assert rubric.question("q1").written.answer == "ANSWER_Q1"


def test_homework_cases_cover_what_the_handout_specifies():
    plan = build_plan(load_rubric(RUBRIC))
    by_function = {}
    for case in plan.cases:
        by_function.setdefault(case.function, []).append(case)
    inputs = lambda fn: [c.inputs for c in by_function[fn]]  # noqa: E731
    assert any(i["x"].ndim == 3 and i["x"].shape[2] > 1 for i in inputs("subpixel_conv")), "channels-last C > 1"
    assert {i.get("stride", 1) for i in inputs("conv2d_valid")} >= {1, 2, 3}
    assert {i.get("padding", 2) for i in inputs("subpixel_conv")} - {2}, "paddings other than 2"
    assert max(len(i["obs"]) for i in inputs("baum_welch")) >= 2000, "sequences of thousands of symbols"
    assert any(c.output_names == ("prob", "alpha") for c in by_function["forward"])
    assert min(i["x"].shape[0] for i in inputs("batchnorm_forward")) == 2, "batches down to N = 2"
    svm = [i for i in inputs("optimal_margin_svm")]
    assert any((i["y"] > 0).sum() != (i["y"] < 0).sum() for i in svm), "unequal classes"
    assert any(c.must_not_modify_inputs for c in by_function["baum_welch"])
    for fn, cases in by_function.items():
        assert any(c.visibility == "public" for c in cases), f"{fn} has no public case to self-check"
    assert {c.visibility for c in plan.cases} == {"public", "hidden"}


@pytest.mark.parametrize("change, key, words", [
    (lambda d: d["questions"][0].pop("title"), "questions.q1.title", "missing required key"),
    (lambda d: d["questions"][2].__setitem__("points", "twenty"), "questions.q3.points", "must be"),
    (lambda d: d["questions"][2]["parts"][0]["cases"][1].__setitem__("generator", "separable_pointz"),
     "questions.q3.parts.alphas.cases.random.generator", "unknown generator 'separable_pointz'"),
    (lambda d: d["questions"][0]["parts"][0].__setitem__("rtoll", 1e-3),
     "questions.q1.parts.forward.rtoll", "unknown key"),
    (lambda d: d["questions"][4].__setitem__("points", 25), "questions.q5.points", "add up to 20"),
    (lambda d: d["questions"][1]["parts"][0]["cases"][0].__setitem__("visibility", "secret"),
     "questions.q2.parts.sample.cases.small.visibility", "public or hidden"),
    (lambda d: d["questions"][0]["parts"][0]["args"].__setitem__("x", "matrix"),
     "questions.q1.parts.forward.args.x", "unknown type 'matrix'"),
    (lambda d: d["questions"][3]["parts"][1]["cases"][1].pop("seed"),
     "questions.q4.parts.forward.cases.random.seed", "needs a seed"),
    (lambda d: d["questions"][0]["parts"][0].__setitem__("function", "no_such_function"),
     "questions.q1.parts.forward.function", "no reference function"),
    (lambda d: d["questions"].append(copy.deepcopy(d["questions"][0])), "questions", "used twice"),
], ids=["missing-key", "wrong-type", "unknown-generator", "unknown-key", "points-do-not-add-up",
        "bad-visibility", "bad-arg-type", "generated-without-seed", "unknown-function", "duplicate-id"])
def test_malformed_rubric_names_file_key_and_problem(tmp_path, rubric_data, change, key, words):
    path = write(tmp_path, mutated(rubric_data, change))
    with pytest.raises(RubricError) as err:
        build_plan(load_rubric(path))
    message = str(err.value)
    assert message.startswith(str(path)), message
    assert key in message and words in message, message
    assert "\n" not in message


def test_not_yaml_is_one_line(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("questions: [unclosed\n", encoding="utf-8")
    with pytest.raises(RubricError, match=r"broken.yaml: not valid YAML: line \d"):
        load_rubric(path)


def test_cli_reports_a_malformed_rubric_in_one_line(tmp_path, rubric_data):
    path = write(tmp_path, mutated(rubric_data, lambda d: d["questions"][0].pop("parts")))
    proc = subprocess.run([sys.executable, "-m", "grader", "reference", "--rubric", str(path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines == [f"hwgrader: error: {path}: questions.q1.parts: missing required key"], proc.stderr
