"""The LLM-judge scoring mode: prompt, selection, parsing and resumable plumbing.

Reference: Small-Model-Gap/Small-Model-Learnability-Gap, lm-evaluation-harness/math_metric_llm_eval_general.py::

    prompt = (
        f"Given a math problem, its correct answer, and the model's generated answer, "
        f"determine if the model's generated answer is correct. Respond with 'True' if the answer is correct and "
        f"'False' if it is incorrect. Directly provide your judgement 'True' or 'False' without any other description.\\n"
        f"Problem: {problem}\\nCorrect Answer: {ground_answer}\\nModel's Generated Answer: {resp_answer}\\nYour judgement:"
    )
    ...
    for output in decoded_output:
        if "True" in output: results.append(1)
        elif "False" in output: results.append(0)
        else: results.append(None)
"""

from __future__ import annotations

import json
import re

import pytest

from micota.evaluate import EvaluateConfig, run
from micota.evaluate.judge import QWEN_SYSTEM, JudgeCase, JudgeConfig, judge_gold, judge_request, needs_judge, parse_verdict
from micota.generate import writer
from micota.generate.engine import Completion

pytest.importorskip("micota.grade")

UPSTREAM = ("Given a math problem, its correct answer, and the model's generated answer, determine if the model's "
            "generated answer is correct. Respond with 'True' if the answer is correct and 'False' if it is incorrect. "
            "Directly provide your judgement 'True' or 'False' without any other description.\n"
            "Problem: {problem}\nCorrect Answer: {ground_answer}\nModel's Generated Answer: {resp_answer}\nYour judgement:")


def test_prompt_is_upstreams_string_with_the_qwen_system_turn():
    case = JudgeCase("Find {gold} when $x^{2}=4$.", "27.0", "\\frac{1}{2}")
    request = judge_request(JudgeConfig(), case)
    assert request.messages[0] == {"role": "system", "content": QWEN_SYSTEM}
    expected = UPSTREAM.format(problem=case.problem, ground_answer=case.gold, resp_answer=case.answer)
    assert request.messages[1] == {"role": "user", "content": expected}
    assert judge_request(JudgeConfig(), JudgeCase(case.problem, case.gold, case.answer)).id == request.id
    assert judge_request(JudgeConfig(), JudgeCase(case.problem, "27", case.answer)).id != request.id


@pytest.mark.parametrize("reply, verdict", [
    ("True", True), (" True.", True), ("False", False), ("False. The answer is 3.", False),
    ("The answer is False, not True", True),  # upstream checks "True" first
    ("true", None), ("FALSE", None), ("", None), ("Yes", None),
])
def test_verdicts_parse_as_upstream(reply, verdict):
    assert parse_verdict(reply) is verdict


def test_selection_and_gold_as_upstream():
    assert needs_judge("math500", False, "") and not needs_judge("math500", False, None)
    assert not needs_judge("math500", True, "3") and not needs_judge("gsm8k", False, "3")
    assert judge_gold(27.0) == "27.0" and judge_gold(["$\\frac{1}{2}$", "$3$"]) == "$\\frac{1}{2}$"


class FakeModels:
    """Evaluated models answer lab-i with: i=0 the gold, i=1 a wrong boxed value, i=2 nothing boxed, i=3 `2*3`.

    The judge (model "judge-llm") says True when the answer is `2*3`, False for `-1`, gibberish otherwise.
    """

    judge_requests: list = []

    def __init__(self, config):
        self.config = config

    def generate(self, requests):
        for r in requests:
            if self.config.model == "judge-llm":
                FakeModels.judge_requests.append(r.id)
                answer = re.search(r"Generated Answer: (.*)\n", r.messages[-1]["content"]).group(1)
                reply = {"2*3": "True", "-1": "False"}.get(answer, "I cannot tell")
                yield Completion(r.id, reply, n_tokens=1, finish_reason="stop")
                continue
            index = int(r.meta["problem_id"].split("-")[1])
            text = [f"\\boxed{{{r.meta['gold']}}}", "\\boxed{-1}", "it is 2", "\\boxed{2*3}", "\\boxed{?}"][index]
            yield Completion(r.id, text, n_tokens=3, finish_reason="stop")


@pytest.fixture()
def lab_file(lab_rows):
    return lab_rows(5)


def _config(tmp_path, lab_file, models, **extra):
    return EvaluateConfig(out_dir=str(tmp_path / "eval"), models=models, progress=False,
                          benchmarks=[{"name": "lab", "path": str(lab_file)}], scoring=["robust", "judge"],
                          engine={"engine": "scripted"},
                          judge={"engine": {"engine": "openai", "model": "judge-llm", "base_url": "http://judge/v1"}},
                          **extra)


def test_judge_scores_paper_failures_with_a_boxed_answer_once_per_distinct_case(tmp_path, lab_file, use_engine):
    use_engine(FakeModels)
    FakeModels.judge_requests = []
    (tmp_path / "b").mkdir()
    cfg = _config(tmp_path, lab_file, {"A": str(lab_file), "B": str(tmp_path / "b")})
    assert cfg.scoring == ["robust", "paper", "judge"]  # the judge re-checks paper's verdicts
    manifest = run(cfg)
    # lab-1 (-1), lab-3 (2*3) and lab-4 (?) are judged; A and B give the same answers: one request each
    assert len(FakeModels.judge_requests) == 3 and manifest.counts["judged"] == 6
    samples = {s["id"]: s for s in map(json.loads, (tmp_path / "eval/samples/A/lab.jsonl").open())}
    assert samples["lab-0"]["correct_judge"] and samples["lab-0"]["reason_judge"] is None  # paper was right
    assert samples["lab-1"]["reason_judge"] == "False" and not samples["lab-1"]["correct_judge"]
    assert samples["lab-2"]["reason_judge"] is None and samples["lab-2"]["extracted_judge"] is None  # nothing boxed
    assert all(s["extracted_judge"] == s["extracted_paper"] for s in samples.values())
    assert samples["lab-3"]["correct_judge"] and not samples["lab-3"]["correct_paper"]
    assert samples["lab-4"]["reason_judge"] == "I cannot tell" and not samples["lab-4"]["correct_judge"]
    lab = json.loads((tmp_path / "eval/results.json").read_text())["A"]["lab"]
    assert lab["accuracy_paper"] == pytest.approx(1 / 5) and lab["accuracy_judge"] == pytest.approx(2 / 5)
    assert lab["judged"] == 3 and lab["judge_unparsed"] == 1

    FakeModels.judge_requests = []
    run(_config(tmp_path, lab_file, {"A": str(lab_file)}, reflection_markers=["wait"]))  # a new stage config
    assert FakeModels.judge_requests == []  # replies are kept like generations


def test_a_judge_killed_midway_resumes_with_the_rest(tmp_path, lab_file, use_engine):
    class DyingJudge(FakeModels):
        answered = 0

        def generate(self, requests):
            for completion in super().generate(requests):
                if self.config.model == "judge-llm":
                    if DyingJudge.answered == 1:
                        raise KeyboardInterrupt
                    DyingJudge.answered += 1
                yield completion

    use_engine(DyingJudge)
    FakeModels.judge_requests = []
    cfg = _config(tmp_path, lab_file, {"A": str(lab_file)})
    cfg.judge.engine.batch_size = 1  # the writer re-sends a torn batch whole; one request per batch counts exactly
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    use_engine(FakeModels)
    FakeModels.judge_requests = []
    run(cfg)
    assert len(FakeModels.judge_requests) == 2  # one of three was on disk


def test_tiny_model_as_judge_through_the_hf_engine(tmp_path, lab_file, tiny_model, use_engine):
    """The plumbing with a real engine: its verdicts are noise, the records are not."""
    from micota.generate.engine import load_engine as real
    use_engine(lambda c: real(c) if c.model == str(tiny_model) else FakeModels(c))
    cfg = _config(tmp_path, lab_file, {"A": str(lab_file)})
    cfg.judge = JudgeConfig(engine={"engine": "hf", "model": str(tiny_model), "dtype": "float32", "device": "cpu",
                                    "max_new_tokens": 4})
    run(cfg)
    judged = [s for s in map(json.loads, (tmp_path / "eval/samples/A/lab.jsonl").open()) if s["reason_judge"] is not None]
    assert [s["id"] for s in judged] == ["lab-1", "lab-3", "lab-4"]
    assert all(s["correct_judge"] is (parse_verdict(s["reason_judge"]) is True) for s in judged)
    shards = list((tmp_path / "eval/judge").glob("*/shards/*.jsonl"))
    records = [json.loads(line) for shard in shards for line in shard.open()]
    assert len(records) == 3 and all(r["sampling"]["max_new_tokens"] == 4 and r["n_tokens"] <= 4 for r in records)
    assert all(r["messages"][1]["content"].endswith("\nYour judgement:") for r in records)
