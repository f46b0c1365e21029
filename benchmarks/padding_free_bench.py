"""Padding-free vs padded micro batches on CPU: forward + backward time of one micro batch.

Padding-free (TRL ``padding_free``) concatenates the micro batch into one sequence with position
ids; transformers turns those into a block-diagonal mask for sdpa/eager, so no token attends
across samples (tests/sft/test_sft_options.py) -- but the mask does not skip work: attention costs
grow with the square of the packed length. It pays where padding dominates (lengths far apart).
Results in docs/benchmarks.md, "## SFT".

    python benchmarks/padding_free_bench.py [--hidden 128] [--layers 4] [--repeats 7]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

BATCHES = {  # name -> sample lengths (tokens) of one micro batch of 8
    "spread 40-180": [40, 60, 80, 100, 120, 140, 160, 180],
    "7 x 30 + 240": [30] * 7 + [240],
}


def step_ms(model, batch, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(**batch, use_cache=False).loss.backward()
        times.append(time.perf_counter() - start)
    return statistics.median(times[2:]) * 1000  # the first two warm the allocator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=7)
    ns = parser.parse_args()

    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    from tests.conftest import build_tiny_model

    torch.set_num_threads(1)
    torch.manual_seed(0)
    folder = build_tiny_model(Path(tempfile.mkdtemp()) / "model", hidden=ns.hidden, layers=ns.layers)
    print("| attention | micro batch lengths | padded ms | padding-free ms |")
    print("|---|---|---:|---:|")
    for attn in ("sdpa", "eager"):
        model = AutoModelForCausalLM.from_pretrained(folder, attn_implementation=attn, dtype=torch.float32).train()
        for name, lengths in BATCHES.items():
            examples = [{"input_ids": torch.randint(3, 300, (n,)).tolist()} for n in lengths]
            padded, packed = (DataCollatorForLanguageModeling(pad_token_id=0, padding_free=pf)([dict(e) for e in examples])
                              for pf in (False, True))
            print(f"| {attn} | {name} | {step_ms(model, padded, ns.repeats):.0f} | {step_ms(model, packed, ns.repeats):.0f} |")


if __name__ == "__main__":
    main()
