"""Benchmarks as versioned data: counts, gold readers and the self-grading acceptance check."""

from __future__ import annotations

import pytest

from micota.data import BENCHMARKS, load_benchmark
from micota.data.benchmarks import DATA_DIR_ENV
from micota.errors import MicotaError

EXPECTED_COUNTS = {"aime24": 30, "amc23": 40, "olympiadbench": 675, "math500": 500, "gsm8k": 1319}


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_counts_match_the_issue_and_rows_are_complete(shared_data, name):
    problems = load_benchmark(name, shared_data / "benchmarks")
    assert len(problems) == EXPECTED_COUNTS[name] == BENCHMARKS[name].expected_count
    assert len({p.id for p in problems}) == len(problems)
    assert all(p.problem.strip() and p.answer.strip() for p in problems)
    assert all(p.metadata["benchmark_version"] == BENCHMARKS[name].version for p in problems)


def test_gold_readers_fix_known_harness_defects(shared_data):
    amc = load_benchmark("amc23", shared_data)  # the data folder itself works too
    assert amc[0].answer == "27"  # stored as the float 27.0
    aime = {p.id: p.answer for p in load_benchmark("aime24", shared_data)}
    assert "025" not in aime.values() and "25" in aime.values()
    olympiad = load_benchmark("olympiadbench", shared_data)
    assert not any("$" in p.answer for p in olympiad)
    multi = next(p for p in olympiad if p.metadata["final_answer"] == ["$69$,$84$"])
    assert multi.answer == "69,84" and multi.metadata["is_multiple_answer"] is True
    assert any(p.metadata["unit"] == "km/h" for p in olympiad)  # units kept for the grader
    gsm = load_benchmark("gsm8k", shared_data)
    assert gsm[0].answer == "18" and all("####" not in p.answer and "," not in p.answer for p in gsm)


def test_paper_golds_are_the_fields_the_papers_harness_reads(shared_data):
    """``gold_paper``: what each lm-eval task of Small-Model-Learnability-Gap compares with."""
    gold = {name: [p.metadata["gold_paper"] for p in load_benchmark(name, shared_data)] for name in EXPECTED_COUNTS}
    assert gold["amc23"][0] == "27.0" and "025" in gold["aime24"]  # str(float) and the string as stored
    assert "$69$,$84$" in gold["olympiadbench"]  # final_answer[0], "$" kept
    math500 = load_benchmark("math500", shared_data)
    assert math500[0].metadata["gold_paper"] == "\\left( 3, \\frac{\\pi}{2} \\right)"  # the solution's last box
    assert gold["gsm8k"][0].endswith("#### 18") and "<<" in gold["gsm8k"][0]  # doc_to_target "{{answer}}"


def test_data_dir_comes_from_the_environment(shared_data, monkeypatch):
    monkeypatch.setenv(DATA_DIR_ENV, str(shared_data / "benchmarks"))
    assert len(load_benchmark("aime24")) == 30


def test_missing_data_dir_says_how_to_point_at_the_data(monkeypatch, tmp_path):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    with pytest.raises(MicotaError, match=DATA_DIR_ENV):
        load_benchmark("math500")
    with pytest.raises(MicotaError, match="math500/test.jsonl"):
        load_benchmark("math500", tmp_path)


def test_unknown_benchmark_suggests_the_closest():
    with pytest.raises(MicotaError, match="Did you mean 'math500'"):
        load_benchmark("math-500", "/nonexistent")


def test_malformed_benchmark_line_names_file_and_line(tmp_path):
    folder = tmp_path / "aime24"
    folder.mkdir()
    (folder / "test.jsonl").write_text('{"id": 1, "problem": "p", "answer": "3"}\n{"id": 2, "problem": "q"}\n')
    with pytest.raises(MicotaError, match=r"aime24/test.jsonl:2: missing field `answer`"):
        load_benchmark("aime24", tmp_path)


PAPER_MISSES = {"aime24": 0, "amc23": 0, "math500": 0, "gsm8k": 0,
                "olympiadbench": 266}  # the golds stored as "$…$" in final_answer[0]; tests/grade/test_paper.py


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_every_gold_in_a_box_grades_correct_in_robust_mode(shared_data, name):
    """Acceptance: 100% robust self-agreement; paper mode misses exactly what the papers' harness misses.

    The response boxes the clean gold (what a correct model writes). Robust mode gets the raw gold
    as stored; paper mode gets ``gold_paper``, the value the papers' lm-eval task compares with.
    """
    grade = pytest.importorskip("micota.grade")
    problems = load_benchmark(name, shared_data)
    responses = [f"Final Answer: \\boxed{{{p.answer}}}" for p in problems]
    robust = grade.grade_many([(p.metadata["gold_raw"], r) for p, r in zip(problems, responses)],
                              benchmark=name, mode="robust")
    paper = grade.grade_many([(p.metadata["gold_paper"], r) for p, r in zip(problems, responses)],
                             benchmark=name, mode="paper")
    failed = [(p.id, p.answer, v.reason) for p, v in zip(problems, robust) if not v.correct]
    assert not failed, failed[:5]
    assert sum(not v.correct for v in paper) == PAPER_MISSES[name]


def test_hub_source_maps_the_same_fields(monkeypatch):
    import datasets

    calls = []

    def fake_load_dataset(hub_id, config, split):
        calls.append((hub_id, config, split))
        return [{"question": "Q1", "answer": "work\n#### 1,234"}, {"question": "Q2", "answer": "#### 7"}]

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    problems = load_benchmark("gsm8k", source="hub")
    assert calls == [("openai/gsm8k", "main", "test")]
    assert [(p.id, p.problem, p.answer) for p in problems] == [("0", "Q1", "1234"), ("1", "Q2", "7")]
