"""Merge speed and memory on a Qwen2.5-0.5B-shaped model (issue 4's performance goal).

Builds a randomly initialised Qwen2 with the Qwen2.5-0.5B-Instruct shape in bf16 and a
perturbed "fine-tuned" copy under a temp folder, then runs each variant in its own child
process (so peak RSS figures don't mix) and prints a table:

* ``io_floor``   — read both inputs tensor by tensor and write one output;
* ``io_arith``   — the same plus straightforward fp32 arithmetic (θ₀ + 0.5·(θ₁ − θ₀)) per tensor;
* ``dare_ties``  — micota's streaming merge, density 0.5 (model files only);
* ``ties``       — micota's TIES, density 0.5;
* ``dare_ties_stage`` — ``micota.merge.run`` (adds input hashing and the manifest).

Usage: ``python benchmarks/merge_bench.py [--workdir /tmp/merge_bench] [--repeat 1] [--keep]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("io_floor", "io_arith", "dare_ties", "ties", "dare_ties_stage")


def build_models(root: Path) -> tuple[Path, Path]:
    """Write base and fine-tuned folders (bf16 safetensors + config); ~1 GB each."""
    import torch
    from safetensors.torch import save_file
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
        num_key_value_heads=2, max_position_embeddings=32768, tie_word_embeddings=True, dtype="bfloat16",
    )  # fmt: skip
    with torch.device("meta"):
        shapes = {n: t.shape for n, t in Qwen2ForCausalLM(config).state_dict().items() if n != "lm_head.weight"}
    generator = torch.Generator().manual_seed(0)
    base, ft = root / "base", root / "ft"
    for folder in (base, ft):
        folder.mkdir(parents=True, exist_ok=True)
        config.save_pretrained(folder)
    tensors_base, tensors_ft = {}, {}
    for name, shape in shapes.items():
        theta = torch.randn(shape, generator=generator) * 0.02
        tensors_base[name] = theta.to(torch.bfloat16)
        tensors_ft[name] = (theta + torch.randn(shape, generator=generator) * 0.002).to(torch.bfloat16)
    save_file(tensors_base, str(base / "model.safetensors"), metadata={"format": "pt"})
    del tensors_base
    save_file(tensors_ft, str(ft / "model.safetensors"), metadata={"format": "pt"})
    return base, ft


def run_variant(variant: str, base: Path, ft: Path, out: Path) -> None:
    """Child process body: do one variant, print {"wall_s", "peak_rss_mb"} as JSON."""
    import torch

    from micota.merge import MergeConfig, run
    from micota.merge.run import merge_into

    shutil.rmtree(out, ignore_errors=True)
    started = time.perf_counter()
    if variant in ("io_floor", "io_arith"):
        _copy_or_average(base, ft, out, arithmetic=variant == "io_arith")
    else:
        method = "ties" if variant == "ties" else "dare_ties"
        cfg = MergeConfig(method=method, base=str(base), models=[{"model": str(ft), "density": 0.5}], out_dir=out)
        if variant == "dare_ties_stage":
            run(cfg)
        else:
            out.mkdir(parents=True)
            merge_into(cfg, out)
    wall = time.perf_counter() - started
    peak_kb = _peak_rss_kb()
    print(json.dumps({"wall_s": round(wall, 2), "peak_rss_mb": round(peak_kb / 1024), "threads": torch.get_num_threads()}))


def _peak_rss_kb() -> int:
    """This process's peak RSS. VmHWM, not getrusage: Linux carries ru_maxrss across exec, so a
    child would report its parent's peak (here the ~3 GB of model building)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _copy_or_average(base: Path, ft: Path, out: Path, arithmetic: bool) -> None:
    """The floors: whole tensors read with the same reader, written with the same writer."""
    import torch

    from micota.merge.tensor_io import ShardWriter, model_tensors, read_rows

    out.mkdir(parents=True)
    base_t, ft_t = model_tensors(base), model_tensors(ft)
    names = sorted(base_t)
    writer = ShardWriter(out / "model.safetensors", [(n, base_t[n].dtype, base_t[n].shape) for n in names])
    for name in names:
        a = read_rows(base_t[name], 0, base_t[name].shape[0])
        b = read_rows(ft_t[name], 0, ft_t[name].shape[0])
        if arithmetic:
            a32 = a.float()
            a = (a32 + 0.5 * (b.float() - a32)).to(torch.bfloat16)
        writer.write(a)
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/merge_bench"))
    parser.add_argument("--repeat", type=int, default=1, help="runs per variant; the best wall time is reported")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--keep", action="store_true", help="keep the ~2 GB of models for another run")
    parser.add_argument("--child", nargs=4, metavar=("VARIANT", "BASE", "FT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        variant, base, ft, out = args.child
        run_variant(variant, Path(base), Path(ft), Path(out))
        return
    base, ft = args.workdir / "base", args.workdir / "ft"
    if not (ft / "model.safetensors").is_file():
        print("building models …", flush=True)
        base, ft = build_models(args.workdir)
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    results = {}
    for variant in args.variants.split(","):
        runs = [_child(variant, base, ft, args.workdir / "out") for _ in range(args.repeat)]
        results[variant] = min(runs, key=lambda r: r["wall_s"]) | {"peak_rss_mb": max(r["peak_rss_mb"] for r in runs)}
        print(f"{variant:16s} wall {results[variant]['wall_s']:6.2f} s   peak RSS {results[variant]['peak_rss_mb']:5d} MB", flush=True)
    floor = results.get("io_arith", {}).get("wall_s")
    if floor:
        for variant in ("dare_ties", "ties", "dare_ties_stage"):
            if variant in results:
                print(f"{variant}: {results[variant]['wall_s'] / floor:.2f}x the I/O + arithmetic floor")
    print(f"load average after: {os.getloadavg()}")
    shutil.rmtree(args.workdir / "out", ignore_errors=True)
    if not args.keep:
        shutil.rmtree(args.workdir, ignore_errors=True)


def _child(variant: str, base: Path, ft: Path, out: Path) -> dict:
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", ""), "TQDM_DISABLE": "1"}
    cmd = [sys.executable, __file__, "--child", variant, str(base), str(ft), str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
