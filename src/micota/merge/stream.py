"""The streaming merge of one tensor: chunks in, merged chunks out.

A tensor is cut into row chunks of about ``chunk_numel`` entries. Methods that need a
whole-tensor statistic (TIES's top-k threshold, the l1 rescale of DARE) make a first pass
over the chunks to gather it; small tensors (one chunk) are read once and kept for the
second pass. DARE masks come from :mod:`micota.merge.masks`, so they do not depend on the
chunking.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    applied: bool = False  # the (single, reused) chunk's delta is already masked
    masks: Optional[torch.Tensor] = None  # the whole tensor's DARE mask, drawn in the first pass


def chunk_bounds(info: TensorInfo, chunk_numel: int) -> list[tuple[int, int]]:
    """Row ranges ``[start, stop)`` covering the tensor (one range for 0-d and small tensors)."""
    rows = info.shape[0] if info.shape else 1
    step = max(1, chunk_numel // max(info.row_numel, 1))
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def merged_chunks(job: TensorJob, settings: MergeSettings) -> Iterator[torch.Tensor]:
    """Yield the merged tensor chunk by chunk, in row order, already cast to ``out_dtype``."""
    bounds = chunk_bounds(job.base, settings.chunk_numel)
    if not job.base.dtype.is_floating_point:
        for start, stop in bounds:
            yield read_rows(job.base, start, stop)
        return
    load = _chunk_loader(job, settings)
    states = [_ModelState(key=mask_key(settings.seed, job.name, i)) for i in range(len(job.models))]
    kept_chunk = None
    if _needs_statistics(job, settings):
        kept_chunk = _gather_statistics(job, settings, states, bounds, load)
    for start, stop in bounds:
        base, params = kept_chunk if kept_chunk is not None else load(start, stop)
        yield _merge_chunk(job, settings, states, base, params, start).to(job.out_dtype)


def _needs_statistics(job: TensorJob, settings: MergeSettings) -> bool:
    sparse = settings.method.sparsify is not None and any(d < 1.0 for d in job.densities)
    return sparse and (settings.method.sparsify == "magnitude" or settings.rescale == "l1")


def _chunk_loader(job: TensorJob, settings: MergeSettings) -> Callable[[int, int], tuple[torch.Tensor, list[torch.Tensor]]]:
    """Read rows of the base and the models; for delta methods the models come back as δᵢ.

    Rows a model lacks (``embedding_mismatch: base_rows``) are the base's, i.e. δ = 0.
    """
    dtype, on_deltas = settings.compute_dtype, settings.method.on_deltas

    def load(start: int, stop: int) -> tuple[torch.Tensor, list[torch.Tensor]]:
        base = read_rows(job.base, start, stop).to(dtype)
        params = []
        for info in job.models:
            rows = info.shape[0] if info.shape else 1
            if stop <= rows:
                param = read_rows(info, start, stop).to(dtype)
            else:
                param = base.clone()
                if start < rows:
                    param[: rows - start] = read_rows(info, start, rows).to(dtype)
            params.append(param.sub_(base) if on_deltas else param)
        return base, params

    return load


def _gather_statistics(job, settings, states, bounds, load):
    """First pass: TIES thresholds, DARE masks and l1 norms of each δᵢ over the whole tensor.

    Returns the loaded chunk when the tensor is a single chunk, so it is not read twice.
    """
    magnitude = settings.method.sparsify == "magnitude"
    active = [i for i, d in enumerate(job.densities) if d < 1.0]
    buffers = {i: torch.empty(job.base.numel, dtype=torch.float32) for i in active} if magnitude else {}
    l1_all = dict.fromkeys(active, 0.0)
    l1_kept = dict.fromkeys(active, 0.0)
    chunk = None
    for start, stop in bounds:
        chunk = load(start, stop)
        offset = start * job.base.row_numel
        for index in active:
            delta = chunk[1][index].reshape(-1)
            l1_all[index] += l1_norm(delta)
            if magnitude:
                buffers[index][offset : offset + delta.numel()] = delta.abs()
                continue
            mask = keep_mask(states[index].key, job.densities[index], offset, offset + delta.numel())
            if len(bounds) == 1:
                apply_mask(delta, mask)  # the kept chunk is reused: mask it once, here
                states[index].applied = True
                l1_kept[index] += l1_norm(delta)
            else:
                # 1 byte/entry, cheaper than drawing it again; one allocation for the whole tensor,
                # because per-chunk masks kept alive between temporaries fragment the heap (+1 GB RSS)
                if states[index].masks is None:
                    states[index].masks = torch.empty(job.base.numel, dtype=torch.bool)
                states[index].masks[offset : offset + delta.numel()] = mask
                l1_kept[index] += l1_norm(delta * mask)
    for index in active:
        state = states[index]
        if magnitude:
            state.threshold, state.equal_budget, l1_kept[index] = magnitude_threshold(buffers.pop(index), job.densities[index])
        state.scale = rescale_factor(settings.rescale, job.densities[index], l1_all[index], l1_kept[index])
    return chunk if len(bounds) == 1 else None


def apply_mask(delta: torch.Tensor, mask: torch.Tensor) -> None:
    """Zero the dropped entries of ``delta`` in place (numpy's bool-times-float loop is ~2x torch's)."""
    if delta.dtype in (torch.float32, torch.float64):
        flat = delta.reshape(-1).numpy()
        np.multiply(flat, mask.reshape(-1).numpy(), out=flat)
    else:
        delta.mul_(mask.reshape(delta.shape))


def l1_norm(values: torch.Tensor) -> float:
    """‖x‖₁ accumulated in float64 (numpy's pairwise sum: fast, and independent of torch's thread
    count, so the l1 rescale factor, and hence the output, does not change with threads or chunks).

    >>> l1_norm(torch.tensor([1.0, -2.5]))
    3.5
    """
    flat = values.reshape(-1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    return float(np.abs(flat.numpy()).sum(dtype=np.float64))


def _merge_chunk(job, settings, states, base, params, start) -> torch.Tensor:
    """Sparsify, rescale, mix and add back one chunk (``params`` are δᵢ for delta methods)."""
    if not settings.method.on_deltas:
        return mix_parameters(params, job.weights, settings.normalize)
    offset = start * job.base.row_numel
    deltas, scales = [], []
    for index, state in enumerate(states):
        delta, density, scale = params[index], job.densities[index], 1.0
        if settings.method.sparsify is not None and density < 1.0:
            if not state.applied:
                apply_mask(delta, _chunk_mask(settings, state, delta, density, offset))
            scale = state.scale if settings.rescale == "l1" else rescale_factor(settings.rescale, density, 0.0, 0.0)
        deltas.append(delta)
        scales.append(scale)
    if len(deltas) == 1:
        # One model: consensus keeps exactly its nonzero entries, and normalizing divides them by
        # w again, so the merge is θ₀ + λ·s·δ̃ (normalized) or θ₀ + λ·w·s·δ̃: one fused op.
        weight = job.weights[0]
        factor = (1.0 if weight != 0.0 else 0.0) if settings.normalize else weight
        return base.add_(deltas[0], alpha=job.lambda_ * factor * scales[0])
    deltas = [d.mul_(s) if s != 1.0 else d for d, s in zip(deltas, scales)]
    mixed = mix_deltas(deltas, job.weights, settings.method.consensus, settings.normalize)
    return base.add_(mixed, alpha=job.lambda_) if job.lambda_ != 0.0 else base


def _chunk_mask(settings, state, delta, density, offset) -> torch.Tensor:
    if settings.method.sparsify == "random":
        if state.masks is not None:
            return state.masks[offset : offset + delta.numel()]
        return keep_mask(state.key, density, offset, offset + delta.numel())
    mask, state.equal_budget = magnitude_mask(delta.abs(), state.threshold, state.equal_budget)
    return mask
