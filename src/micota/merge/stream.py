"""The streaming merge of one tensor: chunks in, merged chunks out.

A tensor is cut into row chunks of about ``chunk_numel`` entries. Methods that need a
whole-tensor statistic (TIES's top-k threshold, the l1 rescale of DARE) make a first pass
over the chunks to gather it; small tensors (one chunk) are read once and kept for the
second pass. DARE masks come from :mod:`micota.merge.masks`, so they do not depend on the
chunking.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Optional

import numpy as np
import torch

from micota.merge.masks import keep_mask, mask_key
from micota.merge.methods import MergeMethod, Rescale, magnitude_mask, magnitude_threshold, mix_deltas, mix_parameters, rescale_factor
from micota.merge.tensor_io import TensorInfo, read_rows


@dataclass
class TensorJob:
    """One output tensor: where its inputs are and the parameters resolved for its layer."""

    name: str
    base: TensorInfo  # also fixes the output shape
    models: list[TensorInfo]
    weights: list[float]
    densities: list[float]
    lambda_: float
    out_dtype: torch.dtype


@dataclass
class MergeSettings:
    """Settings shared by every tensor of one merge."""

    method: MergeMethod
    normalize: bool
    rescale: Rescale
    seed: int
    compute_dtype: torch.dtype
    chunk_numel: int


@dataclass
class _ModelState:
    """Per-model whole-tensor statistics and the running TIES tie budget."""

    scale: float = 1.0
    threshold: float = 0.0
    equal_budget: int = 0
    key: Optional[np.ndarray] = None
    masks: dict[int, torch.Tensor] = field(default_factory=dict)  # cached for single-chunk tensors


def chunk_bounds(info: TensorInfo, chunk_numel: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` covering the tensor (one range for 0-d and small tensors)."""
    rows = info.shape[0] if info.shape else 1
    step = max(1, chunk_numel // max(info.row_numel, 1))
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def merged_chunks(job: TensorJob, settings: MergeSettings) -> Iterator[torch.Tensor]:
    """Yield the merged tensor chunk by chunk, in row order, already cast to ``out_dtype``."""
    if not job.base.dtype.is_floating_point:
        for start, stop in chunk_bounds(job.base, settings.chunk_numel):
            yield read_rows(job.base, start, stop)
        return
    bounds = chunk_bounds(job.base, settings.chunk_numel)
    load = _chunk_loader(job, settings.compute_dtype)
    states = [_ModelState(key=mask_key(settings.seed, job.name, i)) for i in range(len(job.models))]
    cached = None
    if _needs_statistics(job, settings):
        cached = load(*bounds[0]) if len(bounds) == 1 else None
        _gather_statistics(job, settings, states, bounds, load, cached)
    for start, stop in bounds:
        base, params = cached if cached is not None else load(start, stop)
        yield _merge_chunk(job, settings, states, base, params, start).to(job.out_dtype)


def _needs_statistics(job: TensorJob, settings: MergeSettings) -> bool:
    sparse = settings.method.sparsify is not None and any(d < 1.0 for d in job.densities)
    return sparse and (settings.method.sparsify == "magnitude" or settings.rescale == "l1")


def _chunk_loader(job: TensorJob, dtype: torch.dtype) -> Callable[[int, int], tuple[torch.Tensor, list[torch.Tensor]]]:
    """Read rows of the base and of every model; rows a model lacks are the base's (δ = 0)."""

    def load(start: int, stop: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        base = read_rows(job.base, start, stop).to(dtype)
        params = []
        for info in job.models:
            rows = info.shape[0] if info.shape else 1
            if stop <= rows:
                params.append(read_rows(info, start, stop).to(dtype))
                continue
            merged = base.clone()  # embedding_mismatch: base_rows, model has fewer rows
            if start < rows:
                merged[: rows - start] = read_rows(info, start, rows).to(dtype)
            params.append(merged)
        return base, params

    return load


def _gather_statistics(job, settings, states, bounds, load, cached) -> None:
    """First pass: TIES thresholds and l1 norms of each model's delta over the whole tensor."""
    for index, state in enumerate(states):
        density = job.densities[index]
        if density >= 1.0:
            continue
        magnitudes = torch.empty(job.base.numel, dtype=torch.float32) if settings.method.sparsify == "magnitude" else None
        l1_all = l1_kept = 0.0
        offset = 0
        for start, stop in bounds:
            base, params = cached if cached is not None else load(start, stop)
            delta = (params[index] - base).reshape(-1)
            abs_delta = delta.abs()
            l1_all += float(abs_delta.sum(dtype=torch.float64))
            if magnitudes is not None:
                magnitudes[offset : offset + delta.numel()] = abs_delta
            else:
                mask = keep_mask(state.key, density, offset, offset + delta.numel())
                if cached is not None:
                    state.masks[offset] = mask
                l1_kept += float((abs_delta * mask).sum(dtype=torch.float64))
            offset += delta.numel()
        if magnitudes is not None:
            state.threshold, state.equal_budget, l1_kept = magnitude_threshold(magnitudes, density)
        state.scale = rescale_factor(settings.rescale, density, l1_all, l1_kept)


def _merge_chunk(job, settings, states, base, params, start) -> torch.Tensor:
    """Sparsify, rescale, mix and add back one chunk."""
    if not settings.method.on_deltas:
        return mix_parameters(params, job.weights, settings.normalize)
    offset = start * job.base.row_numel
    deltas = []
    for index, state in enumerate(states):
        delta = params[index].sub_(base)  # params are fresh buffers: reuse them for δ
        density = job.densities[index]
        if settings.method.sparsify is not None and density < 1.0:
            mask = _chunk_mask(settings, state, delta, density, offset)
            delta = torch.where(mask.reshape(delta.shape), delta, 0.0)
            scale = state.scale if settings.rescale == "l1" else rescale_factor(settings.rescale, density, 0.0, 0.0)
            if scale != 1.0:
                delta.mul_(scale)
        deltas.append(delta)
    mixed = mix_deltas(deltas, job.weights, settings.method.consensus, settings.normalize)
    return base.add_(mixed, alpha=job.lambda_) if job.lambda_ != 0.0 else base


def _chunk_mask(settings, state, delta, density, offset) -> torch.Tensor:
    if settings.method.sparsify == "random":
        cached = state.masks.get(offset)
        return cached if cached is not None else keep_mask(state.key, density, offset, offset + delta.numel())
    mask, state.equal_budget = magnitude_mask(delta.abs(), state.threshold, state.equal_budget)
    return mask
