"""The labelled case files in tests/cases/: robust accuracy and false-positive bars (issue 3)."""

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
    assert len(false_pos) <= 0.01 * len(cases), f"false positives: {false_pos}"


def test_rule_mode_is_the_weaker_classic_baseline(cases):
    """Rule mode rejects many right answers (its published faults) and accepts almost no wrong one
    (it reads the innermost last box, so ``\\boxed{\\boxed{3} or 4}`` fools it)."""
    rule = [grade(c["gold"], c["response"], mode="paper").correct for c in cases]
    assert sum(r and not c["correct"] for r, c in zip(rule, cases)) <= 0.01 * len(cases)
    assert sum(r == c["correct"] for r, c in zip(rule, cases)) < len(cases) * 0.9
