"""The training body of the ``sft`` stage; runs in the orchestrator (inline) or in every rank of a launch.

Order matters: the training arguments are built first, because building them starts the
process group and, under DeepSpeed ZeRO-3, makes ``from_pretrained`` load each rank's shard
only. The model is then passed to TRL's SFTTrainer as a path with ``model_init_kwargs`` (dtype,
attention kernel), as open-r1 does, so it is created after the arguments exist. Only rank 0
writes files; the other ranks join the collective save (ZeRO-3 and FSDP gather the full weights
into one HF folder) and wait at a barrier until rank 0 is done.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from micota.errors import MicotaError
from micota.hub import load_tokenizer
from micota.sft.data import SFTRows, load_sft_rows
from micota.sft.launch import DISTRIBUTED, LOG_NAME, check_precision
from micota.stage import StageResult

if TYPE_CHECKING:
    from micota.sft.run import SFTConfig

MODEL_DIR = "model"
CHECKPOINT_DIR = "checkpoints"
TENSORBOARD_DIR = "tensorboard"
_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}


def train(cfg: "SFTConfig", out: Path, *, on_gpu: bool, world_size: int = 1, launched: bool = False) -> Optional[StageResult]:
    """Train and save ``out/model``; rank 0 returns the manifest's result, other ranks None."""
    from datasets import Dataset
    from trl import SFTTrainer

    tokenizer = load_tokenizer(cfg.tokenizer or cfg.model, trust_remote_code=cfg.trust_remote_code, field="sft.tokenizer")
    data = _checked_rows(cfg, tokenizer)  # bad data fails before the process group forms
    args = trainer_args(cfg, out, on_gpu=on_gpu, world_size=world_size)
    main = args.process_index == 0
    if main:
        (out / "dropped.json").write_text(json.dumps({"too_long": data.dropped_too_long}, indent=1))
    trainer = SFTTrainer(
        model=cfg.model,  # created inside the trainer from model_init_kwargs, after the arguments
        args=args,
        train_dataset=Dataset.from_list(data.rows),
        processing_class=tokenizer,
        # launched: the child's output is train.log
        callbacks=[_log_last_step(), *([] if launched else [_train_log(out / LOG_NAME)])],
    )
    resume_from = last_complete_checkpoint(out / CHECKPOINT_DIR, remove_incomplete=False)  # cleaned before launch
    result = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    if trainer.is_fsdp_enabled:  # checkpoints were sharded; the model folder gets the full weights
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(out / MODEL_DIR))  # every rank joins the gather; rank 0 writes weights + tokenizer
    train_loss = mean_step_loss(trainer.state.log_history)
    if main:
        history = [{**entry, "train_loss": train_loss} if "train_loss" in entry else entry for entry in trainer.state.log_history]
        (out / "log_history.json").write_text(json.dumps(history, indent=1))
        if not cfg.keep_checkpoints:
            shutil.rmtree(out / CHECKPOINT_DIR, ignore_errors=True)
    trainer.accelerator.wait_for_everyone()  # the other ranks exit only once rank 0 has written everything
    if not main:
        return None
    resume_step = int(resume_from.name.rsplit("-", 1)[1]) if resume_from else 0
    return StageResult(
        outputs={"model": MODEL_DIR, "log_history": "log_history.json", "train_log": LOG_NAME},
        counts=_counts(data),
        metrics={"train_loss": train_loss, "steps": trainer.state.global_step,
                 "resumed_from_step": resume_step, "processes": args.world_size},
    )


def mean_step_loss(log_history: list[dict[str, Any]]) -> Optional[float]:
    """The mean training loss over every optimizer step, from the logged losses weighted by the steps each covers.

    The Trainer's own ``training_loss`` averages only the steps since a resume (its running sums
    restart), so a resumed run would report another figure than an uninterrupted one; the log
    history, restored from the checkpoint, covers every step.

    >>> mean_step_loss([{"loss": 2.0, "step": 10}, {"loss": 1.0, "step": 30}, {"train_loss": 9.9, "step": 30}])
    1.33333
    """
    total, previous, covered = 0.0, 0, 0
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            steps = entry["step"] - previous
            total, previous, covered = total + entry["loss"] * steps, entry["step"], covered + steps
    return round(total / covered, 5) if covered else None


def _checked_rows(cfg: "SFTConfig", tokenizer: Any) -> SFTRows:
    data = load_sft_rows(cfg.data, tokenizer, cfg.max_length)
    if not data.rows:
        files = ", ".join(str(p) for p in cfg.data)
        if not data.dropped_too_long:
            raise MicotaError(f"sft: the training data is empty ({files}). If a filter stage made it, its dropped.jsonl says why.")
        raise MicotaError(f"sft: none of the {len(data.dropped_too_long)} samples in {files} fits max_length={cfg.max_length}; raise max_length.")
    return data


def last_complete_checkpoint(folder: Path, *, remove_incomplete: bool = True) -> Optional[Path]:
    """The newest checkpoint a kill did not cut short; incomplete ones are deleted (when asked).

    The Trainer writes ``trainer_state.json`` last, so a checkpoint is complete when that file
    parses. Passing ``resume_from_checkpoint=True`` instead would pick the newest folder, which a
    SIGKILL during saving leaves half-written (found by tests/sft/test_sft_resume.py). The
    orchestrator removes incomplete ones before it launches ranks, so ranks only read.
    """
    complete: dict[int, Path] = {}
    for path in folder.glob("checkpoint-*"):
        try:
            json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            if remove_incomplete:
                shutil.rmtree(path, ignore_errors=True)
            continue
        complete[int(path.name.rsplit("-", 1)[1])] = path
    return complete[max(complete)] if complete else None


def _counts(data: SFTRows) -> dict[str, int]:
    return {"samples": len(data.rows), "dropped_too_long": len(data.dropped_too_long), "tokens": data.tokens}


def model_init_kwargs(cfg: "SFTConfig", on_gpu: bool) -> dict[str, Any]:
    """``from_pretrained`` keywords: weight dtype (see launch.Distributed), attention kernel, remote code."""
    precision = check_precision(cfg.precision, on_gpu=on_gpu)
    keeps_master = DISTRIBUTED[cfg.distributed].loads_in_training_precision
    dtype = _DTYPES[precision] if on_gpu and keeps_master else "float32"
    return {"dtype": dtype, "attn_implementation": cfg.attn_implementation, "trust_remote_code": cfg.trust_remote_code,
            "device_map": None}  # the Trainer (or DeepSpeed/FSDP) places the weights, never device_map="auto"


def trainer_args(cfg: "SFTConfig", out: Path, *, on_gpu: bool, world_size: int = 1) -> Any:
    """TRL's SFTConfig for this stage; building it initialises the process group of a launched run."""
    from trl import SFTConfig as TRLConfig

    precision = check_precision(cfg.precision, on_gpu=on_gpu)
    if "tensorboard" in cfg.report_to:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(out / TENSORBOARD_DIR)  # kept beside the model, not in checkpoints/
    return TRLConfig(
        output_dir=str(out / CHECKPOINT_DIR),
        run_name=out.name,  # the recipe's stage name, e.g. ta-sft (wandb run name)
        model_init_kwargs=model_init_kwargs(cfg, on_gpu),
        max_length=None,  # lengths were checked in load_sft_rows: nothing is ever truncated
        padding_free=cfg.padding_free,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.lr_scheduler,
        **_renamed_kwargs(TRLConfig, warmup_ratio=("warmup_steps", cfg.warmup_ratio),
                          activation_checkpointing=("gradient_checkpointing", cfg.gradient_checkpointing)),
        weight_decay=cfg.weight_decay,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps or -1,
        per_device_train_batch_size=cfg.micro_batch_size,
        gradient_accumulation_steps=cfg.global_batch_size // (cfg.micro_batch_size * world_size),
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_liger_kernel=cfg.use_liger_kernel,
        save_strategy="steps" if cfg.save_steps else "epoch",
        save_steps=cfg.save_steps or 500,
        save_total_limit=1,
        logging_steps=cfg.logging_steps,
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=list(cfg.report_to) or "none",
        use_cpu=not on_gpu,
        disable_tqdm=not cfg.progress,
        dataloader_num_workers=0,
        ddp_find_unused_parameters=False,  # every parameter of a causal LM takes part; True costs an extra graph walk
    )


def _renamed_kwargs(args_class: Any, **pairs: tuple[str, Any]) -> dict[str, Any]:
    """``{new: value}`` where the class has the new name, else ``{old: value}``.

    transformers 5 folded ``warmup_ratio`` into a float ``warmup_steps`` in [0, 1) and renamed
    ``gradient_checkpointing`` to ``activation_checkpointing``; TRL's SFTConfig turns checkpointing
    ON by default, so it is always passed explicitly.
    """
    names = {f.name for f in dataclasses.fields(args_class)}
    return {(new if new in names else old): value for new, (old, value) in pairs.items()}


def _train_log(path: Path) -> Any:
    """A callback that appends each trainer log entry (loss, lr, step) as a JSON line to ``path``."""
    from transformers import TrainerCallback

    class TrainLog(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Optional[dict] = None, **kwargs: Any) -> None:
            if state.is_world_process_zero and logs:
                with path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return TrainLog()


def _log_last_step() -> Any:
    """A callback that makes the Trainer log the final step too, so the logged losses cover every
    step (:func:`mean_step_loss`) even when ``logging_steps`` does not divide the step count."""
    from transformers import TrainerCallback

    class LogLastStep(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            if state.global_step >= state.max_steps:
                control.should_log = True
            return control

    return LogLastStep()
