"""Cost of the weight-file check every stage makes before loading a model (micota.weight_files).

Builds a Qwen2.5-32B-shaped folder without writing its 65 GB: each shard is a real safetensors
header (the 32B model's tensor names, shapes, bf16 dtypes and offsets) followed by a sparse
hole up to the shard's full size (``truncate``), plus the index. Then times
``check_weight_files`` over it, cold (page cache dropped for those files where the OS lets us)
and warm, and once more with the last shard cut short by 1 MB (the error path).

Usage (result and command in docs/benchmarks.md, "## Bad input")::

    python benchmarks/weight_check_bench.py [--shards 17] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# Qwen2.5-32B (config.json of Qwen/Qwen2.5-32B-Instruct): 64 layers, hidden 5120, MLP 27648, 40 heads / 8 KV heads, vocab 152064
LAYERS, HIDDEN, MLP, KV, VOCAB = 64, 5120, 27648, 1024, 152064


def tensor_specs() -> list[tuple[str, list[int]]]:
    specs = [("model.embed_tokens.weight", [VOCAB, HIDDEN])]
    for i in range(LAYERS):
        p = f"model.layers.{i}."
        specs += [(p + "input_layernorm.weight", [HIDDEN]), (p + "post_attention_layernorm.weight", [HIDDEN]),
                  (p + "self_attn.q_proj.weight", [HIDDEN, HIDDEN]), (p + "self_attn.q_proj.bias", [HIDDEN]),
                  (p + "self_attn.k_proj.weight", [KV, HIDDEN]), (p + "self_attn.k_proj.bias", [KV]),
                  (p + "self_attn.v_proj.weight", [KV, HIDDEN]), (p + "self_attn.v_proj.bias", [KV]),
                  (p + "self_attn.o_proj.weight", [HIDDEN, HIDDEN]), (p + "mlp.gate_proj.weight", [MLP, HIDDEN]),
                  (p + "mlp.up_proj.weight", [MLP, HIDDEN]), (p + "mlp.down_proj.weight", [HIDDEN, MLP])]
    return specs + [("model.norm.weight", [HIDDEN]), ("lm_head.weight", [VOCAB, HIDDEN])]


def build(folder: Path, shards: int) -> int:
    specs = tensor_specs()
    per = -(-len(specs) // shards)
    weight_map, total = {}, 0
    for s in range(shards):
        name = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for tensor, shape in specs[s * per : (s + 1) * per]:
            size = 2 * shape[0] * (shape[1] if len(shape) > 1 else 1)
            header[tensor] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
            weight_map[tensor] = name
            offset += size
        raw = json.dumps(header).encode()
        raw += b" " * (-len(raw) % 8)
        with (folder / name).open("wb") as handle:
            handle.write(struct.pack("<Q", len(raw)) + raw)
            handle.truncate(8 + len(raw) + offset)  # sparse: the data area takes no disk space
        total += offset
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return total


def timed(folder: Path, repeat: int) -> list[float]:
    from micota.weight_files import check_weight_files

    times = []
    for _ in range(repeat):
        for path in folder.iterdir():  # drop these files from the page cache (best effort)
            fd = os.open(path, os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
        start = time.perf_counter()
        check_weight_files(folder, field="bench")
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=17)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from micota.errors import MicotaError
    from micota.weight_files import check_weight_files

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        total = build(folder, args.shards)
        times = timed(folder, args.repeat)
        last = sorted(folder.glob("*.safetensors"))[-1]
        os.truncate(last, last.stat().st_size - (1 << 20))
        start = time.perf_counter()
        try:
            check_weight_files(folder, field="bench")
            message = "no error (bug)"
        except MicotaError as exc:
            message = str(exc)
        cut = time.perf_counter() - start
    print(json.dumps({"tensors": len(tensor_specs()), "shards": args.shards, "weights_gb": round(total / 1e9, 1),
                      "check_s_cold_each": [round(t, 4) for t in times], "check_s_cut_file": round(cut, 4),
                      "cut_message": message[:200]}, indent=1))


if __name__ == "__main__":
    main()
