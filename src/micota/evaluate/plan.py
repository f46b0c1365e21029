"""Planning hooks of the evaluate stage: where each model runs, and the checks made before a run starts.

The pipeline planner calls :func:`placement` (what ``micota run --dry-run`` prints) and
:func:`preflight` (before any stage of the run starts), so a missing benchmark folder or model
is reported in the first second of a run, not days into it.

Run-folder rule: a model or lab-benchmark path inside the evaluate stage's run folder (the
parent of ``out_dir``, where every stage of the recipe writes) is the output of an earlier
stage of the same recipe — the planner resolved an ``@stage`` reference to it — so
:func:`preflight` does not require it to exist yet. :func:`check_sources` with no run folder,
which the stage itself calls when it starts, requires every path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from micota.errors import MicotaError
from micota.evaluate.config import LAB_BENCHMARK, EvaluateConfig
from micota.generate.engine import EngineConfig
from micota.generate.placement import check_engine, engine_placement, resolve_engine
from micota.resources import Placement

_LOCAL_MODEL_ENGINES = {"hf", "vllm"}  # engines that load model weights from `model`


def model_engines(cfg: EvaluateConfig) -> dict[str, EngineConfig]:
    """Every model's engine: shared settings, its overrides, then placement for ``cfg.resources``."""
    return {name: resolve_engine(cfg.engine_settings(name), cfg.resources) for name in cfg.models}


def _engines_to_place(cfg: EvaluateConfig) -> dict[str, tuple[str, EngineConfig]]:
    """Name -> (recipe field, engine) of every engine the stage starts: each model's and the judge's."""
    engines = {name: (f"models.{name}.engine", cfg.engine_settings(name)) for name in cfg.models}
    if "judge" in cfg.scoring and cfg.judge is not None:
        engines["judge"] = ("judge.engine", cfg.judge.engine)
    return engines


def placement(cfg: EvaluateConfig) -> Placement:
    """The largest placement among the models (and the judge): most GPUs, then the widest tensor parallelism."""
    plans = {name: engine_placement(engine, cfg.resources) for name, (_, engine) in _engines_to_place(cfg).items()}
    name, largest = max(plans.items(), key=lambda item: (item[1].gpus, item[1].tensor_parallel, item[1].processes))
    shapes = sorted({f"TP {p.tensor_parallel} x DP {p.data_parallel}" for p in plans.values()})
    note = f"{largest.note}; largest: {name}" + (f"; per model: {', '.join(shapes)}" if len(shapes) > 1 else "")
    return Placement(largest.processes, largest.gpus, largest.tensor_parallel, largest.data_parallel, note)


def preflight(cfg: EvaluateConfig) -> None:
    """Cheap checks before any stage of the run starts: benchmark data, model sources, engine placement."""
    check_sources(cfg, run_folder=Path(cfg.out_dir).parent)
    for field, engine in _engines_to_place(cfg).values():
        check_engine(engine, cfg.resources, field=field)


def check_sources(cfg: EvaluateConfig, run_folder: Optional[Path] = None) -> None:
    """Every benchmark's data and every model (and judge model) is there — or, under ``run_folder``, will be."""
    for bench in cfg.benchmarks:
        _check_benchmark(cfg, bench.name, bench.path, run_folder)
    for name in cfg.models:
        _check_model(cfg.engine_settings(name), f"models.{name}", run_folder)
    if "judge" in cfg.scoring and cfg.judge is not None:
        _check_model(cfg.judge.engine, "judge.engine.model", run_folder)


def _made_by_the_run(path: str, run_folder: Optional[Path]) -> bool:
    return run_folder is not None and Path(path).resolve().is_relative_to(run_folder.resolve())


def _check_benchmark(cfg: EvaluateConfig, name: str, path: Optional[str], run_folder: Optional[Path]) -> None:
    from micota.data.benchmarks import BENCHMARKS, benchmark_file, benchmark_spec

    if name == LAB_BENCHMARK:
        if not Path(str(path)).is_file() and not _made_by_the_run(str(path), run_folder):
            raise MicotaError(f"benchmarks: lab benchmark file {path!r} does not exist. Fix `path:`, or run the stage "
                              "that writes it (the lab stage writes bench.jsonl).")
        return
    benchmark_spec(name)  # an unknown name lists the known ones
    if cfg.benchmark_source == "hub":
        try:
            import datasets  # noqa: F401
        except ImportError:
            raise MicotaError(f"benchmarks: {name} from the hub ({BENCHMARKS[name].hub_id}) needs the `datasets` "
                              "package; install it, or use `benchmark_source: local` with `data_dir:`.") from None
        return
    try:
        benchmark_file(name, cfg.data_dir)
    except MicotaError as exc:
        raise MicotaError(f"evaluate (out_dir {cfg.out_dir}): {exc}") from None


def _check_model(engine: EngineConfig, field: str, run_folder: Optional[Path]) -> None:
    from micota.hub import check_model_source, is_local

    if engine.engine == "openai":  # a server's model name, not a path
        return
    source = engine.model
    if _made_by_the_run(source, run_folder):
        return
    if is_local(source) and engine.engine not in _LOCAL_MODEL_ENGINES:  # scripted: a tokenizer folder
        if not Path(source).exists():
            raise MicotaError(f"{field}: {source!r} does not exist. Fix the path, or run the stage that creates it.")
    elif is_local(source):
        check_model_source(source, field=field, need_tokenizer=engine.tokenizer is None)
    elif os.environ.get("HF_HUB_OFFLINE") == "1" and not _in_hub_cache(source):
        raise MicotaError(f"{field}: hub id {source!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1. "
                          f"Download it first (huggingface-cli download {source}) or give a local model folder.")


def _in_hub_cache(repo_id: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return False
    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
