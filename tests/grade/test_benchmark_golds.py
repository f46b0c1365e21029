"""Every real benchmark gold, boxed, must grade correct against itself in robust mode (issue 3).

Golds are read raw, per benchmark as issue 5 specifies: MATH-500 / AIME24 ``answer``, AMC23
float ``answer``, OlympiadBench ``final_answer`` list, GSM8K the number after ``####``. This tiny
reader deliberately skips ``micota.data.load_benchmark`` (tests/data covers that path): here the
raw data-file types (floats, lists of ``$…$``) must be accepted at ``grade``'s API edge.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from micota.grade import gold_text, grade

GOLD_FIELDS = {
    "math500": lambda row: row["answer"],
    "aime24": lambda row: row["answer"],
    "amc23": lambda row: row["answer"],
    "olympiadbench": lambda row: row["final_answer"],
    "gsm8k": lambda row: row["answer"].split("####")[-1].strip(),
}


def read_golds(shared_data: Path, benchmark: str) -> list:
    path = shared_data / "benchmarks" / benchmark / "test.jsonl"
    with path.open(encoding="utf-8") as handle:
        return [GOLD_FIELDS[benchmark](json.loads(line)) for line in handle if line.strip()]


@pytest.mark.parametrize("bench", sorted(GOLD_FIELDS))
def test_every_gold_grades_correct_against_itself(shared_data, bench):
    golds = read_golds(shared_data, bench)
    failures = []
    for gold in golds:
        response = f"The final answer is $\\boxed{{{gold_text(gold)}}}$."
        verdict = grade(gold, response, benchmark=bench)
        if not verdict.correct:
            failures.append((gold, verdict.reason))
    assert not failures, f"{len(failures)}/{len(golds)} golds fail against themselves: {failures[:5]}"


def test_paper_mode_takes_raw_golds_as_stored(shared_data):
    """Raw data-file golds in paper mode: AMC floats match through the task's leading-zero rule
    (``str(27.0)`` -> ``27``); without a benchmark (the classic MATH rule) they never match; the
    ``$…$``-wrapped OlympiadBench golds never match a clean boxed answer."""
    amc = read_golds(shared_data, "amc23")
    assert all(grade(g, f"\\boxed{{{gold_text(g)}}}", mode="paper", benchmark="amc23").correct for g in amc)
    assert not any(grade(g, f"\\boxed{{{gold_text(g)}}}", mode="paper").correct for g in amc)
    olympiad = read_golds(shared_data, "olympiadbench")
    wrapped = [g for g in olympiad if g[0].startswith("$")]
    assert len(wrapped) == 266
    assert not any(grade(g, f"\\boxed{{{gold_text(g)}}}", mode="paper", benchmark="olympiadbench").correct
                   for g in wrapped)
