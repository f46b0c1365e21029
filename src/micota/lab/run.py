"""The ``lab`` stage: build the micro-lab's tokenizer, problems, benchmark, instruct data and base models.

Outputs in ``out_dir``:

* ``tokenizer/`` - byte-level BPE, Qwen-style chat template (HF fast tokenizer).
* ``models/<size>/`` - tiny Qwen2 models (safetensors + tokenizer), trained on ``instruct.jsonl``
  for the steps ``base_training`` gives each size (sizes it omits keep their random weights):
  the lab's stand-ins for Qwen2.5-*-Instruct, so every later fine-tune is a light update.
* ``prompts.jsonl`` - train-split problems (``id``, ``problem``, ``answer``) the teachers solve.
* ``bench.jsonl`` - eval-split problems: the lab benchmark, held out by hash of the problem text.
* ``dev.jsonl`` - train-split problems in no other file: where a base's training stops when its
  ``base_training`` names a target accuracy (the benchmark never steers training).
* ``instruct.jsonl`` - chat ``messages`` (the bare problem, an answer in one of
  ``instruct_styles``): the instruction data of the base models. Its problems are train-split
  and *disjoint* from ``prompts.jsonl``, so distillation data is always about problems the
  base models have not seen.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Iterable, Literal, Optional

from pydantic import Field, field_validator, model_validator

from micota.config import NOT_HASHED, StrictModel
from micota.errors import MicotaError
from micota.jsonl import write_jsonl
from micota.lab.models import LAB_MODEL_SIZES, build_model
from micota.lab.pretrain import BaseJob, DevProblem, TrainSchedule, train_bases
from micota.lab.solutions import write_solution
from micota.lab.task import OPS, Problem, format_user_turn, make_problems, problem_record
from micota.lab.tokenizer import build_tokenizer
from micota.manifest import Manifest
from micota.stage import StageResult, run_stage


class BaseTraining(StrictModel):
    """How the lab stage trains one base model on instruct.jsonl (the lab's Qwen2.5-*-Instruct)."""

    steps: int = Field(ge=0)  # optimizer steps; 0 keeps the random weights
    learning_rate: float = Field(3e-3, gt=0)  # peak lr after warm-up, cosine to 0 (AdamW)
    batch_size: int = Field(32, ge=1)  # samples per step
    warmup_steps: int = Field(30, ge=0)
    # stop once greedy accuracy on dev.jsonl reaches this (checked every check_every steps): a
    # well-trained model short of its ceiling, as a real instruct model is on competition maths,
    # so that what it is fine-tuned on can show in its accuracy. None trains every step.
    target_accuracy: Optional[float] = Field(None, gt=0, le=1)
    check_every: int = Field(50, ge=1)
    # after the schedule, greedy accuracy on dev.jsonl must reach this, or the schedule runs again
    # from the weights it reached (a warm restart), at most `restarts` times: a base still on its
    # loss plateau gets another go instead of entering the pipeline untrained. None: no check.
    min_accuracy: Optional[float] = Field(None, gt=0, le=1)
    restarts: int = Field(1, ge=0)


class LabConfig(StrictModel):
    """What the micro-lab builds. Defaults are the tuned values (docs/benchmarks.md, ## Micro-lab)."""

    out_dir: str = Field(json_schema_extra=NOT_HASHED)  # stage folder, e.g. RUN/lab
    seed: int = 0  # seeds problem sampling, instruct styles and model init
    n_train_prompts: int = Field(400, ge=1)  # problems in prompts.jsonl (what the teachers solve)
    n_eval: int = Field(200, ge=1)  # problems in bench.jsonl (held-out benchmark)
    # train-split problems in dev.jsonl: what base_training's target_accuracy and min_accuracy are checked on
    n_dev: int = Field(100, ge=1)
    # One chain length (min = max) keeps every operand at a fixed token offset, which tiny
    # models learn to look up far sooner than variable offsets (docs/benchmarks.md, Micro-lab).
    min_difficulty: int = Field(3, ge=1, le=8)  # fewest operations in a chain
    max_difficulty: int = Field(3, ge=1, le=8)  # most operations in a chain
    # instruct.jsonl also has chains from this length up (1 = single steps), a curriculum that
    # lets tiny models learn to copy operands and the arithmetic facts before chaining them.
    instruct_min_difficulty: int = Field(3, ge=1, le=8)
    # longest chain in instruct.jsonl (None = max_difficulty). Below min_difficulty, the base models
    # have only met shorter chains than the teachers' prompts and the benchmark: distillation then
    # teaches them something new, as the papers' competition problems do for an instruct model.
    instruct_max_difficulty: int | None = Field(None, ge=1, le=8)
    ops: str = Field("+-", min_length=1)  # operations used, a subset of "+-*" (+- : 200 facts to learn)
    eval_percent: int = Field(20, ge=1, le=99)  # % of all possible problems reserved for eval (by hash)
    # BPE vocabulary incl. 256 bytes + 3 special tokens; 1024 merges the fixed phrases of the
    # lab text into few tokens, so sequences are ~2x shorter (faster SFT, shorter look-ups).
    vocab_size: int = Field(1024, ge=260, le=4096)
    model_sizes: list[str] = Field(default_factory=lambda: ["student-tiny", "student", "ta"])  # rows of LAB_MODEL_SIZES
    n_instruct: int = Field(2000, ge=1)  # chat samples in instruct.jsonl
    # user turn of instruct.jsonl; use the same template in the recipe's generate/evaluate stages.
    # "lab_problem" (the bare problem): tiny models learn several times slower when MiCoTA's
    # 25-token instruction surrounds the problem (docs/benchmarks.md, Micro-lab).
    prompt_template: str = "lab_problem"
    # styles of instruct.jsonl answers, drawn uniformly per sample (repeat a style to weight it):
    # mostly short CoT, as Qwen2.5-Instruct answers, with some direct answers.
    instruct_styles: list[Literal["direct", "short", "long"]] = Field(
        default_factory=lambda: ["short", "short", "short", "direct"], min_length=1
    )

    # size -> schedule: every model is trained to convergence here, so the MiCoTA stages start from
    # well-trained instruct models as in the paper (sizes not listed keep their random weights).
    base_training: dict[str, BaseTraining] = Field(default_factory=dict)
    # processes that train the bases side by side (one model each, one CPU thread each); 0 = one per
    # CPU core. Each base is a function of its own seed, so the count never changes the models.
    training_workers: int = Field(0, ge=0, json_schema_extra=NOT_HASHED)

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, value: str) -> str:
        bad = sorted(set(value) - set(OPS))
        if bad:
            raise ValueError(f"may only contain the operations {OPS!r}, got {bad}; e.g. ops: '+-'")
        return value

    @field_validator("model_sizes")
    @classmethod
    def _known_sizes(cls, value: list[str]) -> list[str]:
        unknown = [s for s in value if s not in LAB_MODEL_SIZES]
        if unknown:
            raise ValueError(f"unknown model sizes {unknown}; available: {', '.join(LAB_MODEL_SIZES)}")
        return value

    @model_validator(mode="after")
    def _trained_sizes_exist(self) -> "LabConfig":
        unknown = sorted(set(self.base_training) - set(self.model_sizes))
        if unknown:
            raise ValueError(f"base_training names sizes that model_sizes does not build: {unknown}; "
                             f"model_sizes is {self.model_sizes}")
        return self

    @model_validator(mode="after")
    def _difficulty_range(self) -> "LabConfig":
        if self.min_difficulty > self.max_difficulty:
            raise ValueError(f"min_difficulty ({self.min_difficulty}) must be <= max_difficulty ({self.max_difficulty})")
        return self


def run(cfg: LabConfig) -> Manifest:
    """Build (or skip, when already built with this config) the micro-lab in ``cfg.out_dir``."""
    return run_stage("lab", cfg, cfg.out_dir, inputs={}, body=lambda out: _build(cfg, out))


def _build(cfg: LabConfig, out: Path) -> StageResult:
    prompts, bench, instruct, dev = _problem_sets(cfg)  # first: a too-small problem space fails before any work
    build_tokenizer(out / "tokenizer", vocab_size=cfg.vocab_size, seed=cfg.seed)
    instruct_records = list(_instruct_records(instruct, cfg))
    chats = [record["messages"] for record in instruct_records]
    dev_records = [problem_record(p) for p in dev]
    dev_problems = tuple(DevProblem(messages=({"role": "user", "content": format_user_turn(r["problem"], cfg.prompt_template)},),
                                    answer=r["answer"]) for r in dev_records)
    jobs = []
    for index, size in enumerate(cfg.model_sizes):
        folder = build_model(size, out / "tokenizer", out / "models" / size, seed=cfg.seed + index)
        if cfg.base_training.get(size) and cfg.base_training[size].steps:
            schedule = TrainSchedule(seed=cfg.seed + index, **cfg.base_training[size].model_dump())
            jobs.append(BaseJob(name=size, model_dir=folder, schedule=schedule, dev=dev_problems))
    training = train_bases(jobs, chats, workers=cfg.training_workers)
    counts = {
        "prompts": write_jsonl(out / "prompts.jsonl", map(problem_record, prompts)),
        "bench": write_jsonl(out / "bench.jsonl", map(problem_record, bench)),
        "dev": write_jsonl(out / "dev.jsonl", dev_records),
        "instruct": write_jsonl(out / "instruct.jsonl", instruct_records),
        "models": len(cfg.model_sizes),
    }
    outputs = {"tokenizer": "tokenizer", "prompts": "prompts.jsonl", "bench": "bench.jsonl", "instruct": "instruct.jsonl",
               "dev": "dev.jsonl"}
    outputs.update({f"model:{size}": f"models/{size}" for size in cfg.model_sizes})
    return StageResult(outputs=outputs, counts=counts, metrics={"base_training": training})


def _problem_sets(cfg: LabConfig) -> tuple[list[Problem], list[Problem], list[Problem], list[Problem]]:
    """Train prompts, eval benchmark, instruct problems and dev problems (train split, pairwise disjoint)."""
    common: dict[str, Any] = dict(
        min_difficulty=cfg.min_difficulty, max_difficulty=cfg.max_difficulty, ops=cfg.ops, eval_percent=cfg.eval_percent
    )
    try:
        prompts = make_problems(cfg.n_train_prompts, seed=cfg.seed, split="train", **common)
        bench = make_problems(cfg.n_eval, seed=cfg.seed, split="eval", **common)
        taken = frozenset(p.text for p in prompts)
        dev = make_problems(cfg.n_dev, seed=cfg.seed + 2, split="train", exclude=taken, **common)
        taken |= frozenset(p.text for p in dev)
        common["max_difficulty"] = cfg.instruct_max_difficulty or cfg.max_difficulty
        common["min_difficulty"] = min(cfg.instruct_min_difficulty, common["max_difficulty"])
        instruct = make_problems(cfg.n_instruct, seed=cfg.seed + 1, split="train", exclude=taken, **common)
    except ValueError as exc:
        raise MicotaError(
            f"lab: {exc}. Lower n_train_prompts / n_eval / n_instruct, or widen min_difficulty..max_difficulty or ops."
        ) from None
    return prompts, bench, instruct, dev


def _instruct_records(problems: list[Problem], cfg: LabConfig) -> Iterable[dict[str, Any]]:
    rng = random.Random(f"{cfg.seed}-instruct-styles")
    for problem in problems:
        style = rng.choice(cfg.instruct_styles)
        yield {
            "id": problem.id,
            "messages": [
                {"role": "user", "content": format_user_turn(problem.text, cfg.prompt_template)},
                {"role": "assistant", "content": write_solution(problem, style)},
            ],
            "style": style,
        }

