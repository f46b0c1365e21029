"""Final-answer extraction and the API edge (gold types, modes, import cost)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from micota.grade import extract_answer, gold_text, grade
from micota.grade.extract import last_boxed
from micota.grade.rule import strip_string


@pytest.mark.parametrize(("response", "expected"), [
    ("so \\boxed{\\frac{1}{\\boxed{2}}} hmm \\boxed{\\{1, 2\\}}.", "\\{1, 2\\}"),
    ("nested \\boxed{\\frac{a}{b^{2}}}", "\\frac{a}{b^{2}}"),
    ("bare \\boxed 5 done", "5"),
    ("first \\boxed{3}, finally \\boxed{4", "3"),
    ("\\fbox{12}", "12"),
])
def test_last_boxed(response, expected):
    assert last_boxed(response) == expected


@pytest.mark.parametrize(("response", "expected"), [
    ("Work.\n\nFinal Answer: $18$", "$18$"),
    ("Final Answer: The final answer is $7$. I hope it is correct.", "$7$"),
    ("**Final Answer:** 12", "12"),
    ("Clips: 48+24 = 72.\n#### 72", "72"),
    ("So the answer is 2.5 cm.", "2.5 cm"),
    ("\\frac{3}{4}", "\\frac{3}{4}"),
    ("<think>the answer is 6", None),
    ("<think>it is 5?</think>\nThe final answer is \\boxed{6}.", "6"),
    ("We multiply 6 by 7 to get 42 and then", None),
    ("\\boxed{}", None),
])
def test_extract_answer(response, expected):
    assert extract_answer(response) == expected


def test_benchmark_shape_rules():
    assert extract_answer("\\boxed{073}", benchmark="aime24") == "73"
    assert extract_answer("She earns \\boxed{\\$1,250} per week", benchmark="gsm8k") == "1,250"
    assert extract_answer("\\boxed{073}", benchmark="not-a-benchmark") == "073"


def test_gold_text_normalises_data_file_types():
    assert gold_text(27.0) == "27"
    assert gold_text(27.5) == "27.5"
    assert gold_text(["$\\sqrt{2}-1$", "$3$"]) == "\\sqrt{2}-1, 3"
    assert gold_text(27.0, "paper") == "27.0"
    assert grade(27.0, "\\boxed{27}").correct and not grade(27.0, "\\boxed{27}", mode="paper").correct


def test_rule_mode_is_the_classic_strip_string():
    assert strip_string("\\left( 3, \\dfrac12 \\right)") == "(3,\\frac{1}{2})"
    assert strip_string("10\\%") == "10" and strip_string("\\$5") == "5" and strip_string("x = 3") == "3"
    assert grade("\\frac{1}{2}", "\\boxed{0.5}", mode="paper").correct
    assert not grade("\\frac{1}{2}", "The answer is 1/2", mode="paper").correct  # paper mode reads boxes only


def test_bad_inputs_give_verdicts_not_exceptions():
    assert grade("5", None).reason.startswith("response is")  # type: ignore[arg-type]
    assert not grade("", "\\boxed{5}").correct
    with pytest.raises(ValueError, match="robust"):
        grade("5", "\\boxed{5}", mode="fuzzy")


def test_import_is_light():
    code = "import sys, micota.grade; print('sympy' in sys.modules or 'math_verify' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
