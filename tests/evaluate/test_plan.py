"""Planning hooks: per-model engine placement and the checks made before any stage runs."""

from __future__ import annotations

import pytest

from micota.errors import MicotaError
from micota.evaluate import EvaluateConfig, JudgeConfig, run
from micota.evaluate.plan import check_sources, model_engines, placement, preflight


@pytest.fixture()
def gpus(monkeypatch):
    def visible(n):
        monkeypatch.setattr("micota.resources.visible_gpu_count", lambda: n)

    return visible


def _config(tmp_path, models, **extra):
    return EvaluateConfig(**{"out_dir": str(tmp_path / "run" / "evaluate"), "models": models,
                             "benchmarks": ["math500"], "engine": {"engine": "vllm"}, **extra})


def test_per_model_overrides_merge_over_the_shared_engine(tmp_path, gpus):
    gpus(8)
    cfg = _config(tmp_path, {"TA": {"model": "Qwen/Qwen2.5-14B-Instruct", "engine": {"tensor_parallel_size": 4}},
                             "Student": {"model": "Qwen/Qwen2.5-3B-Instruct", "engine": {"batch_size": 8}}},
                  engine={"engine": "vllm", "data_parallel_size": "auto", "max_new_tokens": 100, "batch_size": 64})
    engines = model_engines(cfg)
    assert (engines["TA"].tensor_parallel_size, engines["TA"].data_parallel_size, engines["TA"].batch_size) == (4, 2, 64)
    assert (engines["Student"].tensor_parallel_size, engines["Student"].data_parallel_size) == (1, 8)
    assert engines["Student"].batch_size == 8 and engines["Student"].max_new_tokens == 100
    plan = placement(cfg)
    assert (plan.gpus, plan.tensor_parallel, plan.data_parallel) == (8, 4, 2)
    assert "largest: TA" in plan.note and "TP 1 x DP 8" in plan.note


def test_parallel_sizes_that_do_not_fit_fail_in_preflight(tmp_path, gpus, shared_data):
    gpus(4)
    cfg = _config(tmp_path, {"Big": {"model": "Qwen/Qwen2.5-7B-Instruct", "engine": {"data_parallel_size": 8}}},
                  data_dir=str(shared_data), engine={"engine": "hf"})
    with pytest.raises(MicotaError, match=r"models\.Big\.engine.*data_parallel_size.* 8 GPUs.* 4"):
        preflight(cfg)


def test_cpu_placement_and_judge(tmp_path, gpus):
    gpus(0)
    cfg = _config(tmp_path, {"A": "Qwen/Qwen2.5-3B-Instruct"}, engine={"engine": "hf", "data_parallel_size": "auto"},
                  resources={"cpu_processes": 2})
    plan = placement(cfg)
    assert (plan.processes, plan.gpus, plan.data_parallel) == (2, 0, 2)  # hf workers on CPU
    judged = cfg.model_copy(update={"scoring": ["robust", "paper", "judge"],
                                    "judge": JudgeConfig(engine={"engine": "vllm", "tensor_parallel_size": 2})})
    assert placement(judged).tensor_parallel == 2 and "largest: judge" in placement(judged).note


def test_missing_benchmark_folder_names_benchmark_path_and_fix(tmp_path):
    cfg = _config(tmp_path, {"A": "Qwen/Qwen2.5-3B-Instruct"}, data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(MicotaError, match=r"math500.*nowhere/math500/test.jsonl.*Point data_dir"):
        preflight(cfg)


def test_outputs_of_earlier_stages_may_be_missing_at_planning_but_not_at_run(tmp_path, shared_data):
    produced = tmp_path / "run" / "student-sft" / "model"
    bench = tmp_path / "run" / "lab" / "bench.jsonl"
    cfg = _config(tmp_path, {"Student": str(produced)}, data_dir=str(shared_data), engine={"engine": "hf"},
                  benchmarks=["math500", {"name": "lab", "path": str(bench)}])
    preflight(cfg)  # both are made by stages of the same run
    with pytest.raises(MicotaError, match="lab benchmark file"):
        check_sources(cfg)
    with pytest.raises(MicotaError, match="lab benchmark file"):
        run(cfg)
    elsewhere = _config(tmp_path, {"Student": str(tmp_path / "elsewhere" / "model")}, data_dir=str(shared_data),
                        engine={"engine": "hf"})
    with pytest.raises(MicotaError, match=r"models.Student: model folder .*elsewhere/model.* does not exist"):
        preflight(elsewhere)


def test_hub_ids_pass_online_and_must_be_cached_offline(tmp_path, shared_data, monkeypatch):
    cfg = _config(tmp_path, {"A": "some-org/not-a-cached-model"}, data_dir=str(shared_data), engine={"engine": "hf"})
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    preflight(cfg)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MicotaError, match="not in the local Hugging Face cache and HF_HUB_OFFLINE=1"):
        preflight(cfg)


def test_the_stage_module_carries_the_planner_hooks():
    import importlib

    from micota.evaluate import plan
    from micota.pipeline.recipe import STAGE_KINDS

    module = importlib.import_module(STAGE_KINDS["evaluate"].module)
    assert module.placement is plan.placement and module.preflight is plan.preflight
