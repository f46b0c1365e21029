"""``grade_many`` across processes and the ``micota grade`` command."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from micota.cli import app
from micota.grade import grade, grade_many
from micota.grade import batch


def test_grade_many_in_processes_preserves_order(monkeypatch):
    monkeypatch.setattr(batch, "SERIAL_BELOW", 0)
    monkeypatch.setattr(batch, "CHUNK", 3)
    pairs = [(str(n), f"\\boxed{{{n if n % 3 else n + 1}}}") for n in range(20)] + [("(x+1)^2", "\\boxed{x^2+2x+1}")]
    verdicts = grade_many(pairs, workers=2)
    assert [v.correct for v in verdicts] == [grade(g, r).correct for g, r in pairs]
    assert verdicts[-1].correct and not verdicts[0].correct and verdicts[1].correct


def test_grade_many_serial_for_small_batches():
    assert [v.correct for v in grade_many([(27.0, "\\boxed{27}"), ("1/3", "\\boxed{0.33}")])] == [True, False]


def test_cli_grades_a_file_and_reports_accuracy(tmp_path):
    path = tmp_path / "responses.jsonl"
    rows = [{"answer": 27.0, "output": "\\boxed{27}"}, {"answer": ["$\\frac{1}{2}$"], "output": "\\boxed{0.4}"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["grade", str(path), "--gold-field", "answer", "--response-field", "output"])
    assert result.exit_code == 0, result.output
    assert "1/2 correct" in result.output
    graded = [json.loads(line) for line in (tmp_path / "responses.graded.jsonl").read_text().splitlines()]
    assert [g["correct"] for g in graded] == [True, False] and graded[1]["extracted"] == "0.4"


def test_cli_grades_in_paper_mode_with_the_benchmark_rules(tmp_path):
    """``--mode paper --benchmark amc23``: the AMC task's leading-zero rule reads the float gold 27.0."""
    path = tmp_path / "amc.jsonl"
    rows = [{"gold": 27.0, "response": "Final Answer: \\boxed{27}"}, {"gold": 36.0, "response": "\\boxed{36.5}"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(app, ["grade", str(path), "--mode", "paper", "--benchmark", "amc23"])
    assert result.exit_code == 0, result.output
    assert "grade (paper): 1/2 correct" in result.output
    graded = [json.loads(line) for line in (tmp_path / "amc.graded.jsonl").read_text().splitlines()]
    assert graded[0]["reason"].startswith("AMC match")
    refused = CliRunner().invoke(app, ["grade", str(path), "--mode", "rule"])
    assert refused.exit_code == 2 and "robust, paper" in refused.output


def test_paper_mode_grades_many_in_process(monkeypatch):
    """Paper mode is string work only: a large batch never starts worker processes."""
    monkeypatch.setattr(batch, "_grade_parallel", lambda *args: pytest.fail("workers started"))
    verdicts = grade_many([("5", "\\boxed{5}")] * 300, mode="paper", workers=2)
    assert all(v.correct for v in verdicts)


def test_cli_names_the_missing_field(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text(json.dumps({"gold": "1"}) + "\n")
    result = CliRunner().invoke(app, ["grade", str(path)])
    assert result.exit_code == 2
    assert "r.jsonl:1: missing field `response`" in result.output


def test_grade_many_keeps_the_per_case_limit_inside_workers(monkeypatch):
    monkeypatch.setattr(batch, "SERIAL_BELOW", 0)
    monkeypatch.setattr(batch, "CHUNK", 2)
    slow = ("x^2+1", "\\boxed{(x+y+z+1)^{300}}")
    # 5 s: enough for (x+1)^2 on a busy 2-core box, far too little to expand a 300th power
    verdicts = grade_many([slow, ("7", "\\boxed{7}"), slow, ("(x+1)^2", "\\boxed{x^2+2x+1}")], workers=2,
                          time_limit_s=5)
    assert [v.correct for v in verdicts] == [False, True, False, True]
    assert "timed out" in verdicts[0].reason and "timed out" in verdicts[2].reason


def test_grade_many_does_not_wait_for_a_worker_that_overruns(monkeypatch):
    import time

    monkeypatch.setattr(batch, "SERIAL_BELOW", 0)
    monkeypatch.setattr(batch, "WORKER_START_S", -100.0)  # a budget that is already spent
    start = time.monotonic()
    verdicts = grade_many([("(x+1)^2", "\\boxed{x^2+2x+1}")], workers=2)
    assert verdicts[0].correct is False and "overran" in verdicts[0].reason
    assert time.monotonic() - start < 10
