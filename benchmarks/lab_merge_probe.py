"""Probe MiCoTA's TA effects in the micro-lab: base training, a light long-CoT SFT, DARE-TIES merges.

Steps (each cached in --work by name, so variants reuse what they share):
  1. lab data (``micota.lab.run``, no base training) with the lab's tokenizer and models;
  2. the TA base trained on instruct.jsonl with ``micota.lab.pretrain.train_base`` for --base-steps;
  3. long-CoT SFT of that base on the scripted strong teacher's correct long CoT
     (``micota.lab.pretrain.train_base`` again: --sft-lr, --sft-epochs);
  4. merges of base and SFT'd TA (``micota.merge``) at each --lambdas, for each --densities;
  5. greedy accuracy and mean tokens on the 200-problem lab benchmark for every model.

    PYTHONPATH=src python benchmarks/lab_merge_probe.py --work /tmp/lab/mp --base-steps 600 \
        --sft-lr 1e-3 --sft-epochs 2 --lambdas 0.25 0.5 0.75 1.0 --densities 0.5 1.0

Prints one JSON line per model.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import time
from pathlib import Path

import torch


def greedy_scores(model_dir: Path, bench: list[dict], max_new_tokens: int) -> dict:
    """Accuracy (last \\boxed{}), mean generated tokens and share finished, greedy, on ``bench``."""
    from micota.generate.engine import EngineConfig, GenerationRequest
    from micota.generate.hf import HFEngine
    from micota.grade import grade

    engine = HFEngine(EngineConfig(engine="hf", model=str(model_dir), max_new_tokens=max_new_tokens, batch_size=100, device="cpu"))
    requests = [GenerationRequest(id=r["id"], messages=[{"role": "user", "content": r["problem"]}], meta={}) for r in bench]
    gold = {r["id"]: r["answer"] for r in bench}
    done = list(engine.generate(requests))
    correct = sum(grade(gold[c.id], c.text, benchmark="lab").correct for c in done)
    return {"accuracy": correct / len(done), "mean_tokens": sum(c.n_tokens for c in done) / len(done),
            "finished": sum(c.finish_reason == "stop" for c in done) / len(done), "example": done[0].text}


def long_cot_chats(prompts: list[dict], tokenizer_dir: Path, error_rate: float) -> list[list[dict]]:
    """The scripted strong teacher's long CoT on ``prompts``, correct samples only (MiCoTA step 2)."""
    from micota.generate.engine import EngineConfig, ScriptedOptions
    from micota.lab.task import parse_problem, solve
    from micota.lab.teacher import ScriptedTeacherEngine

    teacher = ScriptedTeacherEngine(EngineConfig(engine="scripted", model=str(tokenizer_dir), max_new_tokens=400,
                                                 scripted=ScriptedOptions(style="long", error_rate=error_rate)))
    chats = []
    for record in prompts:
        if teacher.is_wrong(record["problem"]):
            continue
        text = teacher.solution_text(record["problem"])
        assert f"\\boxed{{{solve(parse_problem(record['problem']))}}}" in text
        chats.append([{"role": "user", "content": record["problem"]}, {"role": "assistant", "content": text}])
    return chats


def weight_distance(a: Path, b: Path) -> float:
    """||θ_b - θ_a|| / ||θ_a|| over all tensors."""
    from safetensors.torch import load_file

    ta, tb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    num = sum(float(((tb[k] - ta[k]) ** 2).sum()) for k in ta)
    den = sum(float((ta[k] ** 2).sum()) for k in ta)
    return math.sqrt(num / den)


def main() -> None:
    from micota.jsonl import read_jsonl
    from micota.lab.pretrain import TrainSchedule, train_base
    from micota.lab.run import LabConfig, run
    from micota.merge import MergeConfig
    from micota.merge.run import run as merge_run

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/lab/mp"))
    parser.add_argument("--size", default="ta")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-instruct", type=int, default=4000)
    parser.add_argument("--instruct-styles", nargs="+", default=["short"])
    parser.add_argument("--base", type=Path, help="an already trained base (e.g. from lab_base_probe.py); else train one")
    parser.add_argument("--lab", type=Path, help="the lab folder the base was trained in (with --base)")
    parser.add_argument("--base-steps", type=int, default=600)
    parser.add_argument("--base-lr", type=float, default=3e-3)
    parser.add_argument("--sft-lr", type=float, default=1e-3)
    parser.add_argument("--sft-epochs", type=float, default=2.0)
    parser.add_argument("--lambdas", type=float, nargs="*", default=[0.5, 1.0])
    parser.add_argument("--densities", type=float, nargs="*", default=[0.5])
    parser.add_argument("--max-new-tokens", type=int, default=160)
    args = parser.parse_args()
    torch.set_num_threads(1)
    work = args.work
    lab_cfg = LabConfig(out_dir=str(work / "lab"), seed=args.seed, n_train_prompts=1200, n_eval=200, n_instruct=args.n_instruct,
                        ops="+-*", min_difficulty=2, max_difficulty=3, instruct_min_difficulty=2,
                        instruct_styles=args.instruct_styles, model_sizes=[args.size])
    lab = args.lab or work / "lab"
    if args.lab is None:
        run(lab_cfg)
    bench = read_jsonl(lab / "bench.jsonl")
    instruct = [r["messages"] for r in read_jsonl(lab / "instruct.jsonl")]
    styles = "-".join(args.instruct_styles)
    base = args.base or work / f"base-{args.size}-{styles}-{args.base_steps}-{args.base_lr}"

    def report(name: str, folder: Path, extra: dict) -> None:
        started = time.perf_counter()
        scores = greedy_scores(folder, bench, args.max_new_tokens)
        print(json.dumps({"model": name, **extra, **scores, "eval_s": round(time.perf_counter() - started, 1)}), flush=True)

    if not base.exists():
        shutil.copytree(lab / "models" / args.size, base)
        started = time.perf_counter()
        info = train_base(base, instruct, TrainSchedule(steps=args.base_steps, learning_rate=args.base_lr, seed=args.seed))
        info["train_s"] = round(time.perf_counter() - started, 1)
        (base / "train.json").write_text(json.dumps(info))
    report("base", base, json.loads((base / "train.json").read_text()) if (base / "train.json").exists() else {})

    long_chats = long_cot_chats(read_jsonl(lab / "prompts.jsonl"), lab / "tokenizer", 0.2)
    sft = work / f"{base.name}-sft-{args.sft_lr}-{args.sft_epochs}"
    work.mkdir(parents=True, exist_ok=True)
    if not sft.exists():
        shutil.copytree(base, sft)
        steps = max(1, round(args.sft_epochs * len(long_chats) / 32))
        started = time.perf_counter()
        info = train_base(sft, long_chats, TrainSchedule(steps=steps, learning_rate=args.sft_lr, warmup_steps=max(1, steps // 20), seed=args.seed))
        info["train_s"] = round(time.perf_counter() - started, 1)
        info["rel_delta"] = round(weight_distance(base, sft), 4)
        (sft / "train.json").write_text(json.dumps(info))
    report("sft", sft, json.loads((sft / "train.json").read_text()))

    for density in args.densities:
        for lam in args.lambdas:
            out = work / f"{sft.name}-merge-d{density}-l{lam}"
            if not (out / "manifest.json").exists():
                merge_run(MergeConfig(method="dare_ties" if density < 1 else "ties", base=str(base),
                                      models=[{"model": str(sft), "weight": 1.0, "density": density}],
                                      **{"lambda": lam}, seed=0, out_dir=out))
            report("merge", out / "model" if (out / "model").exists() else out, {"density": density, "lambda": lam})


if __name__ == "__main__":
    main()
