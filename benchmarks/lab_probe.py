"""Probe the micro-lab end to end with the real stages, to tune LabConfig and the lab recipe.

Runs: lab stage -> instruct SFT (student, TA) -> strong-teacher long CoT (scripted, filtered
for correctness) -> TA long-CoT SFT -> merged TA (DARE+TIES stand-in: linear interpolation of
pre/post-SFT weights) -> TA/merged-TA CoT on the prompts -> student SFT on each data source ->
greedy evaluation on bench.jsonl. Prints one JSON summary with accuracies, mean response
tokens and the wall time of each step.

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/lab_probe.py --run-dir /tmp/lab-probe

Options are ``key=value`` (see PROBE below); steps already done are skipped (stage manifests).
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

PROBE = {
    "run_dir": "/tmp/lab-probe",
    "instruct_epochs": 3.0,  # SFT epochs on instruct.jsonl
    "instruct_lr": 3e-3,
    "distill_epochs": 3.0,  # SFT epochs on CoT data (TA and students)
    "distill_lr": 2e-3,
    "batch": 32,
    "max_length": 320,  # SFT max tokens (prompt + response)
    "max_new_tokens": 200,  # generation budget
    "merge_alpha": 0.5,  # weight of the post-SFT TA in the linear stand-in merge
    "error_rate": 0.2,  # scripted strong teacher's wrong share
    "n_instruct": 2000,
    "n_train_prompts": 400,
    "n_eval": 200,
    "min_difficulty": 2,
    "max_difficulty": 3,
    "ops": "+-*",
    "instruct_styles": "short,short,short,direct",
    "instruct_sizes": "student,ta",  # which random-init models get instruct SFT
    "steps": "all",  # comma list of: instruct,ta,students
}


def main(argv: list[str]) -> None:
    import torch

    torch.set_num_threads(1)
    opts = dict(PROBE)
    for arg in argv:
        key, value = arg.lstrip("-").split("=", 1)
        key = key.replace("-", "_")
        opts[key] = type(PROBE[key])(value) if key in PROBE else value
    run_dir = Path(opts["run_dir"])
    summary: dict = {"options": opts, "timings_s": {}, "results": {}}
    lab = _lab(run_dir, opts, summary)
    sizes = opts["instruct_sizes"].split(",")
    instruct = {size: _sft(run_dir / f"sft-{size}-instruct", lab / "models" / size, [lab / "instruct.jsonl"], opts, "instruct", summary) for size in sizes}
    for name in sizes:
        _evaluate(f"{name}-instruct", instruct[name], lab, opts, summary)
    if opts["steps"] == "instruct":
        return _finish(run_dir, summary)
    teacher_long = _scripted(run_dir / "teacher-long.jsonl", lab, "long", opts, summary)
    teacher_short = _scripted(run_dir / "teacher-short.jsonl", lab, "short", opts, summary)
    ta_long = _sft(run_dir / "sft-ta-long", instruct["ta"], [teacher_long], opts, "distill", summary)
    _evaluate("ta-long", ta_long, lab, opts, summary)
    merged = _linear_merge(instruct["ta"], ta_long, run_dir / "ta-merged", opts["merge_alpha"], summary)
    _evaluate("ta-merged", merged, lab, opts, summary)
    ta_data = _model_cot(run_dir / "ta-long-cot.jsonl", ta_long, lab, opts, summary)
    merged_data = _model_cot(run_dir / "ta-merged-cot.jsonl", merged, lab, opts, summary)
    mix_long = _mix_long(run_dir / "mix-long.jsonl", teacher_long, teacher_short)
    if "students" in opts["steps"] or opts["steps"] == "all":
        for name, data in (("strong", teacher_long), ("short", teacher_short), ("ta", ta_data), ("merged", merged_data), ("mixlong", mix_long)):
            model = _sft(run_dir / f"sft-student-{name}", instruct["student"], [data], opts, "distill", summary)
            _evaluate(f"student-{name}", model, lab, opts, summary)
    _finish(run_dir, summary)


def _finish(run_dir: Path, summary: dict) -> None:
    print(json.dumps(summary["timings_s"]), json.dumps({k: v.get("accuracy") for k, v in summary["results"].items()}))
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=1))


def _timed(summary: dict, name: str):
    class _Timer:
        def __enter__(self):
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            summary["timings_s"][name] = round(time.perf_counter() - self.start, 1)

    return _Timer()


def _lab(run_dir: Path, opts: dict, summary: dict) -> Path:
    from micota.lab.run import LabConfig, run

    keys = ("n_instruct", "n_train_prompts", "n_eval", "min_difficulty", "max_difficulty", "ops", "instruct_styles")
    with _timed(summary, "lab"):
        values = {k: opts[k] for k in keys} | {"instruct_styles": opts["instruct_styles"].split(",")}
        run(LabConfig(out_dir=str(run_dir / "lab"), **values))
    return run_dir / "lab"


def _sft(out: Path, model: Path, data: list[Path], opts: dict, kind: str, summary: dict) -> Path:
    from micota.sft.run import SFTConfig, run

    cfg = SFTConfig(
        out_dir=out, model=str(model), data=data, max_length=opts["max_length"],
        learning_rate=opts[f"{kind}_lr"], epochs=opts[f"{kind}_epochs"], warmup_ratio=0.05,
        global_batch_size=opts["batch"], micro_batch_size=opts["batch"], logging_steps=50, progress=False,
    )
    with _timed(summary, out.name):
        manifest = run(cfg)
    summary["results"].setdefault(out.name, {}).update(manifest.counts | manifest.metrics)
    return out / "model"


def _engine(model: Path, opts: dict):
    from micota.generate.engine import EngineConfig, load_engine

    return load_engine(EngineConfig(engine="hf", model=str(model), max_new_tokens=opts["max_new_tokens"], batch_size=100, dtype="float32", device="cpu"))


def _requests(records: list[dict]):
    from micota.generate.engine import GenerationRequest
    from micota.lab.task import format_user_turn

    return [GenerationRequest(id=r["id"], messages=[{"role": "user", "content": format_user_turn(r["problem"])}]) for r in records]


def _boxed(text: str) -> str | None:
    return text.rsplit("\\boxed{", 1)[1].split("}", 1)[0].strip() if "\\boxed{" in text else None


def _evaluate(name: str, model: Path, lab: Path, opts: dict, summary: dict) -> None:
    from micota.jsonl import read_jsonl

    bench = read_jsonl(lab / "bench.jsonl")
    gold = {r["id"]: r for r in bench}
    with _timed(summary, f"eval-{name}"):
        completions = list(_engine(model, opts).generate(_requests(bench)))
    correct = [c for c in completions if _boxed(c.text) == gold[c.id]["answer"]]
    by_level: dict[int, list[int]] = {}
    for c in completions:
        by_level.setdefault(gold[c.id]["difficulty"], []).append(int(_boxed(c.text) == gold[c.id]["answer"]))
    summary["results"].setdefault(name, {}).update(
        accuracy=round(len(correct) / len(bench), 3),
        mean_tokens=round(sum(c.n_tokens for c in completions) / len(completions), 1),
        truncated=sum(c.finish_reason == "length" for c in completions),
        wait_per_response=round(sum(c.text.count("Wait") + c.text.count("Hmm") for c in completions) / len(completions), 2),
        by_difficulty={k: round(sum(v) / len(v), 2) for k, v in sorted(by_level.items())},
        example=completions[0].text[:300],
    )
    print(name, summary["results"][name], flush=True)


def _scripted(out: Path, lab: Path, style: str, opts: dict, summary: dict) -> Path:
    """Scripted teacher CoT on prompts.jsonl, filtered to correct + finished (the filter stage's job)."""
    from micota.generate.engine import EngineConfig, ScriptedOptions, load_engine
    from micota.jsonl import read_jsonl

    prompts = read_jsonl(lab / "prompts.jsonl")
    engine = load_engine(EngineConfig(engine="scripted", model=str(lab / "tokenizer"), max_new_tokens=opts["max_new_tokens"],
                                      scripted=ScriptedOptions(style=style, error_rate=opts["error_rate"])))
    return _write_filtered(out, prompts, engine.generate(_requests(prompts)), summary)


def _model_cot(out: Path, model: Path, lab: Path, opts: dict, summary: dict) -> Path:
    from micota.jsonl import read_jsonl

    if out.exists():
        return out
    prompts = read_jsonl(lab / "prompts.jsonl")
    with _timed(summary, f"gen-{out.stem}"):
        completions = list(_engine(model, opts).generate(_requests(prompts)))
    return _write_filtered(out, prompts, completions, summary)


def _write_filtered(out: Path, prompts: list[dict], completions, summary: dict) -> Path:
    from micota.jsonl import write_jsonl
    from micota.lab.task import format_user_turn

    by_id = {p["id"]: p for p in prompts}
    kept, total, tokens = [], 0, 0
    for c in completions:
        total += 1
        record = by_id[c.id]
        if c.finish_reason == "stop" and _boxed(c.text) == record["answer"]:
            tokens += c.n_tokens
            kept.append({"id": c.id, "messages": [{"role": "user", "content": format_user_turn(record["problem"])}, {"role": "assistant", "content": c.text}]})
    write_jsonl(out, sorted(kept, key=lambda r: r["id"]))
    summary["results"][out.stem] = {"kept": len(kept), "of": total, "mean_tokens_kept": round(tokens / max(len(kept), 1), 1)}
    return out


def _mix_long(out: Path, long: Path, short: Path) -> Path:
    """Mix-Long stand-in: long:short = 1:4 over the same number of samples as the long set."""
    from micota.jsonl import read_jsonl, write_jsonl

    longs, shorts = read_jsonl(long), read_jsonl(short)
    rng = random.Random(0)
    n = len(longs)
    mixed = rng.sample(longs, n // 5) + rng.sample(shorts, min(len(shorts), n - n // 5))
    write_jsonl(out, mixed)
    return out


def _linear_merge(base: Path, tuned: Path, out: Path, alpha: float, summary: dict) -> Path:
    """(1 - alpha) * base + alpha * tuned: a stand-in for the DARE+TIES merge stage."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out / "model.safetensors").exists():
        return out
    a = AutoModelForCausalLM.from_pretrained(base)
    b = AutoModelForCausalLM.from_pretrained(tuned)
    state = {k: (1 - alpha) * v + alpha * b.state_dict()[k] for k, v in a.state_dict().items()}
    a.load_state_dict(state)
    a.save_pretrained(out)
    AutoTokenizer.from_pretrained(tuned).save_pretrained(out)
    return out


if __name__ == "__main__":
    main(sys.argv[1:])
