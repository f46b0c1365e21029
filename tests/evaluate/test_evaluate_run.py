"""The evaluate stage end to end on CPU: a real benchmark subset and the lab benchmark."""

from __future__ import annotations

import json

import pytest

from micota.errors import MicotaError
from micota.evaluate import EvaluateConfig, run
from micota.generate.engine import Completion

pytest.importorskip("micota.grade")




@pytest.fixture()
def oracle(tmp_path):
    """A stand-in model folder for the fake engines (a scripted engine's `model` must exist)."""
    folder = tmp_path / "oracle"
    folder.mkdir()
    (folder / "tokenizer.json").write_text("{}")
    return str(folder)


def _config(tmp_path, models, lab_file, **extra):
    return EvaluateConfig(out_dir=str(tmp_path / "eval"), models=models, data_dir=extra.pop("data_dir"),
                          benchmarks=[{"name": "math500", "limit": 3}, {"name": "lab", "path": str(lab_file)}],
                          engine={"max_new_tokens": 6, "batch_size": 4, "device": "cpu"}, progress=False, **extra)


def test_tiny_model_end_to_end_then_resume_skips(tmp_path, tiny_model, shared_data, lab_file, use_engine):
    cfg = _config(tmp_path, {"Tiny CoT": str(tiny_model)}, lab_file, data_dir=str(shared_data))
    manifest = run(cfg)
    out = tmp_path / "eval"
    results = json.loads((out / "results.json").read_text())
    assert set(results["Tiny CoT"]) == {"math500", "lab"}
    assert results["Tiny CoT"]["math500"]["n"] == 3 and results["Tiny CoT"]["lab"]["n"] == 4
    assert results["Tiny CoT"]["math500"]["max_new_tokens"] == 6
    samples = [json.loads(line) for line in (out / "samples/Tiny_CoT/math500.jsonl").read_text().splitlines()]
    assert samples[0]["prompt"].startswith("Solve the following math problem.")
    assert {"extracted_robust", "extracted_paper", "correct_robust", "correct_paper", "n_tokens", "finish_reason", "reflection"} <= set(samples[0])
    assert all(0 < s["n_tokens"] <= 6 for s in samples)
    assert manifest.counts["samples"] == 7
    lab = [json.loads(line) for line in (out / "samples/Tiny_CoT/lab.jsonl").read_text().splitlines()]
    assert lab[0]["prompt"].endswith("within \\boxed{}.")  # the lab uses MiCoTA's generation prompt

    def no_engine(_config):
        raise AssertionError("a finished evaluation must not generate again")

    use_engine(no_engine)
    assert run(cfg).config_sha256 == manifest.config_sha256


class OracleEngine:
    """Answers lab-0 and lab-2 with their gold in a box (lab-1, lab-3 wrongly) and adds two reflection words."""

    def __init__(self, config):
        self.config = config

    def generate(self, requests):
        for request in requests:
            digit = int(request.meta["problem_id"][-1]) if request.meta["problem_id"][-1].isdigit() else 0
            answer = request.meta["gold"] if digit % 2 == 0 else "-1"
            text = f"Wait, hmm. Final Answer: \\boxed{{{answer}}}"
            yield Completion(request.id, text, n_tokens=10 + digit, finish_reason="stop")


def test_scores_lengths_and_markers_reach_results(tmp_path, shared_data, lab_file, oracle, use_engine):
    use_engine(OracleEngine)
    cfg = _config(tmp_path, {"Oracle": oracle}, lab_file, data_dir=str(shared_data))
    cfg.engine.engine = "scripted"  # no context guard for engines without a local model
    run(cfg)
    lab = json.loads((tmp_path / "eval/results.json").read_text())["Oracle"]["lab"]
    assert lab["accuracy_robust"] == pytest.approx(0.5) and lab["accuracy_paper"] == pytest.approx(0.5)
    assert lab["mean_tokens"] == pytest.approx(11.5)
    assert lab["reflection_per_response"] == pytest.approx(2.0)
    assert lab["truncation_rate"] == 0.0


def test_context_overflow_fails_before_generating(tmp_path, tiny_model, shared_data, lab_file):
    cfg = _config(tmp_path, {"Tiny": str(tiny_model)}, lab_file, data_dir=str(shared_data))
    cfg.engine.max_new_tokens = 16384
    with pytest.raises(MicotaError, match="never truncated"):
        run(cfg)
    assert not list((tmp_path / "eval").glob("generations/*/*/*"))


def test_lab_benchmark_without_path_or_repeated_names_are_config_errors(tmp_path):
    with pytest.raises(ValueError, match="needs `path:`"):
        EvaluateConfig(out_dir=str(tmp_path), models={"a": "b"}, benchmarks=["lab"])
    with pytest.raises(ValueError, match=r"repeated: \['gsm8k'\]"):
        EvaluateConfig(out_dir=str(tmp_path), models={"a": "b"}, benchmarks=["gsm8k", {"name": "gsm8k", "limit": 3}])


def test_per_benchmark_prompt_and_system_prompt_reach_the_model(tmp_path, shared_data, lab_file, oracle, use_engine):
    seen = []

    class RecordingEngine(OracleEngine):
        def generate(self, requests):
            seen.extend(requests)
            yield from super().generate(requests)

    use_engine(RecordingEngine)
    cfg = _config(tmp_path, {"Oracle": oracle}, lab_file, data_dir=str(shared_data), system_prompt="Be careful.")
    cfg.engine.engine = "scripted"
    cfg.benchmarks[0].prompt = "micota_generation"
    run(cfg)
    math = [r for r in seen if r.meta["benchmark"] == "math500"]
    assert all(r.messages[0] == {"role": "system", "content": "Be careful."} for r in seen)
    assert all(r.messages[1]["content"].endswith("within \\boxed{}.") for r in math)
    sent = {r.meta["problem_id"]: r.messages[1]["content"] for r in math}
    for line in (tmp_path / "eval/samples/Oracle/math500.jsonl").read_text().splitlines():
        record = json.loads(line)
        assert record["prompt_template"] == "micota_generation" and record["prompt"] == sent[record["id"]]


class CrashingEngine(OracleEngine):
    """Dies after three completions, like a killed job."""

    done = 0

    def generate(self, requests):
        for completion in super().generate(requests):
            if self.done == 3:
                raise KeyboardInterrupt
            self.done += 1
            yield completion


def test_interrupted_evaluation_resumes_without_regenerating(tmp_path, shared_data, lab_file, oracle, use_engine):
    cfg = _config(tmp_path, {"Oracle": oracle}, lab_file, data_dir=str(shared_data))
    cfg.engine.engine = "scripted"
    cfg.engine.batch_size = 1  # the writer re-sends a torn batch whole; one request per batch keeps the count exact
    use_engine(CrashingEngine)
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    seen: list[str] = []

    class CountingEngine(OracleEngine):
        def generate(self, requests):
            seen.extend(r.id for r in requests)
            yield from super().generate(requests)

    use_engine(CountingEngine)
    run(cfg)
    assert len(seen) == 7 - 3  # 3 math500 + 4 lab requests, 3 already on disk
    results = json.loads((tmp_path / "eval/results.json").read_text())["Oracle"]
    assert results["math500"]["n"] == 3 and results["lab"]["n"] == 4


def test_engine_model_is_rejected_in_favour_of_models(tmp_path):
    with pytest.raises(ValueError, match="evaluate takes its models from `models:`"):
        EvaluateConfig(out_dir=str(tmp_path), models={"a": "b"}, benchmarks=["gsm8k"], engine={"model": "x"})


class GoldEngine(OracleEngine):
    """Boxes every problem's clean gold, as the papers' prompt asks."""

    def generate(self, requests):
        for request in requests:
            yield Completion(request.id, f"Final Answer: \\boxed{{{request.meta['gold']}}}", n_tokens=5, finish_reason="stop")


def test_paper_scores_golds_as_the_papers_harness_does(tmp_path, shared_data, oracle, use_engine):
    """Each scoring mode gets its own gold: AMC's float `27.0` and AIME's `025` match a boxed `27`/`25` in paper mode
    (the tasks' leading-zero rule), OlympiadBench's 266 `$`-wrapped `final_answer[0]` golds never match there."""
    use_engine(GoldEngine)
    cfg = EvaluateConfig(out_dir=str(tmp_path / "eval"), models={"Gold": oracle}, data_dir=str(shared_data),
                         benchmarks=["amc23", "aime24", "olympiadbench"], engine={"engine": "scripted"}, progress=False)
    run(cfg)
    results = json.loads((tmp_path / "eval/results.json").read_text())["Gold"]
    assert {b: r["accuracy_robust"] for b, r in results.items()} == {"amc23": 1.0, "aime24": 1.0, "olympiadbench": 1.0}
    assert results["amc23"]["accuracy_paper"] == 1.0 and results["aime24"]["accuracy_paper"] == 1.0
    assert results["olympiadbench"]["accuracy_paper"] == pytest.approx((675 - 266) / 675)
    amc = json.loads((tmp_path / "eval/samples/Gold/amc23.jsonl").read_text().splitlines()[0])
    assert amc["reason_paper"].startswith("AMC match")
