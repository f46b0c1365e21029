"""How the user-turn template changes what a tiny lab student learns in a fixed budget.

Trains the lab's random-init `student` with a plain PyTorch loop (same data, steps, lr and
seed for every variant) on short-CoT solutions, then decodes greedily on held-out lab
problems. Variants differ only in the user turn: the bare problem (`lab_problem`), MiCoTA's
prompt (`micota_generation`: problem, then a 25-token instruction), or the instruction first.

    PYTHONPATH=src python benchmarks/lab_prompt_probe.py --steps 625 --variants lab_problem micota_generation instruction_first
"""

from __future__ import annotations

import argparse
import math
import random
import tempfile
import time
from pathlib import Path

import torch

from micota.data import render_prompt
from micota.lab.models import build_model
from micota.lab.solutions import write_solution
from micota.lab.task import make_problems, solve
from micota.lab.tokenizer import build_tokenizer

INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}.\n"


def user_turn(variant: str, problem: str) -> str:
    return INSTRUCTION + problem if variant == "instruction_first" else render_prompt(variant, problem)


def encode(tokenizer, user: str, answer: str | None = None):
    messages = [{"role": "user", "content": user}]
    prompt = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    if answer is None:
        return prompt
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
    return tokenizer(full, add_special_tokens=False)["input_ids"], len(prompt)


def train_and_score(variant: str, args, work: Path) -> dict:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(work / "tokenizer")
    model = AutoModelForCausalLM.from_pretrained(work / "student")
    common = dict(min_difficulty=2, max_difficulty=3, ops=args.ops)
    train = make_problems(args.n_train, seed=0, split="train", **common)
    data = [encode(tokenizer, user_turn(variant, p.text), write_solution(p, "short")) for p in train]
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    rng, started = random.Random(0), time.perf_counter()
    for step in range(args.steps):
        batch = rng.sample(data, args.batch)
        width = max(len(ids) for ids, _ in batch)
        ids = torch.zeros((len(batch), width), dtype=torch.long)
        labels = torch.full((len(batch), width), -100)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (seq, prompt_len) in enumerate(batch):
            ids[row, : len(seq)], mask[row, : len(seq)] = torch.tensor(seq), 1
            labels[row, prompt_len : len(seq)] = torch.tensor(seq[prompt_len:])
        for group in opt.param_groups:  # warm-up then cosine, as the sft stage's scheduler
            group["lr"] = args.lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    train_s = time.perf_counter() - started
    return {"variant": variant, "final_loss": round(loss.item(), 3), "accuracy": accuracy(model, tokenizer, variant, args), "train_s": round(train_s, 1)}


def accuracy(model, tokenizer, variant: str, args) -> float:
    tokenizer.padding_side = "left"
    problems = make_problems(args.n_eval, seed=1, split="eval", min_difficulty=2, max_difficulty=3, ops=args.ops)
    prompts = [encode(tokenizer, user_turn(variant, p.text)) for p in problems]
    width = max(map(len, prompts))
    ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in prompts])
    mask = (ids != tokenizer.pad_token_id).long()
    model.eval()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=64, do_sample=False,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    texts = tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
    return sum(f"\\boxed{{{solve(p)}}}" in t for p, t in zip(problems, texts)) / len(problems)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=["lab_problem", "micota_generation", "instruction_first"])
    parser.add_argument("--steps", type=int, default=625)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--ops", default="+-")
    parser.add_argument("--n-train", type=int, default=4000)
    parser.add_argument("--n-eval", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        build_tokenizer(work / "tokenizer")
        for variant in args.variants:
            torch.manual_seed(0)
            build_model("student", work / "tokenizer", work / "student", seed=0)
            print(train_and_score(variant, args, work), flush=True)


if __name__ == "__main__":
    main()
