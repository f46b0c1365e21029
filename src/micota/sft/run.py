"""The ``sft`` stage: full fine-tuning with TRL's SFTTrainer, resumable, on one process or many.

Output folder: ``model/`` (one complete HF folder: safetensors, config, generation config,
tokenizer, also after ZeRO-3 or FSDP), ``log_history.json`` (the trainer's loss/lr log),
``train.log`` (the launched ranks' output; inline: one JSON line per trainer log),
``dropped.json`` (ids of samples over ``max_length``), ``manifest.json``.

Defaults are the MiCoTA paper's TA setting (appendix 6.2): lr 1e-5 cosine, weight decay 0.01,
2 epochs, global batch 32. The paper's students differ: for the R1-Distill-Qwen-32B teacher
they train with batch 128 (96 for the 1.5B student), peak lr 2e-5, up to 3 epochs; a recipe
sets those per student.

How it runs is placement, outside the config hash: ``launcher`` x ``distributed`` x
``num_processes`` (see :mod:`micota.sft.launch`), attention kernel, Liger kernels, gradient
checkpointing, padding-free batching, micro batch size and loggers change speed and memory,
not what is learned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import Field, field_validator, model_validator

from micota.config import NOT_HASHED, StrictModel
from micota.errors import MicotaError, MissingPackage
from micota.hub import check_model_source, load_tokenizer
from micota.manifest import Manifest
from micota.resources import Placement, Resources, visible_gpu_count
from micota.sft.data import check_data_files
from micota.sft.launch import DISTRIBUTED, LAUNCHERS, LaunchPlan, check_precision, launch_plan, module_available, run_launched
from micota.stage import StageResult, run_stage

_PLACE = NOT_HASHED
# report_to row -> modules that provide it (any one suffices)
REPORTERS: dict[str, tuple[str, ...]] = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}


class SFTConfig(StrictModel):
    """Fine-tune ``model`` on the chat samples in ``data``."""

    out_dir: Path = Field(json_schema_extra=NOT_HASHED)
    model: str  # HF hub id or local model folder to start from
    tokenizer: Optional[str] = None  # defaults to `model`
    data: list[Path]  # JSONL files with chat `messages` (last turn = assistant target)
    max_length: int = Field(16384, ge=8)  # tokens (prompt + response); longer samples are dropped, never cut
    learning_rate: float = Field(1e-5, gt=0)  # MiCoTA TA: 1e-5 (students with the R1 teacher: 2e-5)
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)  # share of steps with linear warm-up
    weight_decay: float = Field(0.01, ge=0.0)  # MiCoTA: 0.01
    epochs: float = Field(2.0, gt=0)  # MiCoTA TA: 2 (students with the R1 teacher: up to 3)
    max_steps: Optional[int] = Field(None, ge=1)  # overrides epochs when set
    global_batch_size: int = Field(32, ge=1)  # samples per optimizer step over all processes (MiCoTA TA: 32; students: 128)
    micro_batch_size: int = Field(1, ge=1, json_schema_extra=_PLACE)  # samples per process per forward; the loss is
    # normalised over the whole global batch's tokens, so this changes memory, not the update
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    save_steps: Optional[int] = Field(None, ge=1)  # checkpoint every N steps (None: once per epoch)
    keep_checkpoints: bool = False  # keep checkpoints/ after a successful run
    logging_steps: int = Field(10, ge=1)
    seed: int = 42
    trust_remote_code: bool = False
    # --- placement and speed (not hashed)
    launcher: Literal["auto", "inline", "torchrun", "accelerate"] = Field("auto", json_schema_extra=_PLACE)  # auto:
    # inline for one process, accelerate on GPUs, torchrun on CPU
    distributed: Literal["ddp", "zero3", "fsdp"] = Field("ddp", json_schema_extra=_PLACE)  # packaged accelerate config
    num_processes: Union[int, Literal["auto"]] = Field("auto", json_schema_extra=_PLACE)  # auto: GPUs of `resources`,
    # else resources.cpu_processes
    resources: Resources = Field(default_factory=Resources, json_schema_extra=_PLACE)
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2"] = Field("sdpa", json_schema_extra=_PLACE)
    use_liger_kernel: bool = Field(False, json_schema_extra=_PLACE)  # Liger's fused RMSNorm/RoPE/SwiGLU (GPU, liger-kernel)
    gradient_checkpointing: bool = Field(False, json_schema_extra=_PLACE)  # recompute activations: less memory on long CoT
    padding_free: bool = Field(False, json_schema_extra=_PLACE)  # one flat sequence per micro batch with position ids;
    # no attention across samples (same loss as padding: tests/sft/test_sft_options.py)
    report_to: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list, json_schema_extra=_PLACE)
    progress: bool = Field(True, json_schema_extra=NOT_HASHED)  # progress bars (and the ranks' output on the console)

    @model_validator(mode="before")
    @classmethod
    def _no_deepspeed_path(cls, data: Any) -> Any:
        if isinstance(data, dict) and "deepspeed" in data:
            raise ValueError(
                f"`deepspeed: {data['deepspeed']}` is gone: the stage launches its own processes. Use `distributed: zero3` "
                "(a DeepSpeed ZeRO-3 accelerate config shipped with micota) and let `num_processes`/`resources` size it."
            )
        return data

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, Path)) else value

    @field_validator("num_processes")
    @classmethod
    def _positive(cls, value: Any) -> Any:
        if value != "auto" and value < 1:
            raise ValueError(f"num_processes must be >= 1 or 'auto', got {value}")
        return value

    @model_validator(mode="after")
    def _batch_divides(self) -> "SFTConfig":
        processes = self.num_processes if self.num_processes != "auto" else 1  # auto: checked again in preflight
        _check_batch(self, processes)
        return self


def _check_batch(cfg: SFTConfig, processes: int) -> None:
    per_step = cfg.micro_batch_size * processes
    if cfg.global_batch_size % per_step:
        raise ValueError(
            f"global_batch_size ({cfg.global_batch_size}) must be a multiple of micro_batch_size x processes "
            f"({cfg.micro_batch_size} x {processes} = {per_step}); change micro_batch_size or global_batch_size"
        )


def run(cfg: SFTConfig) -> Manifest:
    """Train (resuming from the last checkpoint of an interrupted same-config run) and save the model."""
    check_model_source(cfg.model, field="sft.model", need_tokenizer=cfg.tokenizer is None)
    preflight(cfg)
    load_tokenizer(cfg.tokenizer or cfg.model, trust_remote_code=cfg.trust_remote_code, field="sft.tokenizer", model=cfg.model)
    check_data_files(cfg.data)  # an empty dataset fails before the stage folder is touched (or ranks start)
    inputs: dict[str, str | Path] = {f"data[{i}]": p for i, p in enumerate(cfg.data)}
    if Path(cfg.model).exists():
        inputs["model"] = cfg.model
    return run_stage("sft", cfg, cfg.out_dir, inputs, lambda out: _train_stage(cfg, out), resumable=True)


def _train_stage(cfg: SFTConfig, out: Path) -> StageResult:
    from micota.sft.train import CHECKPOINT_DIR, last_complete_checkpoint, train

    last_complete_checkpoint(out / CHECKPOINT_DIR)  # delete what a kill cut short before any rank looks
    plan = launch_plan(cfg)
    if plan.launcher == "inline":
        return train(cfg, out, on_gpu=plan.gpus > 0)
    return StageResult(**run_launched(plan, out, echo=cfg.progress))


def placement(cfg: SFTConfig) -> Placement:
    """How the stage will run on this machine (``micota run --dry-run``)."""
    plan = launch_plan(cfg)
    return Placement(processes=plan.processes, gpus=plan.gpus, data_parallel=plan.processes, note=plan.describe())


def preflight(cfg: SFTConfig) -> None:
    """Cheap checks before any stage of a run starts; each error names the field and the fix."""
    plan = launch_plan(cfg)
    missing: Optional[MissingPackage] = None  # raised last, so planning for another node still checks the rest
    for check in (_check_launcher, _check_gpus, _check_kernels):
        try:
            check(cfg, plan)
        except MissingPackage as exc:
            missing = missing or exc
    try:
        _check_batch(cfg, plan.processes)
    except ValueError as exc:
        raise MicotaError(f"sft ({cfg.out_dir}): {exc}.") from None
    model = Path(cfg.model)
    if model.exists() and not model.resolve().is_relative_to(Path(cfg.out_dir).resolve().parent):
        # a damaged download fails before any stage of the run; a model an earlier stage of this run
        # makes is checked when this stage starts (that stage may still rewrite it)
        check_model_source(cfg.model, field="sft.model", need_tokenizer=cfg.tokenizer is None)
    if missing is not None:
        raise missing


def _check_launcher(cfg: SFTConfig, plan: LaunchPlan) -> None:
    import os

    where = f"sft ({cfg.out_dir})"
    row = LAUNCHERS[plan.launcher]
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank would prepare the folder and launch its own ranks
        raise MicotaError(
            f"{where}: started under a launcher (WORLD_SIZE={os.environ['WORLD_SIZE']}). The stage launches its own "
            "ranks: run `micota sft` / `micota run` as one process and size it with num_processes or resources."
        )
    if plan.launcher == "inline" and plan.processes > 1:
        raise MicotaError(f"{where}: launcher: inline trains in one process, but {plan.processes} are asked; use launcher: auto.")
    if plan.launcher == "inline" and visible_gpu_count() > 1:
        raise MicotaError(
            f"{where}: launcher: inline sees {visible_gpu_count()} GPUs, and TRL refuses the nn.DataParallel the Trainer would "
            "use; use launcher: auto (a child process on one GPU) or set CUDA_VISIBLE_DEVICES to one GPU."
        )
    if plan.launcher not in DISTRIBUTED[cfg.distributed].launchers:
        allowed = " or ".join(DISTRIBUTED[cfg.distributed].launchers)
        raise MicotaError(f"{where}: distributed: {cfg.distributed} runs under launcher: {allowed}, not {plan.launcher}.")
    if row.module and not module_available(row.module.split(".")[0]):
        package = row.module.split(".")[0]
        raise MissingPackage(f"{where}: launcher: {plan.launcher} needs the {package} package; pip install it.", package=package)
    for module in DISTRIBUTED[cfg.distributed].needs:
        if not module_available(module):
            raise MissingPackage(f"{where}: distributed: {cfg.distributed} needs the {module} package (pip install {module}).",
                                 package=module)


def _check_gpus(cfg: SFTConfig, plan: LaunchPlan) -> None:
    where = f"sft ({cfg.out_dir})"
    visible = visible_gpu_count()
    if cfg.resources.gpus != "auto" and cfg.resources.gpus > visible:
        raise MicotaError(f"{where}: resources.gpus: {cfg.resources.gpus} but {visible} GPU(s) are visible; lower it or use auto.")
    if plan.gpus and plan.processes > cfg.resources.gpu_count():
        raise MicotaError(
            f"{where}: num_processes: {plan.processes} but the stage may use {cfg.resources.gpu_count()} GPU(s); "
            "one process per GPU: lower num_processes or use auto."
        )
    check_precision(cfg.precision, on_gpu=plan.gpus > 0)
    if cfg.distributed != "ddp" and not plan.gpus:
        raise MicotaError(f"{where}: distributed: {cfg.distributed} shards the model over GPUs, none is in use; use ddp on CPU.")


def _check_kernels(cfg: SFTConfig, plan: LaunchPlan) -> None:
    where = f"sft ({cfg.out_dir})"
    if cfg.attn_implementation == "flash_attention_2" and not plan.gpus:
        raise MicotaError(f"{where}: attn_implementation: flash_attention_2 but no GPU is in use; use attn_implementation: sdpa.")
    if cfg.attn_implementation == "flash_attention_2" and not module_available("flash_attn"):
        raise MissingPackage(f"{where}: attn_implementation: flash_attention_2 but the flash-attn package is not installed "
                             "(pip install micota[flash]); or use attn_implementation: sdpa.", package="flash-attn")
    if cfg.use_liger_kernel and not plan.gpus:
        raise MicotaError(f"{where}: use_liger_kernel: true but no GPU is in use; set use_liger_kernel: false.")
    if cfg.use_liger_kernel and not module_available("liger_kernel"):
        raise MissingPackage(f"{where}: use_liger_kernel: true but the liger-kernel package is not installed "
                             "(pip install liger-kernel); or set use_liger_kernel: false.", package="liger-kernel")
    for name in cfg.report_to:
        if not any(module_available(m) for m in REPORTERS[name]):
            package = REPORTERS[name][0]
            raise MissingPackage(f"{where}: report_to: {name} needs the {package} package (pip install {package}).", package=package)
