"""Engine placement: auto data parallelism, the plan --dry-run prints, and the checks before any work."""

from __future__ import annotations

import json

import pytest

from micota.errors import MicotaError
from micota.generate import EngineConfig
from micota.generate import placement as placement_module
from micota.generate.memory import check_fits, estimated_parameters, safetensors_counts
from micota.generate.placement import check_engine, engine_placement, resolve_engine
from micota.generate.run import GenerateConfig, preflight
from micota.resources import Resources

QWEN25_32B = {"hidden_size": 5120, "num_hidden_layers": 64, "num_attention_heads": 40, "num_key_value_heads": 8,
              "intermediate_size": 27648, "vocab_size": 152064, "tie_word_embeddings": False,
              "max_position_embeddings": 32768, "torch_dtype": "bfloat16"}
GPU_80GB = 80 * 10**9


@pytest.fixture
def qwen32b(tmp_path):
    """A folder with only Qwen2.5-32B's config.json: enough to estimate, nothing to load."""
    (tmp_path / "qwen32b").mkdir()
    (tmp_path / "qwen32b" / "config.json").write_text(json.dumps(QWEN25_32B))
    return str(tmp_path / "qwen32b")


def test_auto_data_parallel_fills_the_gpus_given():
    eight = Resources(gpus=8)
    assert resolve_engine(EngineConfig(model="m", engine="vllm", tensor_parallel_size=2, data_parallel_size="auto"), eight).data_parallel_size == 4
    assert resolve_engine(EngineConfig(model="m", data_parallel_size="auto"), eight).data_parallel_size == 8
    assert resolve_engine(EngineConfig(model="m", data_parallel_size="auto", device_map="auto"), eight).data_parallel_size == 1
    cpu = Resources(gpus=0, cpu_processes=3)
    assert resolve_engine(EngineConfig(model="m", data_parallel_size="auto"), cpu).data_parallel_size == 3
    assert resolve_engine(EngineConfig(model="m", engine="vllm", data_parallel_size="auto"), cpu).data_parallel_size == 1
    assert resolve_engine(EngineConfig(model="m", engine="openai", data_parallel_size="auto"), eight).data_parallel_size == 1
    assert resolve_engine(EngineConfig(model="m", data_parallel_size=2), eight).data_parallel_size == 2


def test_placement_is_what_dry_run_prints():
    plan = engine_placement(EngineConfig(model="m", engine="vllm", tensor_parallel_size=2, data_parallel_size="auto"), Resources(gpus=8))
    assert (plan.processes, plan.gpus, plan.tensor_parallel, plan.data_parallel) == (4, 8, 2, 4)
    assert plan.describe() == "4 processes, 8 GPUs, TP 2 x DP 4, engine vllm"
    assert engine_placement(EngineConfig(model="m"), Resources(gpus=0)).describe() == "1 process, CPU, engine hf"


def test_bad_placements_fail_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setattr(placement_module, "visible_gpu_count", lambda: 8)
    monkeypatch.setattr(placement_module, "vllm_installed", lambda: True)
    vllm = EngineConfig(model=str(tmp_path / "made-later"), engine="vllm", tensor_parallel_size=4, data_parallel_size="auto")
    with pytest.raises(MicotaError, match=r"tensor_parallel_size 4 x pipeline_parallel_size 1 = 4 does not divide the 6 GPUs"):
        check_engine(vllm, Resources(gpus=6))
    with pytest.raises(MicotaError, match=r"resources.gpus: 16 GPUs asked, 8 visible"):
        check_engine(vllm, Resources(gpus=16))
    with pytest.raises(MicotaError, match=r"data_parallel_size: 3 replicas x 4 GPUs each = 12 GPUs, but 8 are given"):
        check_engine(vllm.model_copy(update={"data_parallel_size": 3}), Resources(gpus=8))
    check_engine(vllm, Resources(gpus=8))  # 2 replicas of TP 4; the model is made by an earlier stage, not checked yet


def test_vllm_missing_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(placement_module, "vllm_installed", lambda: False)
    cfg = GenerateConfig(out_dir=tmp_path / "gen", prompts=tmp_path / "gen" / "../earlier/data.jsonl",
                         engine=EngineConfig(model="Qwen/Qwen2.5-32B-Instruct", engine="vllm"))
    with pytest.raises(MicotaError, match=r"vllm is not installed .* pip install vllm==0\.32\.0 .* scripts/vllm_cpu_env\.sh"):
        preflight(cfg)
    with pytest.raises(MicotaError, match=r"prompts: .*nope.jsonl' does not exist"):
        preflight(cfg.model_copy(update={"prompts": tmp_path / "elsewhere" / "nope.jsonl", "out_dir": tmp_path / "run" / "gen"}))


def test_model_that_does_not_fit_names_the_numbers_and_the_fix(qwen32b):
    vllm = EngineConfig(model=qwen32b, engine="vllm", max_model_len=16384, data_parallel_size=1)
    check_fits(vllm.model_copy(update={"tensor_parallel_size": 2}), 8, gpu_memory_bytes=GPU_80GB)  # the paper's TP 2
    check_fits(vllm, 8, gpu_memory_bytes=GPU_80GB)  # 61 GiB + 4 GiB in 0.9 x 74.5 GiB: fits on one 80 GB GPU
    with pytest.raises(MicotaError, match=r"61\.0 GiB of weights \+ 4\.0 GiB of KV cache .* Fix: raise tensor_parallel_size"):
        check_fits(vllm, 8, gpu_memory_bytes=40 * 10**9)
    hf = EngineConfig(model=qwen32b, batch_size=64, max_new_tokens=16384, dtype="bfloat16", data_parallel_size=8)
    with pytest.raises(MicotaError, match=r"264\.0 GiB of KV cache for batch_size 64 .* lower batch_size to 3"):
        check_fits(hf, 8, gpu_memory_bytes=GPU_80GB)
    with pytest.raises(MicotaError, match=r"kv_cache_memory_gb: 1 GiB holds fewer than the 16384 tokens"):
        check_fits(vllm, 0)


def test_parameter_counts(qwen32b, tiny_model):
    assert round(estimated_parameters(QWEN25_32B) / 1e9, 2) == 32.76  # Qwen2.5-32B's model card: 32.5B (+ embeddings)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model)
    assert sum(safetensors_counts(tiny_model).values()) == model.num_parameters()


def test_vllm_engine_without_vllm_names_the_install(tiny_model):
    from micota.generate import load_engine
    from micota.generate.placement import vllm_installed

    if vllm_installed():
        pytest.skip("vllm is installed in this Python")
    with pytest.raises(MicotaError, match=r"engine: vllm needs the vllm package.*pip install vllm==0\.32\.0.*scripts/vllm_cpu_env\.sh"):
        load_engine(EngineConfig(model=str(tiny_model), engine="vllm"))
