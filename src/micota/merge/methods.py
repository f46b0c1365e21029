"""Merge methods as rows of one table, and the per-entry math they share.

Following mergekit's generalized task arithmetic (Yadav et al. 2023, TIES; Yu et al. 2024,
DARE), every method is a combination of a sparsifier, a sign consensus and flags, applied
per tensor with θ₀ = base and δᵢ = θᵢ − θ₀:

1. sparsify δᵢ → δ̃ᵢ (``magnitude``: keep the top k = ⌊density·numel⌋ of |δᵢ|, ties by
   lowest flat index; ``random``: keep each entry with probability density), then rescale
   (``l1``: × ‖δᵢ‖₁ / ‖δ̃ᵢ‖₁ as mergekit does; ``inverse_density``: × 1/density as the DARE
   paper does);
2. weight uᵢ = wᵢ·δ̃ᵢ;
3. consensus (TIES): elect a sign per entry (``sum``: sign of Σuᵢ; ``count``: sign of
   Σ sign(uᵢ); ties go to +); an entry of uᵢ counts only where its sign equals the
   elected one (zeros never count);
4. mixed = Σ counted uᵢ, divided (if ``normalize``) by the sum of the weights of the counted
   models (1 where none counted) or, without consensus, by Σwᵢ;
5. θ = θ₀ + λ·mixed, cast to the output dtype.

``linear`` is the one row that mixes the parameters themselves: θ = Σwᵢθᵢ / Σwᵢ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Sequence

import numpy as np
import torch

Sparsifier = Literal["magnitude", "random"]
Consensus = Literal["sum", "count"]
Rescale = Literal["l1", "inverse_density", "none"]


@dataclass(frozen=True)
class MergeMethod:
    """One row of :data:`MERGE_METHODS`; the defaults are mergekit's for that method."""

    sparsify: Optional[Sparsifier]  # None: keep every entry of δ
    consensus: Optional[Consensus]  # None: plain (weighted) sum of deltas
    normalize: bool  # default of the `normalize` parameter
    rescale: Rescale  # default rescale after sparsifying ("none" when not sparsifying)
    on_deltas: bool = True  # False only for `linear`, which averages parameters


MERGE_METHODS: dict[str, MergeMethod] = {
    "linear": MergeMethod(None, None, normalize=True, rescale="none", on_deltas=False),
    "task_arithmetic": MergeMethod(None, None, normalize=False, rescale="none"),
    "ties": MergeMethod("magnitude", "sum", normalize=True, rescale="none"),
    "dare_linear": MergeMethod("random", None, normalize=False, rescale="l1"),
    "dare_ties": MergeMethod("random", "sum", normalize=False, rescale="l1"),
}


def magnitude_threshold(abs_delta: torch.Tensor, density: float) -> tuple[float, int, float]:
    """``(t, e, l1)``: keep |δ| > t plus the first ``e`` entries (by flat index) with |δ| == t.

    Together that is exactly k = ⌊density·numel⌋ entries, whose l1 norm is ``l1``.
    ``abs_delta`` (float32) is consumed: partially sorted in place.

    >>> magnitude_threshold(torch.tensor([3.0, 1.0, 2.0, 2.0]), 0.5)
    (2.0, 1, 5.0)
    """
    flat = abs_delta.reshape(-1).numpy()
    k = int(density * flat.size)
    if k <= 0:
        return float("inf"), 0, 0.0
    flat.partition(flat.size - k)  # introselect, in place: O(n) instead of a full sort
    top = flat[flat.size - k :]
    threshold = top.min()
    return float(threshold), k - int((top > threshold).sum()), float(top.sum(dtype=np.float64))


def magnitude_mask(abs_delta: torch.Tensor, threshold: float, equal_budget: int) -> tuple[torch.Tensor, int]:
    """Keep-mask of one chunk given :func:`magnitude_threshold`; returns the unused budget.

    >>> magnitude_mask(torch.tensor([3.0, 2.0, 2.0]), 2.0, 1)
    (tensor([ True,  True, False]), 0)
    """
    mask = abs_delta > threshold
    if equal_budget > 0:
        # bf16 checkpoints give coarse deltas, so ties at the threshold are common: keep the first
        equal = (abs_delta == threshold).reshape(-1).nonzero().squeeze(1)
        mask.view(-1)[equal[:equal_budget]] = True
        equal_budget = max(equal_budget - equal.numel(), 0)
    return mask, equal_budget


def sparsify_magnitude(delta: torch.Tensor, density: float) -> torch.Tensor:
    """TIES trimming of a whole tensor: keep exactly ⌊density·numel⌋ largest |δ|.

    >>> sparsify_magnitude(torch.tensor([0.1, -3.0, 2.0, 0.5]), 0.5)
    tensor([ 0., -3.,  2.,  0.])
    """
    if density >= 1.0:
        return delta
    threshold, budget, _ = magnitude_threshold(delta.abs().float(), density)
    mask, _ = magnitude_mask(delta.abs().float(), threshold, budget)
    return delta * mask


def rescale_factor(norm: Rescale, density: float, l1_all: float, l1_kept: float) -> float:
    """The scalar a sparsified delta is multiplied by (1 when nothing was dropped).

    >>> rescale_factor("l1", 0.5, 10.0, 4.0)
    2.5
    """
    if density >= 1.0 or norm == "none":
        return 1.0
    if norm == "inverse_density":
        return 1.0 / density
    if l1_all < 1e-7 or l1_kept < 1e-7:  # mergekit's guard against 0/0
        return 1.0
    return l1_all / l1_kept


def mix_deltas(
    deltas: Sequence[torch.Tensor],
    weights: Sequence[float],
    consensus: Optional[Consensus],
    normalize: bool,
) -> torch.Tensor:
    """Steps 2–4 on already sparsified deltas: the mixed delta (before λ).

    >>> d = [torch.tensor([1.0, -2.0]), torch.tensor([-3.0, -1.0])]
    >>> mix_deltas(d, [1.0, 1.0], "sum", normalize=True)
    tensor([-3.0000, -1.5000])
    """
    if len(deltas) == 1 and (consensus is None or not normalize):
        # one model: every nonzero entry agrees with itself; skip the stacked work (speed).
        mixed = deltas[0] * weights[0] if weights[0] != 1.0 else deltas[0]
        if normalize and consensus is None:
            mixed = mixed / (weights[0] if abs(weights[0]) >= 1e-8 else 1.0)
        return mixed
    weighted = [d * w for d, w in zip(deltas, weights)]
    if consensus is None:
        mixed = torch.stack(weighted).sum(0)
        total = sum(weights)
        return mixed / (total if abs(total) >= 1e-8 else 1.0) if normalize else mixed
    stacked = torch.stack(weighted)
    signs = stacked.sign()
    votes = stacked.sum(0) if consensus == "sum" else signs.sum(0)
    elected = torch.where(votes >= 0, 1.0, -1.0).to(stacked.dtype)
    counted = signs == elected
    mixed = (stacked * counted).sum(0)
    if not normalize:
        return mixed
    weight_col = torch.tensor(weights, dtype=stacked.dtype).reshape(-1, *([1] * (stacked.dim() - 1)))
    divisor = (weight_col * counted).sum(0)
    divisor[divisor == 0] = 1.0
    return mixed / divisor


def mix_parameters(params: Sequence[torch.Tensor], weights: Sequence[float], normalize: bool) -> torch.Tensor:
    """The ``linear`` row: Σwᵢθᵢ, divided by Σwᵢ when normalizing.

    >>> mix_parameters([torch.tensor([1.0]), torch.tensor([3.0])], [1.0, 3.0], True)
    tensor([2.5000])
    """
    mixed = sum(p * w for p, w in zip(params, weights))
    total = sum(weights)
    return mixed / (total if abs(total) >= 1e-8 else 1.0) if normalize else mixed
