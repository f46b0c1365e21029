"""Does BPC before training rank training sets the way accuracy after training does?

MiCoTA (§5, Table 4) explains why a small student learns more from Mid-CoT data by the
data's BPC under that student: lower BPC = closer to what the student already writes. If
that is a usable pre-training check, the training set with the lowest BPC under the
untrained student should give the highest accuracy after training on it. This module puts
the two rankings side by side and measures their agreement (Spearman's ρ, ties averaged).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Sequence


@dataclass(frozen=True)
class LearnabilityRow:
    """One candidate training set: its BPC under the untrained student and the accuracy after training on it."""

    dataset: str
    bpc: Optional[float]
    accuracy: Optional[float]  # mean accuracy over benchmarks (fraction) of the student trained on it
    bpc_rank: Optional[float]  # 1 = lowest BPC (ties share the mean rank)
    accuracy_rank: Optional[float]  # 1 = highest accuracy


def ranks(values: Sequence[float], *, descending: bool = False) -> list[float]:
    """1-based ranks, ties given their mean rank.

    >>> ranks([0.9, 0.5, 0.5]), ranks([10, 30, 20], descending=True)
    ([3.0, 1.5, 1.5], [3.0, 1.0, 2.0])
    """
    order = sorted(range(len(values)), key=lambda i: -values[i] if descending else values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            result[order[position]] = (start + end) / 2 + 1
        start = end + 1
    return result


def spearman(first: Sequence[float], second: Sequence[float]) -> Optional[float]:
    """Spearman's ρ of two equally long rank lists (Pearson on ranks); None below 2 items or without spread.

    >>> spearman([1, 2, 3], [1, 2, 3]), spearman([1, 2, 3], [3, 2, 1])
    (1.0, -1.0)
    """
    n = len(first)
    if n < 2 or n != len(second):
        return None
    mean_a, mean_b = sum(first) / n, sum(second) / n
    cov = sum((a - mean_a) * (b - mean_b) for a, b in zip(first, second))
    var_a = sum((a - mean_a) ** 2 for a in first)
    var_b = sum((b - mean_b) ** 2 for b in second)
    return None if var_a == 0 or var_b == 0 else cov / (var_a * var_b) ** 0.5


def learnability_rows(bpc: Mapping[str, Optional[float]], accuracy: Mapping[str, Optional[float]]) -> list[LearnabilityRow]:
    """Rows in order of BPC (lowest first); ranks are over the datasets that have both numbers."""
    both = [d for d in bpc if bpc[d] is not None and accuracy.get(d) is not None]
    bpc_ranks = dict(zip(both, ranks([bpc[d] for d in both])))  # type: ignore[misc]
    acc_ranks = dict(zip(both, ranks([accuracy[d] for d in both], descending=True)))  # type: ignore[misc]
    ordered = sorted(bpc, key=lambda d: (bpc[d] is None, bpc[d] or 0.0))
    return [LearnabilityRow(d, bpc[d], accuracy.get(d), bpc_ranks.get(d), acc_ranks.get(d)) for d in ordered]


def rank_agreement(rows: Sequence[LearnabilityRow]) -> dict[str, Optional[float | bool]]:
    """Spearman ρ between the BPC and accuracy ranks, and whether the lowest-BPC set trains best."""
    ranked = [r for r in rows if r.bpc_rank is not None and r.accuracy_rank is not None]
    rho = spearman([r.bpc_rank for r in ranked], [r.accuracy_rank for r in ranked])  # type: ignore[misc]
    if len(ranked) < 2:
        return {"spearman": rho, "lowest_bpc_trains_best": None}
    best_bpc = min(r.bpc_rank for r in ranked)  # type: ignore[type-var]
    best_accuracy = min(r.accuracy_rank for r in ranked)  # type: ignore[type-var]
    return {"spearman": rho, "lowest_bpc_trains_best": any(r.accuracy_rank == best_accuracy for r in ranked
                                                           if r.bpc_rank == best_bpc)}
