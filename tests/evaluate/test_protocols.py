"""Protocols: greedy and sampled (n seeded samples per problem, pass@1 mean ± std and maj@n)."""

from __future__ import annotations

import json
import statistics

import pytest

from micota.evaluate import EvaluateConfig, run
from micota.evaluate.metrics import majority_accuracy, sample_set_accuracies
from micota.generate.engine import Completion

pytest.importorskip("micota.grade")


def test_sampled_defaults_and_explicit_settings():
    cfg = EvaluateConfig(out_dir="x", models={"a": "b"}, benchmarks=["gsm8k"], protocol="sampled")
    assert (cfg.samples, cfg.engine.temperature, cfg.engine.top_p) == (8, 0.6, 0.95)
    mine = EvaluateConfig(out_dir="x", models={"a": "b"}, benchmarks=["gsm8k"], protocol="sampled", samples=4,
                          engine={"temperature": 1.0})
    assert (mine.samples, mine.engine.temperature, mine.engine.top_p) == (4, 1.0, 0.95)
    reloaded = EvaluateConfig(**mine.model_dump())  # config.yaml holds the resolved values
    assert reloaded.engine.temperature == 1.0 and reloaded.samples == 4


@pytest.mark.parametrize("extra, message", [
    ({"samples": 4}, "greedy draws one response"),
    ({"engine": {"temperature": 0.7}}, "greedy needs temperature 0"),
    ({"models": {"a": {"model": "b", "engine": {"temperature": 0.7}}}}, "greedy needs temperature 0"),
])
def test_greedy_contradictions_are_config_errors(extra, message):
    with pytest.raises(ValueError, match=message):
        EvaluateConfig(**{"out_dir": "x", "models": {"a": "b"}, "benchmarks": ["gsm8k"], **extra})


class SetEngine:
    """Sample 0 answers every lab problem right, sample 1 only even ones, sample 2 none; records seeds."""

    seeds: list = []

    def __init__(self, config):
        self.config = config

    def generate(self, requests):
        for request in requests:
            SetEngine.seeds.append((request.id, request.seed))
            k, index = request.meta["sample"], int(request.meta["problem_id"].split("-")[1])
            right = k == 0 or (k == 1 and index % 2 == 0)
            answer = request.meta["gold"] if right else "-1"
            yield Completion(request.id, f"\\boxed{{{answer}}}", n_tokens=3, finish_reason="stop")




def test_sampled_protocol_reports_pass1_mean_std_and_majority(tmp_path, lab_file, use_engine):
    use_engine(SetEngine)
    SetEngine.seeds = []
    cfg = EvaluateConfig(out_dir=str(tmp_path / "eval"), models={"M": str(lab_file)}, protocol="sampled", samples=3,
                         benchmarks=[{"name": "lab", "path": str(lab_file)}], progress=False,
                         engine={"engine": "scripted", "max_new_tokens": 8})
    run(cfg)
    lab = json.loads((tmp_path / "eval/results.json").read_text())["M"]["lab"]
    assert lab["protocol"] == "sampled" and lab["samples_per_problem"] == 3 and lab["n"] == 4 and lab["n_samples"] == 12
    for mode in ("robust", "paper"):
        assert lab[f"accuracy_{mode}"] == pytest.approx(0.5)  # sets: 1.0, 0.5, 0.0
        assert lab[f"accuracy_{mode}_std"] == pytest.approx(statistics.pstdev([1.0, 0.5, 0.0]))
        assert lab[f"maj@3_{mode}"] == pytest.approx(0.5)  # even problems: 2 of 3 right; odd: 2 of 3 wrong
    seeds = dict(SetEngine.seeds)
    assert len(seeds) == 12 and len(set(seeds.values())) == 12  # each sample its own seed
    samples = [json.loads(line) for line in (tmp_path / "eval/samples/M/lab.jsonl").open()]
    assert [(s["id"], s["sample"]) for s in samples[:4]] == [("lab-0", 0), ("lab-0", 1), ("lab-0", 2), ("lab-1", 0)]
    assert {s["seed"] for s in samples} == set(seeds.values())  # the seed each sample was drawn with

    SetEngine.seeds = []
    run(cfg.model_copy(update={"out_dir": str(tmp_path / "again")}))
    assert dict(SetEngine.seeds) == seeds  # seeds depend on the request, not on order or run


def test_greedy_results_have_no_spread_fields(tmp_path, lab_file, use_engine):
    use_engine(SetEngine)
    cfg = EvaluateConfig(out_dir=str(tmp_path / "eval"), models={"M": str(lab_file)}, progress=False,
                         benchmarks=[{"name": "lab", "path": str(lab_file)}], engine={"engine": "scripted"})
    run(cfg)
    lab = json.loads((tmp_path / "eval/results.json").read_text())["M"]["lab"]
    assert lab["accuracy_robust"] == 1.0 and lab["protocol"] == "greedy" and lab["samples_per_problem"] == 1
    assert not [key for key in lab if key.endswith("_std") or key.startswith("maj@")]


def _s(pid, k, answer, correct):
    return {"id": pid, "sample": k, "extracted_m": answer, "correct_m": correct}


def test_majority_groups_by_normalized_answer_ties_go_to_the_earliest_and_empty_answers_do_not_vote():
    samples = [
        _s("tie", 0, "5", False), _s("tie", 1, "7", True),  # one vote each: the earliest (5, wrong) wins
        _s("norm", 0, "2", False), _s("norm", 1, "\\frac{1}{2}", True), _s("norm", 2, "\\dfrac{1}{2}", True),
        _s("none", 0, None, False), _s("none", 1, None, False), _s("none", 2, "3", True),  # only one vote
        _s("empty", 0, None, False),
    ]
    assert majority_accuracy(samples, "m") == pytest.approx(2 / 4)
    assert sample_set_accuracies(samples, "m") == [0.0, pytest.approx(2 / 3), 1.0]
