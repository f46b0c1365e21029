import json

import pytest

from micota.config import validate_config
from micota.errors import MicotaError
from micota.lab.run import LabConfig, run
from micota.lab.task import is_eval, parse_problem, solve


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_lab_stage_writes_everything_and_skips_rerun(tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = LabConfig(out_dir=str(tmp_path / "lab"), n_train_prompts=30, n_eval=20, n_dev=10, n_instruct=40, model_sizes=["student"])
    manifest = run(cfg)
    out = tmp_path / "lab"
    assert manifest.counts == {"prompts": 30, "bench": 20, "dev": 10, "instruct": 40, "models": 1}
    AutoTokenizer.from_pretrained(out / "tokenizer")
    AutoModelForCausalLM.from_pretrained(out / "models" / "student")
    prompts, bench, instruct = (_read(out / f"{n}.jsonl") for n in ("prompts", "bench", "instruct"))
    assert all(str(solve(parse_problem(r["problem"]))) == r["answer"] for r in prompts + bench)
    assert not any(is_eval(r["problem"]) for r in prompts) and all(is_eval(r["problem"]) for r in bench)
    dev = _read(out / "dev.jsonl")
    assert not any(is_eval(r["problem"]) for r in dev) and {len(parse_problem(r["problem"]).steps) for r in dev} == {3}
    instruct_problems = {parse_problem(r["messages"][0]["content"]).text for r in instruct}
    assert not instruct_problems & {r["problem"] for r in prompts + bench + dev}
    assert not {r["problem"] for r in dev} & {r["problem"] for r in prompts}
    assert {r["style"] for r in instruct} == {"direct", "short"}
    assert all(parse_problem(r["messages"][0]["content"]).text == r["messages"][0]["content"] for r in instruct)  # bare-problem template

    stamp = (out / "manifest.json").stat().st_mtime_ns
    assert run(cfg).config_sha256 == manifest.config_sha256
    assert (out / "manifest.json").stat().st_mtime_ns == stamp  # skipped: nothing rewritten


def test_instruct_chains_can_be_shorter_than_the_benchmark_chains(tmp_path):
    cfg = LabConfig(out_dir=str(tmp_path / "lab"), n_train_prompts=20, n_eval=10, n_dev=5, n_instruct=30, model_sizes=[],
                    min_difficulty=3, max_difficulty=4, instruct_min_difficulty=1, instruct_max_difficulty=2)
    run(cfg)
    lengths = lambda name, key: {len(parse_problem(key(r)).steps) for r in _read(tmp_path / "lab" / name)}
    assert lengths("instruct.jsonl", lambda r: r["messages"][0]["content"]) == {1, 2}
    assert lengths("bench.jsonl", lambda r: r["problem"]) == lengths("dev.jsonl", lambda r: r["problem"]) == {3, 4}


def test_bad_config_is_reported_with_field_and_choices():
    with pytest.raises(MicotaError, match="model_sizes.*unknown model sizes.*available: student"):
        validate_config(LabConfig, {"out_dir": "x", "model_sizes": ["giant"]}, source="recipe.yaml")
    with pytest.raises(MicotaError, match="min_difficulty"):
        validate_config(LabConfig, {"out_dir": "x", "min_difficulty": 4, "max_difficulty": 2}, source="recipe.yaml")


def test_too_small_problem_space_is_a_clear_error(tmp_path):
    cfg = LabConfig(out_dir=str(tmp_path / "lab"), min_difficulty=1, max_difficulty=1, ops="+", model_sizes=[])
    with pytest.raises(MicotaError, match="Lower n_train_prompts"):
        run(cfg)
