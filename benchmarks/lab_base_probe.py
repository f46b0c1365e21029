"""Learning curves of the micro-lab's base models: how many steps make a well-trained "instruct" model.

Trains one random-init lab model on instruct data with ``micota.lab.pretrain.train_base``
and prints greedy accuracy / mean tokens on the 200 held-out lab problems every
--eval-every steps, plus the wall time. Variants: model size, lr, batch, instruct data
(curriculum from 1-step chains, styles).

    PYTHONPATH=src python benchmarks/lab_base_probe.py --size student --steps 1000 --lr 3e-3 --eval-every 200
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch


def greedy_eval(model, tokenizer, bench: list[dict], max_new_tokens: int = 120) -> dict:
    """Greedy accuracy (last \\boxed{}) and mean new tokens of an in-memory model on ``bench``."""
    from micota.grade import grade

    tokenizer.padding_side = "left"
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": r["problem"]}], tokenize=False,
                                             add_generation_prompt=True) for r in bench]
    batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    model.eval()
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=tokenizer.eos_token_id,
                             pad_token_id=tokenizer.pad_token_id)
    model.train()
    new = out[:, batch["input_ids"].shape[1]:]
    texts = tokenizer.batch_decode(new, skip_special_tokens=True)
    stops = {tokenizer.eos_token_id, tokenizer.pad_token_id}
    lengths = [next((i + 1 for i, t in enumerate(row.tolist()) if t in stops), len(row)) for row in new]
    correct = sum(grade(r["answer"], t, benchmark="lab").correct for r, t in zip(bench, texts))
    tokenizer.padding_side = "right"
    return {"accuracy": correct / len(bench), "mean_tokens": round(sum(lengths) / len(lengths), 1), "example": texts[0][:90]}


def main() -> None:
    from transformers import AutoTokenizer

    from micota.jsonl import read_jsonl
    from micota.lab.pretrain import TrainSchedule, train_base
    from micota.lab.run import LabConfig, run
    from micota.lab.solutions import fact_tables

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lab/bp"))
    parser.add_argument("--size", default="student")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--n-instruct", type=int, default=4000)
    parser.add_argument("--instruct-min-difficulty", type=int, default=2)
    parser.add_argument("--min-difficulty", type=int, default=2)
    parser.add_argument("--max-difficulty", type=int, default=3)
    parser.add_argument("--ops", default="+-*")
    parser.add_argument("--styles", nargs="+", default=["short"])
    parser.add_argument("--fact-pages", type=int, default=0, help="fact-table pages mixed into the training data")
    parser.add_argument("--facts-per-page", type=int, default=16)
    parser.add_argument("--eval-every", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    tag = f"{args.seed}-{args.n_instruct}-{args.instruct_min_difficulty}-{args.min_difficulty}{args.max_difficulty}-{args.ops}-{'_'.join(args.styles)}"
    lab = args.work / f"lab-{tag}"
    run(LabConfig(out_dir=str(lab), seed=args.seed, n_train_prompts=1200, n_eval=200, n_instruct=args.n_instruct, ops=args.ops,
                  min_difficulty=args.min_difficulty, max_difficulty=args.max_difficulty,
                  instruct_min_difficulty=args.instruct_min_difficulty, instruct_styles=args.styles, model_sizes=[args.size]))
    bench = read_jsonl(lab / "bench.jsonl")
    chats = [r["messages"] for r in read_jsonl(lab / "instruct.jsonl")]
    model_dir = args.work / f"{args.size}-{tag}-{args.steps}-{args.lr}-{args.batch}-f{args.fact_pages}x{args.facts_per_page}"
    shutil.rmtree(model_dir, ignore_errors=True)
    shutil.copytree(lab / "models" / args.size, model_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    started, window = time.perf_counter(), []

    def on_step(step: int, model, loss: float) -> None:
        window.append(loss)
        if step % args.eval_every == 0 or step == args.steps:
            train_s = time.perf_counter() - started
            scores = greedy_eval(model, tokenizer, bench)
            print(json.dumps({"size": args.size, "step": step, "loss": round(sum(window) / len(window), 4),
                              "train_s": round(train_s, 1), **scores}), flush=True)
            window.clear()

    train_base(model_dir, chats, TrainSchedule(steps=args.steps, learning_rate=args.lr, batch_size=args.batch,
                                               warmup_steps=args.warmup, seed=args.seed), on_step=on_step,
               texts=fact_tables(args.fact_pages, args.facts_per_page, args.ops, args.seed))
    print(json.dumps({"args": vars(args) | {"work": str(args.work)}, "wall_s": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()
