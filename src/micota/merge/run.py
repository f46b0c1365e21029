"""The merge stage: ``run(MergeConfig) -> Manifest`` writes a merged HF model folder.

The model is streamed into a hidden temporary folder beside ``out_dir`` (shards first,
``config.json`` last) and renamed into place only when complete, so an interrupted merge
never leaves a folder that looks like a model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import numpy as np
import torch
import yaml
from tqdm.auto import tqdm

from micota.errors import MicotaError
from micota.manifest import Manifest
from micota.merge.config import MergeConfig, warn_ineffective_parameters
from micota.merge.methods import MERGE_METHODS
from micota.merge.stream import MergeSettings, TensorJob, merged_chunks
from micota.merge.tensor_io import INDEX_NAME, ShardWriter, TensorInfo, model_tensors, plan_shards, write_index
from micota.stage import StageResult, run_stage

if TYPE_CHECKING:
    from micota.merge.search import Probe

RESOLVED_CONFIG_NAME = "merge_config.yaml"
_COPIED_FROM_BASE = (
    "generation_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
    "merges.txt", "added_tokens.json", "chat_template.jinja", "chat_template.json", "tokenizer.model",
)  # fmt: skip
_TORCH_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_LAYER = re.compile(r"\.layers\.(\d+)\.")
_TIED = ("lm_head.weight", "model.embed_tokens.weight")


def run(cfg: MergeConfig, probe: Optional["Probe"] = None) -> Manifest:
    """Merge (or, with ``length_search``, search then merge) into ``cfg.out_dir``; skip if done.

    ``probe`` replaces the generation probe of the length search (tests use a fake one).
    """
    warn_ineffective_parameters(cfg)
    local = with_local_sources(cfg)  # hub ids → HF cache folders; the config hash keeps the ids
    inputs: dict[str, str | Path] = {"base": local.base} if local.base else {}
    inputs.update({f"model_{i}": m.model for i, m in enumerate(local.models)})
    if cfg.length_search is not None:
        inputs["probe_set"] = cfg.length_search.probe_set
        return run_stage("merge", cfg, cfg.out_dir, inputs, lambda out: _search_body(local, out, probe))
    return run_stage("merge", cfg, cfg.out_dir, inputs, lambda out: _merge_body(local, out))


def with_local_sources(cfg: MergeConfig) -> MergeConfig:
    """``cfg`` with every hub id replaced by its snapshot folder (downloaded into the HF cache if needed)."""
    from micota.hub import check_model_source, is_local

    def local(source: str, field: str) -> str:
        if is_local(source):
            return check_model_source(source, field=field, need_tokenizer=False)
        try:
            from huggingface_hub import snapshot_download

            return snapshot_download(source, allow_patterns=["*.safetensors", "*.json", *_COPIED_FROM_BASE])
        except Exception as exc:  # network, auth, missing repo: all mean "get the files another way"
            raise MicotaError(
                f"{field}: {source!r} is not a local folder and could not be fetched from the hub ({type(exc).__name__}). "
                "Download it (`huggingface-cli download ...`) and give the folder instead."
            ) from None

    base = local(cfg.base, "merge.base") if cfg.base else None
    models = [m.model_copy(update={"model": local(m.model, f"merge.models[{i}].model")}) for i, m in enumerate(cfg.models)]
    return cfg.model_copy(update={"base": base, "models": models})


def _merge_body(cfg: MergeConfig, out_dir: Path) -> StageResult:
    counts = merge_into(cfg, out_dir)
    return StageResult(outputs={"model": "."}, counts=counts)


def _search_body(cfg: MergeConfig, out_dir: Path, probe: Optional["Probe"]) -> StageResult:
    """Length-targeted merge: probe merges at several strengths, keep the best one."""
    from micota.merge.search import CURVE_NAME, PLOT_NAME, search_merge_strength, write_curve

    work = out_dir.parent / f".{out_dir.name}.search"
    shutil.rmtree(work, ignore_errors=True)
    try:
        if probe is None:
            from micota.merge.probe import generation_probe

            probe = generation_probe(cfg.length_search, work / "probes")
        result, best = search_merge_strength(cfg, probe, work / "merges", merge_model_files)
        write_curve(result, best)
        weight_map = json.loads((best / INDEX_NAME).read_text())["weight_map"]
        counts = {"tensors": len(weight_map), "shards": len(set(weight_map.values())), "merges_probed": len(result.curve)}
        publish_folder(best, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    metrics = {"length_search": result.to_dict()}
    return StageResult(outputs={"model": ".", "curve": CURVE_NAME, "plot": PLOT_NAME}, counts=counts, metrics=metrics)


def merge_into(cfg: MergeConfig, out_dir: Path) -> dict[str, int]:
    """Write the merged model into ``out_dir`` atomically, keeping files already there (config.yaml)."""
    tmp = out_dir.parent / f".{out_dir.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)  # leftovers of a killed run
    tmp.mkdir(parents=True)
    try:
        counts = merge_model_files(cfg, tmp)
        publish_folder(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return counts


def publish_folder(ready: Path, out_dir: Path) -> None:
    """Swap the complete folder ``ready`` in as ``out_dir`` (renames only), keeping out_dir's files."""
    for item in out_dir.iterdir() if out_dir.exists() else []:
        if not (ready / item.name).exists():
            os.replace(item, ready / item.name)
    old = out_dir.parent / f".{out_dir.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        os.replace(out_dir, old)
    os.replace(ready, out_dir)
    shutil.rmtree(old, ignore_errors=True)


def merge_model_files(cfg: MergeConfig, folder: Path) -> dict[str, int]:
    """Stream the merge into ``folder``: shards, index, copied base files, then config.json."""
    source = Path(cfg.base or cfg.models[0].model)
    jobs = plan_jobs(cfg)
    settings = merge_settings(cfg)
    specs = [(job.name, job.out_dtype, job.base.shape) for job in jobs]
    by_name = {job.name: job for job in jobs}
    shards = plan_shards(specs, cfg.shard_size_mb * 1_000_000)
    weight_map, total = {}, 0
    progress = tqdm(total=sum(job.base.numel for job in jobs), unit="param", unit_scale=True, desc="merge")
    for number, shard in enumerate(shards, start=1):
        name = f"model-{number:05d}-of-{len(shards):05d}.safetensors"
        writer = ShardWriter(folder / name, shard)
        try:
            for tensor_name, _, _ in shard:
                for chunk in merged_chunks(by_name[tensor_name], settings):
                    writer.write(chunk)
                    progress.update(chunk.numel())
                weight_map[tensor_name] = name
        finally:
            writer.close()
        total += writer.data_size
    progress.close()
    write_index(folder, weight_map, total)
    for file_name in _COPIED_FROM_BASE:
        if (source / file_name).is_file():
            shutil.copy2(source / file_name, folder / file_name)
    (folder / RESOLVED_CONFIG_NAME).write_text(yaml.safe_dump(cfg.model_dump(mode="json", by_alias=True), sort_keys=False))
    _write_model_config(cfg, source, folder)  # last: its presence marks a complete model
    return {"tensors": len(jobs), "parameters": sum(job.base.numel for job in jobs), "shards": len(shards)}


def merge_settings(cfg: MergeConfig) -> MergeSettings:
    """The per-merge settings every tensor shares (method row resolved against the config)."""
    return MergeSettings(
        method=MERGE_METHODS[cfg.method],
        normalize=cfg.resolved_normalize(),
        rescale=cfg.resolved_rescale(),
        seed=cfg.seed,
        compute_dtype=_TORCH_DTYPES[cfg.dtype],
        chunk_numel=cfg.chunk_mb * (1 << 20) // 4,
    )


def _write_model_config(cfg: MergeConfig, source: Path, folder: Path) -> None:
    config_path = source / "config.json"
    if not config_path.is_file():
        raise MicotaError(f"{source}: config.json missing; the base must be an HF model folder.")
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if cfg.out_dtype:
        config["dtype" if "torch_dtype" not in config else "torch_dtype"] = cfg.out_dtype
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def plan_jobs(cfg: MergeConfig) -> list[TensorJob]:
    """One job per output tensor, with inputs located, shapes checked and parameters resolved."""
    on_deltas = MERGE_METHODS[cfg.method].on_deltas
    tables = [model_tensors(Path(m.model), cfg.allow_pickle) for m in cfg.models]
    base_table = model_tensors(Path(cfg.base), cfg.allow_pickle) if on_deltas else tables[0]
    _warn_extra_tensors(base_table, tables, cfg)
    n_layers = 1 + max((int(m.group(1)) for n in base_table if (m := _LAYER.search(n))), default=0)
    jobs = []
    for name, base in sorted(base_table.items()):
        infos = [_model_tensor(table, name, cfg.models[i].model) for i, table in enumerate(tables)]
        for i, info in enumerate(infos):
            _check_shapes(cfg, name, base, info, cfg.models[i].model)
        out_dtype = _TORCH_DTYPES[cfg.out_dtype] if cfg.out_dtype and base.dtype.is_floating_point else base.dtype
        jobs.append(
            TensorJob(
                name=name,
                base=base,
                models=infos,
                weights=[layer_value(m.weight, name, n_layers) for m in cfg.models],
                densities=[layer_value(m.density, name, n_layers) for m in cfg.models],
                lambda_=cfg.lambda_,
                out_dtype=out_dtype,
            )
        )
    return jobs


def layer_value(value: float | list[float], name: str, n_layers: int) -> float:
    """A parameter for tensor ``name``: scalars as is, lists interpolated from first to last layer.

    Tensors outside the layer stack take the first value (embeddings) or the last (final
    norm, lm_head), as they sit before and after the layers.

    >>> layer_value([0.0, 1.0], "model.layers.1.mlp.up_proj.weight", 3)
    0.5
    """
    if not isinstance(value, list):
        return float(value)
    match = _LAYER.search(name)
    if match is None:
        return float(value[0] if "embed" in name else value[-1])
    position = int(match.group(1)) / max(n_layers - 1, 1)
    return float(np.interp(position, np.linspace(0.0, 1.0, len(value)), value))


def _model_tensor(table: dict[str, TensorInfo], name: str, model: str) -> TensorInfo:
    if name in table:
        return table[name]
    if name == _TIED[0] and _TIED[1] in table:
        return table[_TIED[1]]  # the model ties lm_head to its embedding; the base does not
    raise MicotaError(
        f"{model}: tensor {name!r} of the base is missing. Both models must share an architecture; "
        "check that `base` and `models` are the checkpoints before and after the same fine-tune."
    )


def _check_shapes(cfg: MergeConfig, name: str, base: TensorInfo, info: TensorInfo, model: str) -> None:
    if base.shape == info.shape:
        return
    rows_only = len(base.shape) == len(info.shape) >= 1 and base.shape[1:] == info.shape[1:]
    if rows_only and cfg.embedding_mismatch == "base_rows" and ("embed" in name or "lm_head" in name):
        return
    fix = (
        "Set `embedding_mismatch: base_rows` to keep the base's rows (extra rows dropped, missing rows = base)."
        if rows_only
        else "The models have different architectures and cannot be merged."
    )
    raise MicotaError(f"tensor {name!r}: base has shape {list(base.shape)}, {model} has {list(info.shape)}. {fix}")


def _warn_extra_tensors(base_table: dict, tables: list[dict], cfg: MergeConfig) -> None:
    for model, table in zip(cfg.models, tables):
        extra = sorted(set(table) - set(base_table))
        if extra:
            warnings.warn(
                f"{model.model}: tensors not in the base are dropped: {', '.join(extra[:5])}"
                + (" …" if len(extra) > 5 else "")
                + (". The base ties lm_head to its embeddings, so the output does too." if _TIED[0] in extra else "."),
                stacklevel=3,
            )
