"""Launcher and distributed tables, placement and preflight: fast checks, no training."""

from __future__ import annotations

from pathlib import Path

import pytest

import importlib

import micota
from micota.errors import MicotaError
from micota.sft import SFTConfig, launch
from micota.sft.train import model_init_kwargs

run = importlib.import_module("micota.sft.run")  # the package exports the function `run` under the same name


def cfg(tmp_path, **kw):
    base = dict(out_dir=tmp_path / "sft", model="org/model", data=tmp_path / "d.jsonl", global_batch_size=32, micro_batch_size=2)
    return SFTConfig(**{**base, **kw})


@pytest.fixture
def gpus(monkeypatch):
    """Pretend this machine has N visible GPUs."""

    def set_gpus(n: int) -> None:
        for module in (importlib.import_module("micota.resources"), launch, run):  # every place that asks
            monkeypatch.setattr(module, "visible_gpu_count", lambda: n)

    return set_gpus


@pytest.mark.parametrize(
    "visible, fields, expected",
    [
        (0, {}, ("inline", 1, 0)),  # auto on a CPU machine: one process, in the orchestrator
        (0, {"resources": {"cpu_processes": 2}}, ("torchrun", 2, 0)),  # CPU ranks: torchrun
        (0, {"num_processes": 2, "launcher": "accelerate"}, ("accelerate", 2, 0)),
        (1, {}, ("inline", 1, 1)),
        (8, {}, ("accelerate", 8, 8)),  # auto = every visible GPU
        (8, {"resources": {"gpus": 4}}, ("accelerate", 4, 4)),
        (1, {"distributed": "zero3"}, ("accelerate", 1, 1)),  # DeepSpeed needs a launcher even for one process
        (8, {"resources": {"gpus": 0, "cpu_processes": 2}}, ("torchrun", 2, 0)),  # GPUs visible but not asked for
        (8, {"num_processes": 1}, ("accelerate", 1, 1)),  # inline would see 8 GPUs (DataParallel): a child on one
    ],
)
def test_launch_plan_rows(tmp_path, gpus, visible, fields, expected):
    gpus(visible)
    plan = launch.launch_plan(cfg(tmp_path, **fields))
    assert (plan.launcher, plan.processes, plan.gpus) == expected


def test_accelerate_command_uses_packaged_config_and_never_cpu_flag(tmp_path, gpus):
    gpus(8)
    for name in launch.DISTRIBUTED:
        plan = launch.launch_plan(cfg(tmp_path, distributed=name))
        command = launch.launch_command(plan, tmp_path / "sft" / "config.yaml")
        config_file = Path(command[command.index("--config_file") + 1])
        assert config_file.is_file() and config_file.name == f"{name}.yaml"
        assert Path(micota.__file__).parent in config_file.parents  # inside the package, not the cwd
        assert command[command.index("--num_processes") + 1] == "8" and "--cpu" not in command
        assert command[command.index("--mixed_precision") + 1] == "bf16"
        assert command[-4:] == ["micota.sft.worker", str(tmp_path / "sft" / "config.yaml"), "--processes", "8"]


def test_accelerate_configs_parse_and_name_their_distributed_type():
    import yaml

    kinds = {"ddp": "MULTI_GPU", "zero3": "DEEPSPEED", "fsdp": "FSDP"}
    for name, kind in kinds.items():
        data = yaml.safe_load(launch.accelerate_config_path(name).read_text())
        assert data["distributed_type"] == kind
    zero3 = yaml.safe_load(launch.accelerate_config_path("zero3").read_text())["deepspeed_config"]
    assert zero3["zero_stage"] == 3 and zero3["zero3_init_flag"] and zero3["zero3_save_16bit_model"]


def test_torchrun_command(tmp_path):
    plan = launch.launch_plan(cfg(tmp_path, num_processes=2, resources={"gpus": 0}))
    command = launch.launch_command(plan, Path("c.yaml"))
    assert command[1:3] == ["-m", "torch.distributed.run"] and "--standalone" in command
    assert command[command.index("--nproc-per-node") + 1] == "2"


def test_placement_is_what_dry_run_prints(tmp_path, gpus):
    gpus(8)
    assert run.placement(cfg(tmp_path, distributed="zero3")).describe() == "8 processes, 8 GPUs, TP 1 x DP 8, accelerate launch, zero3"
    gpus(0)
    assert run.placement(cfg(tmp_path, precision="bf16")).describe() == "1 process, CPU, inline (in the orchestrator)"


@pytest.mark.parametrize(
    "visible, fields, message",
    [
        (0, {"launcher": "inline", "num_processes": 2}, "launcher: inline trains in one process"),
        (4, {"launcher": "inline", "num_processes": 1}, "launcher: inline sees 4 GPUs, and TRL refuses the nn.DataParallel"),
        (8, {"launcher": "torchrun", "distributed": "zero3"}, "distributed: zero3 runs under launcher: accelerate"),
        (2, {"num_processes": 4}, "num_processes: 4 but the stage may use 2 GPU"),
        (2, {"resources": {"gpus": 4}}, "resources.gpus: 4 but 2 GPU"),
        (0, {"resources": {"cpu_processes": 3}}, r"multiple of micro_batch_size x processes \(2 x 3 = 6\)"),
        (0, {"precision": "bf16"}, "bf16 training needs a GPU"),
        (0, {"distributed": "fsdp", "num_processes": 2}, "fsdp shards the model over GPUs"),
        (0, {"attn_implementation": "flash_attention_2"}, "flash_attention_2 but no GPU is in use"),
        (1, {"attn_implementation": "flash_attention_2"}, r"flash-attn package is not installed \(pip install micota\[flash\]\)"),
        (1, {"use_liger_kernel": True}, "liger-kernel package is not installed"),
        (0, {"report_to": ["wandb"]}, r"report_to: wandb needs the wandb package"),
        (0, {"report_to": ["tensorboard"]}, r"report_to: tensorboard needs the tensorboard package"),
    ],
)
def test_preflight_names_field_and_fix(tmp_path, gpus, monkeypatch, visible, fields, message):
    gpus(visible)
    installed = {"accelerate", "torch"}  # flash_attn, liger_kernel, wandb, tensorboard: missing here on purpose
    monkeypatch.setattr(run, "module_available", lambda name: name in installed)
    with pytest.raises(MicotaError, match=message):
        run.preflight(cfg(tmp_path, **fields))


def test_preflight_passes_a_sound_gpu_plan(tmp_path, gpus, monkeypatch):
    gpus(8)
    monkeypatch.setattr(run, "module_available", lambda name: True)
    run.preflight(cfg(tmp_path, distributed="zero3", attn_implementation="flash_attention_2", use_liger_kernel=True,
                      report_to=["tensorboard", "wandb"]))


def test_old_deepspeed_path_and_bad_batch_are_config_errors(tmp_path):
    with pytest.raises(ValueError, match="distributed: zero3"):
        cfg(tmp_path, deepspeed="recipes/deepspeed/zero3.json")
    with pytest.raises(ValueError, match=r"\(2 x 4 = 8\)"):
        cfg(tmp_path, num_processes=4, global_batch_size=12)


def test_weights_load_fp32_unless_the_setup_keeps_fp32_masters(tmp_path):
    assert model_init_kwargs(cfg(tmp_path), on_gpu=False)["dtype"] == "float32"
    assert model_init_kwargs(cfg(tmp_path), on_gpu=True)["dtype"] == "float32"  # ddp: fp32 master weights, bf16 autocast
    assert model_init_kwargs(cfg(tmp_path, distributed="zero3"), on_gpu=True)["dtype"] == "bfloat16"  # shards at load
    kwargs = model_init_kwargs(cfg(tmp_path, attn_implementation="eager"), on_gpu=True)
    assert kwargs["attn_implementation"] == "eager" and kwargs["device_map"] is None


def test_placement_fields_stay_out_of_the_config_hash(tmp_path):
    from micota.config import config_sha256

    base = config_sha256(cfg(tmp_path))
    for field, value in [("launcher", "torchrun"), ("distributed", "zero3"), ("num_processes", 2), ("micro_batch_size", 4),
                         ("gradient_checkpointing", True), ("padding_free", True), ("attn_implementation", "eager"),
                         ("use_liger_kernel", True), ("report_to", ["wandb"]), ("resources", {"gpus": 2})]:
        assert config_sha256(cfg(tmp_path, **{field: value})) == base, field
    assert config_sha256(cfg(tmp_path, learning_rate=2e-5)) != base


def test_preflight_refuses_to_run_inside_a_launcher(tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    with pytest.raises(MicotaError, match="started under a launcher .WORLD_SIZE=8.. The stage launches its own ranks"):
        run.preflight(cfg(tmp_path))


def test_failure_cause_is_the_ranks_exception_not_the_launcher_trace(tmp_path):
    log = tmp_path / "train.log"
    log.write_text("$ python -m torch.distributed.run ...\n[rank1]: Traceback (most recent call last):\n"
                   "[rank1]: torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n"
                   "torch.distributed.elastic.multiprocessing.errors.ChildFailedError: \n")
    assert launch._cause(log) == " (torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB)"
    log.write_text(f"noise\n{launch.ERROR_MARK}sft: the training data is empty (d.jsonl).\nValueError: later\n")
    assert launch._cause(log) == ": sft: the training data is empty (d.jsonl)."
    log.write_text("nothing useful\n")
    assert launch._cause(log) == ""


def test_ranks_see_only_the_stages_gpus(gpus, monkeypatch):
    gpus(8)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert launch.stage_devices(2) == "0,1" and launch.stage_devices(0) == ""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3, 5,7")
    assert launch.stage_devices(2) == "3,5"
