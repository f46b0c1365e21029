"""Prompt sets for generation, the lab benchmark, and prompt templates as files."""

from __future__ import annotations

import json

import pytest

from micota.data import load_lab_benchmark, load_prompt_set, render_prompt
from micota.errors import MicotaError

SMALL_MODEL_GAP = ("Solve the following math problem. Present the final answer in the format: "
                   "Final Answer: \\boxed{your_answer}.\nProblem: {problem}\nAnswer:")


def test_gsm8k_train_gold_is_the_number_after_hashes(shared_data):
    problems = load_prompt_set(shared_data / "train" / "gsm8k" / "train.jsonl", limit=5)
    assert [p.answer for p in problems[:2]] == ["72", "10"]
    assert len(problems) == 5 and problems[0].problem.startswith("Natalia")


def test_math_train_question_answer_fields(shared_data):
    problems = load_prompt_set(shared_data / "train" / "math" / "train.jsonl")
    assert len(problems) == 7500 and problems[0].answer == "0"


def test_problem_answer_fields_and_row_ids(tmp_path):
    path = tmp_path / "set.jsonl"
    path.write_text('{"problem": "1+1?", "answer": 2}\n\n{"id": "x", "problem": "2+2?", "answer": "4"}\n')
    problems = load_prompt_set(path)
    assert [(p.id, p.answer) for p in problems] == [("set-0", "2"), ("x", "4")]


@pytest.mark.parametrize(
    ("text", "message"),
    [('{"problem": "a", "answer": "1"}\n{"problem": "b"\n', r"set.jsonl:2: malformed JSON"),
     ('{"problem": "a", "answer": "1"}\n{"problem": "b"}\n', r"set.jsonl:2: missing field `answer`"),
     ('{"text": "a", "answer": "1"}\n', r"set.jsonl:1: missing field `problem` or `question`")],
)
def test_bad_lines_name_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "set.jsonl"
    path.write_text(text)
    with pytest.raises(MicotaError, match=message):
        load_prompt_set(path)


def test_missing_jsonl_file_is_not_mistaken_for_a_hub_id(tmp_path):
    with pytest.raises(MicotaError, match="not found"):
        load_prompt_set(tmp_path / "nope.jsonl")


def test_lab_benchmark_requires_unique_ids(tmp_path):
    path = tmp_path / "lab.jsonl"
    rows = [{"id": "a", "problem": "3+4", "answer": 7}, {"id": "a", "problem": "1+1", "answer": "2"}]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(MicotaError, match="lab.jsonl:2: id 'a' repeats"):
        load_lab_benchmark(path)
    path.write_text(json.dumps(rows[0]) + "\n")
    assert load_lab_benchmark(path)[0].answer == "7"


def test_prompts_are_the_papers_verbatim():
    assert render_prompt("small_model_gap_eval", "{problem}") == SMALL_MODEL_GAP
    assert render_prompt("micota_generation", "What is 2+2?") == (
        "What is 2+2?\nPlease reason step by step, and put your final answer within \\boxed{}.")
    assert "Q?" in render_prompt("gsm8k_zero_shot", "Q?")


def test_unknown_template_lists_the_available_ones():
    with pytest.raises(MicotaError, match="Did you mean 'micota_generation'.*Available: gsm8k_zero_shot"):
        render_prompt("micota_generaton", "x")
