"""BPC throughput vs a bare forward pass over the same batches (issue 5 goal: ≥ 0.8×).

Both sides see identical padded batches (same ``length_batches`` packing). "bare" is
``model(input_ids, attention_mask)`` producing full logits, the cheapest thing any BPC
implementation must at least do; "bpc" is :func:`micota.analyze.bpc.score_examples`
(decoder pass, LM head only at response positions, log-softmax, gather, sums).
Tokens/s counts real (unpadded) prompt + response tokens.

Usage (results and exact commands in docs/benchmarks.md, "## Evaluation and analysis")::

    python benchmarks/bpc_bench.py                       # CPU, tiny Qwen2 shape
    python benchmarks/bpc_bench.py --device cuda --dtype bfloat16 --shape qwen2.5-0.5b --samples 64
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SHAPES = {  # random-init Qwen2 shapes: no download needed
    "tiny": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, vocab_size=8192),
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936),
}


def synthetic_examples(n: int, vocab: int, prompt_len: tuple[int, int], response_len: tuple[int, int], seed: int = 0):
    from micota.analyze.bpc import EncodedExample

    rng = random.Random(seed)
    examples = []
    for _ in range(n):
        p, r = rng.randint(*prompt_len), rng.randint(*response_len)
        examples.append(EncodedExample([rng.randrange(1, vocab) for _ in range(p)], [rng.randrange(1, vocab) for _ in range(r)], 4 * r))
    return examples


def timed(fn, device: str) -> float:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--samples", type=int, default=32)
    parser.add_argument("--prompt-len", type=int, nargs=2, default=(64, 160))
    parser.add_argument("--response-len", type=int, nargs=2, default=(256, 1024))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-batch-tokens", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--vocab", type=int, default=0, help="override the shape's vocabulary size (0 = keep)")
    args = parser.parse_args()

    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from micota.analyze.bpc import length_batches, padded_batch, score_examples

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    shape = {**SHAPES[args.shape], **({"vocab_size": args.vocab} if args.vocab else {})}
    config = Qwen2Config(**shape, max_position_embeddings=4096, tie_word_embeddings=True)
    model = Qwen2ForCausalLM(config).to(device=args.device, dtype=getattr(torch, args.dtype)).eval()
    examples = synthetic_examples(args.samples, config.vocab_size, tuple(args.prompt_len), tuple(args.response_len))
    tokens = sum(len(e.prompt_ids) + len(e.response_ids) for e in examples)
    batches = [padded_batch([examples[i] for i in b], 0)[:2] for b in length_batches(examples, args.batch_size, args.max_batch_tokens)]

    def bare() -> None:
        with torch.inference_mode():
            for ids, mask in batches:
                model(input_ids=ids.to(args.device), attention_mask=mask.to(args.device), use_cache=False)

    def bpc() -> None:
        score_examples(model, examples, 0, batch_size=args.batch_size, max_batch_tokens=args.max_batch_tokens)

    bare(), bpc()  # warm-up (allocator, kernels)
    runs = {"bare": [], "bpc": []}
    for _ in range(args.repeats):  # interleaved so background load hits both alike
        runs["bare"].append(timed(bare, args.device))
        runs["bpc"].append(timed(bpc, args.device))
    best = {name: min(times) for name, times in runs.items()}
    result = {"shape": args.shape, "vocab": config.vocab_size, "device": args.device, "dtype": args.dtype, "samples": args.samples, "tokens": tokens,
              "batches": len(batches), "bare_tokens_per_s": round(tokens / best["bare"]),
              "bpc_tokens_per_s": round(tokens / best["bpc"]), "ratio_bpc_over_bare": round(best["bare"] / best["bpc"], 3)}
    if args.device.startswith("cuda"):
        result["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
