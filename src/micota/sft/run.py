"""The ``sft`` stage: full fine-tuning with TRL's SFTTrainer, resumable from checkpoints.

Output folder: ``model/`` (HF folder: safetensors, config, generation config, tokenizer),
``log_history.json`` (the trainer's loss/lr log), ``dropped.json`` (ids of samples over
``max_length``), ``manifest.json``. Defaults are the MiCoTA paper's TA/student settings:
lr 1e-5 cosine, weight decay 0.01, 2 epochs, global batch 32.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from micota.config import NOT_HASHED, StrictModel
from micota.errors import MicotaError
from micota.hub import check_model_source, load_tokenizer
from micota.manifest import Manifest
from micota.sft.data import SFTRows, check_data_files, load_sft_rows
from micota.stage import StageResult, run_stage

MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"


class SFTConfig(StrictModel):
    """Fine-tune ``model`` on the chat samples in ``data``."""

    out_dir: Path = Field(json_schema_extra=NOT_HASHED)
    model: str  # HF hub id or local model folder to start from
    tokenizer: Optional[str] = None  # defaults to `model`
    data: list[Path]  # JSONL files with chat `messages` (last turn = assistant target)
    max_length: int = Field(16384, ge=8)  # tokens (prompt + response); longer samples are dropped, never cut
    learning_rate: float = Field(1e-5, gt=0)  # paper: 1e-5
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = "cosine"
    warmup_ratio: float = Field(0.0, ge=0.0, lt=1.0)  # share of steps with linear warm-up
    weight_decay: float = Field(0.01, ge=0.0)  # paper: 0.01
    epochs: float = Field(2.0, gt=0)  # paper: 2
    max_steps: Optional[int] = Field(None, ge=1)  # overrides epochs when set
    global_batch_size: int = Field(32, ge=1)  # samples per optimizer step over all devices (paper: 32)
    micro_batch_size: int = Field(1, ge=1)  # samples per device per forward pass
    precision: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # auto: bf16 on GPU, fp32 on CPU
    gradient_checkpointing: bool = False  # trade compute for memory on long CoT
    save_steps: Optional[int] = Field(None, ge=1)  # checkpoint every N steps (None: once per epoch)
    keep_checkpoints: bool = False  # keep checkpoints/ after a successful run
    logging_steps: int = Field(10, ge=1)
    seed: int = 42
    deepspeed: Optional[Path] = None  # DeepSpeed JSON for multi-GPU (launch with accelerate/deepspeed)
    trust_remote_code: bool = False
    progress: bool = Field(True, json_schema_extra=NOT_HASHED)  # progress bars

    @field_validator("data", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, Path)) else value

    @model_validator(mode="after")
    def _batch_divides(self) -> "SFTConfig":
        per_step = self.micro_batch_size * world_size()
        if self.global_batch_size % per_step:
            raise ValueError(
                f"global_batch_size ({self.global_batch_size}) must be a multiple of micro_batch_size x devices "
                f"({self.micro_batch_size} x {world_size()} = {per_step}); change micro_batch_size or global_batch_size"
            )
        return self


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def run(cfg: SFTConfig) -> Manifest:
    """Train (resuming from the last checkpoint of an interrupted same-config run) and save the model."""
    check_model_source(cfg.model, field="sft.model", need_tokenizer=cfg.tokenizer is None)
    load_tokenizer(cfg.tokenizer or cfg.model, trust_remote_code=cfg.trust_remote_code, field="sft.tokenizer", model=cfg.model)
    check_data_files(cfg.data)  # an empty dataset fails before the stage folder is touched
    inputs: dict[str, str | Path] = {f"data[{i}]": p for i, p in enumerate(cfg.data)}
    if Path(cfg.model).exists():
        inputs["model"] = cfg.model
    return run_stage("sft", cfg, cfg.out_dir, inputs, lambda out: _train(cfg, out), resumable=True)


def _train(cfg: SFTConfig, out: Path) -> StageResult:
    from datasets import Dataset
    from trl import SFTTrainer

    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model, trust_remote_code=cfg.trust_remote_code, field="sft.tokenizer")
    data = load_sft_rows(cfg.data, tokenizer, cfg.max_length)
    if not data.rows:
        files = ", ".join(str(p) for p in cfg.data)
        if not data.dropped_too_long:
            raise MicotaError(f"sft: the training data is empty ({files}). If a filter stage made it, its dropped.jsonl says why.")
        raise MicotaError(f"sft: none of the {len(data.dropped_too_long)} samples in {files} fits max_length={cfg.max_length}; raise max_length.")
    (out / "dropped.json").write_text(json.dumps({"too_long": data.dropped_too_long}, indent=1))
    trainer = SFTTrainer(
        model=_load_model(cfg),
        args=_trainer_args(cfg, out),
        train_dataset=Dataset.from_list(data.rows),
        processing_class=tokenizer,
    )
    resume_from = last_complete_checkpoint(out / CHECKPOINT_DIR)
    resume_step = int(resume_from.name.rsplit("-", 1)[1]) if resume_from else 0
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    trainer.save_model(str(out / MODEL_DIR))
    tokenizer.save_pretrained(out / MODEL_DIR)
    (out / "log_history.json").write_text(json.dumps(trainer.state.log_history, indent=1))
    if not cfg.keep_checkpoints:
        shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    return StageResult(
        outputs={"model": MODEL_DIR, "log_history": "log_history.json"},
        counts=_counts(data),
        metrics={"train_loss": round(result.training_loss, 5), "steps": trainer.state.global_step, "resumed_from_step": resume_step},
    )


def last_complete_checkpoint(folder: Path) -> Optional[Path]:
    """The newest checkpoint a kill did not cut short; incomplete ones are deleted.

    The Trainer writes ``trainer_state.json`` last, so a checkpoint is complete when that file
    parses. Passing ``resume_from_checkpoint=True`` instead would pick the newest folder, which a
    SIGKILL during saving leaves half-written (found by tests/sft/test_sft_resume.py).
    """
    complete: dict[int, Path] = {}
    for path in folder.glob("checkpoint-*"):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            shutil.rmtree(path, ignore_errors=True)
            continue
        complete[int(path.name.rsplit("-", 1)[1])] = path
    return complete[max(complete)] if complete else None


def _counts(data: SFTRows) -> dict[str, int]:
    return {"samples": len(data.rows), "dropped_too_long": len(data.dropped_too_long), "tokens": data.tokens}


def _load_model(cfg: SFTConfig) -> Any:
    from micota.hub import load_causal_lm

    model = load_causal_lm(cfg.model, dtype="float32", device="cpu", trust_remote_code=cfg.trust_remote_code, field="sft.model")
    return model.train()


def _trainer_args(cfg: SFTConfig, out: Path) -> Any:
    import torch
    from trl import SFTConfig as TRLConfig

    on_gpu = torch.cuda.is_available()
    precision = cfg.precision if cfg.precision != "auto" else ("bf16" if on_gpu else "fp32")
    if precision in ("bf16", "fp16") and not on_gpu:
        raise MicotaError(f"sft.precision: {precision} training needs a GPU here; use precision: fp32 (or auto) on CPU.")
    return TRLConfig(
        output_dir=str(out / CHECKPOINT_DIR),
        max_length=None,  # lengths were checked in load_sft_rows: nothing is ever truncated
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        **_warmup_kwargs(TRLConfig, cfg.warmup_ratio),
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=cfg.global_batch_size // (cfg.micro_batch_size * world_size()),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        **({"gradient_checkpointing": True} if cfg.gradient_checkpointing else {}),
        save_strategy="steps" if cfg.save_steps else "epoch",
        save_steps=cfg.save_steps or 500,
        save_total_limit=1,
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        deepspeed=str(cfg.deepspeed) if cfg.deepspeed else None,
        report_to=[],
        use_cpu=not on_gpu,
        disable_tqdm=not cfg.progress,
        dataloader_num_workers=0,
    )


def _warmup_kwargs(args_class: Any, ratio: float) -> dict[str, float]:
    # transformers 5 folded `warmup_ratio` into a float `warmup_steps` in [0, 1); 4.x has both.
    import dataclasses

    names = {f.name for f in dataclasses.fields(args_class)}
    return {"warmup_ratio": ratio} if "warmup_ratio" in names else {"warmup_steps": ratio}
