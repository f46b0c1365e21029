"""The labelled case files in tests/cases/: robust accuracy and false-positive bars; paper mode beside it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from micota.grade import grade

CASES_DIR = Path(__file__).resolve().parents[1] / "cases"


def load_cases() -> list[dict]:
    return [json.loads(line) for path in sorted(CASES_DIR.glob("*.jsonl"))
            for line in path.open(encoding="utf-8") if line.strip()]


@pytest.fixture(scope="module")
def cases() -> list[dict]:
    return load_cases()


def test_case_files_are_large_and_balanced(cases):
    assert len(cases) >= 300
    assert len({c["category"] for c in cases}) >= 15
    assert sum(not c["correct"] for c in cases) >= 80  # enough hard negatives to measure false positives


def test_robust_accuracy_and_false_positives(cases):
    verdicts = [grade(c["gold"], c["response"], benchmark=c.get("benchmark")) for c in cases]
    wrong = [(c["category"], c["gold"], v.extracted, v.reason) for c, v in zip(cases, verdicts)
             if v.correct != c["correct"]]
    false_pos = [w for w, c, v in zip(wrong, cases, verdicts) if v.correct and not c["correct"]]
    accuracy = 1 - len(wrong) / len(cases)
    assert accuracy >= 0.98, f"accuracy {accuracy:.3f}; wrong: {wrong}"
    assert not false_pos, f"false positives: {false_pos}"


@pytest.mark.parametrize("category", ["matrices", "pm_in_sets", "ratios", "final_after_boxed_intermediate",
                                      "article_word_answers", "units_in_words"])
def test_last_mile_categories_have_hard_negatives_and_grade_exactly(cases, category):
    """Each form (pmatrix/bmatrix/array and a factored scalar, ± in sets, ``:``/``\\colon`` ratios, a
    final statement after a boxed intermediate, "an ellipse", units in words) with its negatives."""
    mine = [c for c in cases if c["category"] == category]
    assert sum(c["correct"] for c in mine) >= 5 and sum(not c["correct"] for c in mine) >= 5
    wrong = [(c["gold"], c["response"][-60:]) for c in mine
             if grade(c["gold"], c["response"], benchmark=c.get("benchmark")).correct != c["correct"]]
    assert not wrong


def test_paper_mode_is_the_papers_harness_not_a_careful_grader(cases):
    """Paper mode rejects many right answers and accepts exactly the wrong ones its rules let
    through: everything after ``\\text{ `` is a unit (``2 \\text{ thousand}``), only the last box is
    read (a boxed intermediate, ``\\boxed{\\boxed{3} or 4}``), and a left side of two characters or
    fewer is dropped (``y=3`` for ``x=3``)."""
    paper = [grade(c["gold"], c["response"], benchmark=c.get("benchmark"), mode="paper").correct for c in cases]
    false_pos = sorted({c["category"] for p, c in zip(paper, cases) if p and not c["correct"]})
    assert sum(p and not c["correct"] for p, c in zip(paper, cases)) == 11
    assert false_pos == ["equations", "final_after_boxed_intermediate", "hard_negatives", "units_in_words"]
    assert sum(p == c["correct"] for p, c in zip(paper, cases)) < len(cases) * 0.7
