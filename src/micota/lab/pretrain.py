"""Train the micro-lab's base models: the lab's stand-in for the pretraining and instruction
tuning that made Qwen2.5-*-Instruct before MiCoTA starts.

The paper's TA and students are *well-trained* instruct models, so that long-CoT SFT is a
light update and merging pre/post-SFT weights interpolates between two working models. The
lab gets there by training its random-init models on ``instruct.jsonl`` inside the ``lab``
stage, to convergence or until a held-out accuracy short of it, with a plain PyTorch loop:
on these tiny models TRL's SFTTrainer spends most of each step on bookkeeping (0.17 s vs
0.04 s per step for the lab student; docs/benchmarks.md, Micro-lab), and the loop makes the
bases a deterministic function of (seed, data). Batches are padded, with samples of similar length grouped together.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

IGNORE = -100  # label of a token that carries no loss (the prompt, padding)
GROUP_WINDOW = 8  # batches whose samples are sorted by length together (see length_grouped_batches)


@dataclass(frozen=True)
class TrainSchedule:
    """How long and how fast a base model trains."""

    steps: int  # optimizer steps
    learning_rate: float  # peak lr (AdamW), reached after warm-up, then cosine to 0
    batch_size: int = 32  # samples per step
    warmup_steps: int = 30
    weight_decay: float = 0.01
    seed: int = 0  # batch order
    # stop once greedy accuracy on the dev problems reaches this (None: train every step); the
    # lr schedule still spans ``steps``, so a stop is early stopping, not a shorter schedule
    target_accuracy: Optional[float] = None
    check_every: int = 50  # steps between dev checks
    # after the schedule, dev accuracy must reach this (None: no check), or the schedule runs again
    # from the weights it reached, at most ``restarts`` times (a warm restart)
    min_accuracy: Optional[float] = None
    restarts: int = 1


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


def length_grouped_batches(lengths: Sequence[int], schedule: TrainSchedule) -> Iterator[list[int]]:
    """Endless batches of sample indices: each pass over the data is shuffled, cut into windows of
    ``GROUP_WINDOW`` batches, each window sorted by length and cut into batches, and the batches
    of the pass shuffled again.

    Samples of similar length share a batch, so little of it is padding: the instruct data mixes
    short answers with long CoT about three times as long, and a random batch is padded to its
    longest sample. A pass drops its last partial batch (those samples come first in a later pass).

    >>> gen = length_grouped_batches([5, 1, 4, 2], TrainSchedule(steps=1, learning_rate=1.0, batch_size=2))
    >>> sorted(sorted(next(gen)) + sorted(next(gen)))
    [0, 1, 2, 3]
    """
    rng = random.Random(f"{schedule.seed}-batches")
    size = min(schedule.batch_size, len(lengths))
    while True:
        order = list(range(len(lengths)))
        rng.shuffle(order)
        window = size * GROUP_WINDOW
        batches = []
        for start in range(0, len(order) - size + 1, window):
            chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
            batches += [chunk[i : i + size] for i in range(0, len(chunk) - size + 1, size)]
        rng.shuffle(batches)
        yield from batches


def train_base(
    model_dir: Path,
    chats: Sequence[Sequence[dict[str, str]]],
    schedule: TrainSchedule,
    on_step: Optional[Callable[[int, Any, float], None]] = None,
    texts: Sequence[str] = (),
    progress: Optional[str] = None,
    dev: Sequence[DevProblem] = (),
) -> dict[str, float]:
    """Train the HF model folder ``model_dir`` in place on ``chats`` and plain ``texts``; return the final losses.

    Chats carry loss on the assistant turn only, texts on every token. Batches are drawn
    without replacement from both, reshuffled every pass over the data.
    ``on_step(step, model, loss)`` runs after every step (probes use it for learning curves);
    ``progress`` names a progress bar (None: no bar). With ``schedule.target_accuracy``, training
    stops at the first check where greedy accuracy on ``dev`` reaches it; with
    ``schedule.min_accuracy``, a schedule that ends short of it runs again (``schedule.restarts`` times at most).
    """
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).train()
    samples = [encode_chat(tokenizer, chat) for chat in chats]
    samples += [(tokenizer(text, add_special_tokens=False)["input_ids"], 0) for text in texts]
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.learning_rate, weight_decay=schedule.weight_decay)
    batches, losses = length_grouped_batches([len(ids) for ids, _ in samples], schedule), []
    if (schedule.target_accuracy is not None or schedule.min_accuracy is not None) and not dev:
        raise ValueError("a target_accuracy or min_accuracy needs dev problems to check it on")
    bar = tqdm(total=schedule.steps, desc=progress, disable=progress is None, unit="step", mininterval=2.0)
    trained, rounds = 0, 0

    def check() -> float:
        return dev_accuracy(model, tokenizer, dev)

    while True:
        rounds += 1
        steps, accuracy, reached = _train_round(
            model, optimizer, schedule, losses, check=check,
            next_batch=lambda: batch_tensors([samples[i] for i in next(batches)], tokenizer.pad_token_id),
            after_step=lambda step, loss: _after_step(bar, on_step, trained + step, model, loss),
        )
        trained += steps
        if reached or schedule.min_accuracy is None:
            break
        accuracy = check()
        if accuracy >= schedule.min_accuracy or rounds > schedule.restarts:
            break
        bar.total += schedule.steps  # short of min_accuracy (e.g. still on a loss plateau): run the schedule again
        bar.refresh()
    bar.close()
    model.save_pretrained(str(model_dir), safe_serialization=True)
    tail = losses[-max(1, len(losses) // 20) :]  # last 5% of steps: less noisy than the last batch
    result = {"final_loss": round(sum(tail) / len(tail), 5), "steps": trained}
    if schedule.min_accuracy is not None:
        result["rounds"] = rounds
    if accuracy is not None:
        result["dev_accuracy"] = accuracy
    return result


def _train_round(model: Any, optimizer: Any, schedule: TrainSchedule, losses: list[float], next_batch: Callable[[], dict],
                 check: Callable[[], float], after_step: Callable[[int, float], None]) -> tuple[int, Optional[float], bool]:
    """One pass of ``schedule`` (warm-up, cosine to zero): steps taken, last dev accuracy, whether it reached the target."""
    import torch

    accuracy = None
    for step in range(schedule.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate_at(step, schedule)
        loss = model(**next_batch(), use_cache=False).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
        after_step(step + 1, losses[-1])
        if schedule.target_accuracy is not None and (step + 1) % schedule.check_every == 0:
            accuracy = check()
            if accuracy >= schedule.target_accuracy:
                return step + 1, accuracy, True
    return schedule.steps, accuracy, False


def _after_step(bar: Any, on_step: Optional[Callable[[int, Any, float], None]], step: int, model: Any, loss: float) -> None:
    bar.update()
    if step % 50 == 1:
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
    if on_step is not None:
        on_step(step, model, loss)


@dataclass(frozen=True)
class DevProblem:
    """A held-out problem the lab stage checks a base's accuracy on while it trains."""

    messages: tuple[dict[str, str], ...]  # the user turn, as the benchmark asks it
    answer: str


def dev_accuracy(model: Any, tokenizer: Any, dev: Sequence[DevProblem], max_new_tokens: int = 160) -> float:
    """Share of ``dev`` that ``model`` answers right, greedy, graded like the lab benchmark."""
    import torch

    from micota.grade import grade

    prompts = [tokenizer.apply_chat_template(list(p.messages), tokenize=False, add_generation_prompt=True) for p in dev]
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tokenizer.padding_side = side
    model.eval()
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    model.train()
    texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return sum(grade(p.answer, text, benchmark="lab").correct for p, text in zip(dev, texts)) / len(dev)


@dataclass(frozen=True)
class BaseJob:
    """One base model to train: its folder (trained in place) and schedule."""

    name: str
    model_dir: Path
    schedule: TrainSchedule
    dev: tuple[DevProblem, ...] = ()  # what the schedule's target_accuracy and min_accuracy are checked on


def train_bases(jobs: Sequence[BaseJob], chats: Sequence[Sequence[dict[str, str]]], workers: int = 0) -> dict[str, dict]:
    """Train every job's model on ``chats``, side by side in ``workers`` processes (0: one per CPU core).

    Each process trains one model at a time on one CPU thread: tiny models use one core well and
    two cores badly (OpenMP waits), so two models on two cores finish in about the time of the
    longer one. The largest models start first. A model's weights depend only on its own seed and
    data, never on the number of workers. Returns name -> final losses and wall time.
    """
    import os
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    workers = min(workers or os.cpu_count() or 1, len(jobs))
    ordered = sorted(jobs, key=lambda job: -job.schedule.steps * _weight_bytes(job.model_dir))
    if workers <= 1:
        return {job.name: _train_job(job, chats, one_thread=False) for job in ordered}
    # spawn, not fork: the parent may already hold torch's thread pools
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_exit_with_parent,
                             initargs=(os.getpid(),)) as pool:
        futures = {job.name: pool.submit(_train_job, job, chats, one_thread=True) for job in ordered}
        return {name: future.result() for name, future in futures.items()}


def _exit_with_parent(parent_pid: int) -> None:
    """Have the kernel kill this worker when the process that started it dies (Linux).

    A killed ``micota run`` must not leave workers behind that go on training and then save
    into a lab folder the next run is rebuilding.
    """
    import ctypes
    import os
    import signal
    import sys

    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _weight_bytes(model_dir: Path) -> int:
    return sum(f.stat().st_size for f in Path(model_dir).glob("*.safetensors"))


def _train_job(job: BaseJob, chats: Sequence[Sequence[dict[str, str]]], one_thread: bool) -> dict[str, float]:
    import time

    import torch

    if one_thread:  # a worker process: leave the other cores to the other workers
        torch.set_num_threads(1)
    started = time.perf_counter()
    result = train_base(job.model_dir, chats, job.schedule, progress=f"lab: train {job.name}", dev=job.dev)
    return {**result, "wall_time_s": round(time.perf_counter() - started, 1)}
