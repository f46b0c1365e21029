"""Distributed vs single-process SFT on CPU: wall time and loss curves of the same stage, same global batch.

Each variant runs the real ``sft`` stage (``micota.sft.run``) on the same data and model:
``inline`` (1 process in the orchestrator), ``torchrun`` (2 gloo ranks, the CPU auto choice),
``accelerate`` (2 ranks through the packaged ddp.yaml, the GPU command), and ``padding-free``
(inline, one flat sequence per micro batch). Reports the stage wall time (manifest, includes
starting the ranks and loading) and the trainer's own ``train_runtime``, the per-step losses' largest relative gap to ``inline`` and the
final loss. Results and the command are in docs/benchmarks.md, "## SFT".

    python benchmarks/sft_dist_bench.py [--samples 256] [--hidden 128] [--layers 4] [--epochs 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

VARIANTS = {  # name -> SFTConfig fields on top of the shared ones
    "inline": {},
    "torchrun": {"num_processes": 2, "launcher": "torchrun"},
    "accelerate": {"num_processes": 2, "launcher": "accelerate"},
    "padding-free": {"padding_free": True},
}


def write_chats(path: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        a, b = i % 97, (i * 7) % 89
        steps = " ".join(f"Step {k}: carry {(a + k * b) % 10}." for k in range(1 + i % 12))  # 1-12 steps: mixed lengths
        rows.append({"messages": [{"role": "user", "content": f"What is {a} + {b}?"},
                                  {"role": "assistant", "content": f"{steps} The answer is \\boxed{{{a + b}}}."}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def losses(out: Path) -> list[float]:
    return [e["loss"] for e in json.loads((out / "log_history.json").read_text()) if "loss" in e]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the inline process (ranks get 1 each "
                        "from the launcher); the lab recipe's cpu_threads: 1 for the same reason")
    ns = parser.parse_args()
    import torch

    torch.set_num_threads(ns.threads)

    from micota.sft import SFTConfig, run
    from tests.conftest import build_tiny_model

    root = Path(tempfile.mkdtemp(prefix="sft-dist-bench-"))
    model = build_tiny_model(root / "model", hidden=ns.hidden, layers=ns.layers)
    data = write_chats(root / "data.jsonl", ns.samples)
    shared = dict(model=str(model), data=data, max_length=256, learning_rate=1e-3, epochs=ns.epochs, global_batch_size=16,
                  micro_batch_size=8, logging_steps=1, progress=False)
    results = {}
    for name in ns.variants:
        manifest = run(SFTConfig(out_dir=root / name, **shared, **VARIANTS[name]))
        history = json.loads((root / name / "log_history.json").read_text())
        results[name] = {"wall_s": manifest.wall_time_s, "train_s": history[-1]["train_runtime"], "steps": manifest.metrics["steps"],
                         "processes": manifest.metrics["processes"], "losses": losses(root / name)}
    base = results.get("inline", {}).get("losses")
    print(f"load average after: {os.getloadavg()}; inline torch threads {ns.threads}; model hidden {ns.hidden} x {ns.layers} layers, "
          f"{ns.samples} samples, global batch 16 (micro 8), {ns.epochs} epoch(s)")
    print("| variant | processes | steps | stage wall s | of which training s | final loss | max rel. loss gap to inline |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        gap = max(abs(a - b) / a for a, b in zip(base, r["losses"])) if base else float("nan")
        print(f"| {name} | {r['processes']} | {r['steps']} | {r['wall_s']:.1f} | {r['train_s']:.1f} | {r['losses'][-1]:.4f} | {gap:.1e} |")
    (root / "results.json").write_text(json.dumps(results, indent=1))
    print(f"results: {root / 'results.json'}")


if __name__ == "__main__":
    main()
