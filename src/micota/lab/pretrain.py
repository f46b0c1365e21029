"""Train the micro-lab's base models: the lab's stand-in for the pretraining and instruction
tuning that made Qwen2.5-*-Instruct before MiCoTA starts.

The paper's TA and students are *well-trained* instruct models, so that long-CoT SFT is a
light update and merging pre/post-SFT weights interpolates between two working models. The
lab gets there by training its random-init models to convergence on ``instruct.jsonl``
inside the ``lab`` stage, with a plain PyTorch loop: on these tiny models TRL's SFTTrainer
spends ~5x longer per step on bookkeeping than on the model (0.29 s vs 0.053 s per batch of
32 for the lab student; docs/benchmarks.md, Micro-lab), and the loop makes the bases a
deterministic function of (seed, data). Batches are padded, not packed: on CPU a packed row
with a block-diagonal mask was 2.4-3.2x slower for these ~45-token samples (same page).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

IGNORE = -100  # label of a token that carries no loss (the prompt, padding)


@dataclass(frozen=True)
class TrainSchedule:
    """How long and how fast a base model trains."""

    steps: int  # optimizer steps
    learning_rate: float  # peak lr (AdamW), reached after warm-up, then cosine to 0
    batch_size: int = 32  # samples per step
    warmup_steps: int = 30
    weight_decay: float = 0.01
    seed: int = 0  # batch order


def encode_chat(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[list[int], int]:
    """Token ids of the chat-templated conversation and the length of its prompt (loss-free) part."""
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(list(messages), tokenize=False)
    return tokenizer(full, add_special_tokens=False)["input_ids"], len(tokenizer(prompt, add_special_tokens=False)["input_ids"])


def batch_tensors(samples: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` (loss on the response and its end token)."""
    import torch

    width = max(len(ids) for ids, _ in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.long)
    for row, (seq, prompt_len) in enumerate(samples):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
        labels[row, prompt_len : len(seq)] = torch.tensor(seq[prompt_len:])
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def learning_rate_at(step: int, schedule: TrainSchedule) -> float:
    """Linear warm-up, then cosine decay to zero (the sft stage's schedule).

    >>> round(learning_rate_at(0, TrainSchedule(steps=100, learning_rate=1.0, warmup_steps=10)), 2)
    0.1
    >>> learning_rate_at(100, TrainSchedule(steps=100, learning_rate=1.0, warmup_steps=10))
    0.0
    """
    warm = min(1.0, (step + 1) / max(schedule.warmup_steps, 1))
    progress = min(1.0, step / max(schedule.steps, 1))
    return schedule.learning_rate * warm * 0.5 * (1.0 + math.cos(math.pi * progress))


def train_base(
    model_dir: Path,
    chats: Sequence[Sequence[dict[str, str]]],
    schedule: TrainSchedule,
    on_step: Optional[Callable[[int, Any, float], None]] = None,
) -> dict[str, float]:
    """Train the HF model folder ``model_dir`` in place on ``chats``; return the final losses.

    Batches are drawn without replacement, reshuffled every pass over the data.
    ``on_step(step, model, loss)`` runs after every step (probes use it for learning curves).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).train()
    samples = [encode_chat(tokenizer, chat) for chat in chats]
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.learning_rate, weight_decay=schedule.weight_decay)
    rng, order, losses = random.Random(f"{schedule.seed}-batches"), [], []
    for step in range(schedule.steps):
        if len(order) < schedule.batch_size:
            order = list(range(len(samples)))
            rng.shuffle(order)
        batch = [samples[order.pop()] for _ in range(min(schedule.batch_size, len(samples)))]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, schedule)
        loss = model(**batch_tensors(batch, tokenizer.pad_token_id), use_cache=False).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, model, losses[-1])
    model.save_pretrained(str(model_dir), safe_serialization=True)
    tail = losses[-max(1, len(losses) // 20) :]  # last 5% of steps: less noisy than the last batch
    return {"final_loss": round(sum(tail) / len(tail), 5), "steps": schedule.steps}
