"""The learnability view: BPC ranks beside accuracy ranks, and their agreement."""

from __future__ import annotations

import pytest

from micota.analyze.learnability import learnability_rows, rank_agreement, ranks, spearman


def test_ranks_share_ties_and_spearman_measures_agreement():
    assert ranks([0.3, 0.1, 0.3, 0.2]) == [3.5, 1.0, 3.5, 2.0]
    assert ranks([0.3, 0.1, 0.2], descending=True) == [1.0, 3.0, 2.0]
    assert spearman([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3]) == pytest.approx(0.6)
    assert spearman([1], [1]) is None and spearman([1, 1], [1, 2]) is None


def test_rows_ordered_by_bpc_with_both_ranks():
    rows = learnability_rows({"Strong": 0.9, "Half": 0.7, "MiCoTA": 0.5, "Mix-Long": None},
                             {"Strong": 0.30, "Half": 0.40, "MiCoTA": 0.35, "Mix-Long": 0.38})
    assert [r.dataset for r in rows] == ["MiCoTA", "Half", "Strong", "Mix-Long"]
    assert [(r.bpc_rank, r.accuracy_rank) for r in rows] == [(1.0, 2.0), (2.0, 1.0), (3.0, 3.0), (None, None)]
    agreement = rank_agreement(rows)
    assert agreement["spearman"] == pytest.approx(0.5) and agreement["lowest_bpc_trains_best"] is False
    good = rank_agreement(learnability_rows({"a": 0.1, "b": 0.2}, {"a": 0.5, "b": 0.4}))
    assert good == {"spearman": pytest.approx(1.0), "lowest_bpc_trains_best": True}
    assert rank_agreement(learnability_rows({"a": 0.1}, {"a": 0.5}))["lowest_bpc_trains_best"] is None
