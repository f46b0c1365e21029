"""Does distillation help a lab student that is *not* at its ceiling? Checkpoints along base training, each fine-tuned.

Trains the lab's random-init ``--size`` model on a finished lab run's ``instruct.jsonl``
(the same init seed and schedule as the lab stage), saves a copy at each --checkpoints step,
and fine-tunes every copy lightly (lr --sft-lr, --sft-epochs, batch 32) on each of the run's
filtered training sets (--sets, e.g. the strong teacher's long CoT and the MiCoTA data).
Prints greedy accuracy and mean tokens on the run's 200-problem benchmark for every model,
one JSON line each.

    PYTHONPATH=src python benchmarks/lab_headroom_probe.py --run /tmp/labrun6 --work /tmp/lab/hr \\
        --checkpoints 600 800 1000 1500 --sets teacher-filtered micota-filtered
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
import yaml


def main() -> None:
    from lab_merge_probe import greedy_scores

    from micota.jsonl import read_jsonl
    from micota.lab.models import build_model
    from micota.lab.pretrain import TrainSchedule, train_base

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished lab recipe run folder")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lab/hr"))
    parser.add_argument("--size", default="student")
    parser.add_argument("--steps", type=int, default=1500, help="base schedule length (cosine over these steps)")
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[600, 800, 1000, 1500])
    parser.add_argument("--sets", nargs="+", default=["teacher-filtered", "micota-filtered"])
    parser.add_argument("--sft-lr", type=float, default=3e-4)
    parser.add_argument("--sft-epochs", type=float, default=2.0)
    parser.add_argument("--max-new-tokens", type=int, default=160)
    args = parser.parse_args()
    torch.set_num_threads(1)
    lab = args.run / "lab"
    bench = read_jsonl(lab / "bench.jsonl")
    instruct = [r["messages"] for r in read_jsonl(lab / "instruct.jsonl")]
    lab_cfg = yaml.safe_load((lab / "config.yaml").read_text(encoding="utf-8"))
    # the lab stage seeds a size's init and batch order with its seed + the size's index
    seed = lab_cfg["seed"] + lab_cfg["model_sizes"].index(args.size)
    args.work.mkdir(parents=True, exist_ok=True)
    live = args.work / f"{args.size}-live"
    shutil.rmtree(live, ignore_errors=True)
    build_model(args.size, lab / "tokenizer", live, seed=seed)
    wanted = set(args.checkpoints)

    def keep(step: int, model, loss: float) -> None:
        if step in wanted:
            folder = args.work / f"{args.size}-step{step}"
            shutil.rmtree(folder, ignore_errors=True)
            shutil.copytree(live, folder)  # config + tokenizer
            model.save_pretrained(str(folder), safe_serialization=True)

    train_base(live, instruct, TrainSchedule(steps=args.steps, learning_rate=3e-3, seed=seed), on_step=keep)
    for step in sorted(wanted):
        base = args.work / f"{args.size}-step{step}"
        print(json.dumps({"checkpoint": step, "trained_on": "nothing", **greedy_scores(base, bench, args.max_new_tokens)}), flush=True)
        for name in args.sets:
            chats = [r["messages"] for r in read_jsonl(args.run / name / "data.jsonl")]
            tuned = args.work / f"{base.name}-{name}"
            shutil.rmtree(tuned, ignore_errors=True)
            shutil.copytree(base, tuned)
            steps = max(1, round(args.sft_epochs * len(chats) / 32))
            started = time.perf_counter()
            schedule = TrainSchedule(steps=steps, learning_rate=args.sft_lr, warmup_steps=max(1, steps // 10), seed=lab_cfg["seed"])
            train_base(tuned, chats, schedule)
            scores = greedy_scores(tuned, bench, args.max_new_tokens)
            print(json.dumps({"checkpoint": step, "trained_on": name, "samples": len(chats), "sft_steps": steps,
                              "sft_s": round(time.perf_counter() - started, 1), **scores}), flush=True)


if __name__ == "__main__":
    main()
