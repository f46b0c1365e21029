"""Per-entry merge math on hand-made tensors (issue 4's property tests)."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from micota.merge.masks import keep_mask, mask_key
from micota.merge.methods import magnitude_mask, magnitude_threshold, mix_deltas, mix_parameters, sparsify_magnitude

floats = st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=64)


@given(floats, st.floats(0.01, 1.0))
@settings(max_examples=60, deadline=None)
def test_ties_keeps_exactly_k_largest(values, density):
    delta = torch.tensor(values)
    kept = sparsify_magnitude(delta, density)
    k = int(density * delta.numel())
    mask = kept != 0
    # zeros in the input may be "kept" yet read as 0, so count via the threshold helper instead
    threshold, budget, l1 = magnitude_threshold(delta.abs().clone(), density)
    chosen, left = magnitude_mask(delta.abs(), threshold, budget)
    assert int(chosen.sum()) == k and left == 0
    assert torch.equal(kept, delta * chosen)
    if k and (~chosen).any():
        assert delta.abs()[chosen].min() >= delta.abs()[~chosen].max()
    assert abs(l1 - float(delta.abs()[chosen].sum())) < 1e-3 * (1 + l1)
    assert int(mask.sum()) <= k


def test_ties_tie_break_is_by_flat_index_across_chunks():
    abs_delta = torch.tensor([1.0, 2.0, 2.0, 2.0, 0.5, 2.0])
    threshold, budget, _ = magnitude_threshold(abs_delta.clone(), 0.5)  # k = 3 of four 2.0s
    first, budget = magnitude_mask(abs_delta[:3], threshold, budget)
    second, budget = magnitude_mask(abs_delta[3:], threshold, budget)
    assert torch.cat([first, second]).tolist() == [False, True, True, True, False, False]


def test_density_one_returns_input():
    delta = torch.randn(100)
    assert torch.equal(sparsify_magnitude(delta, 1.0), delta)
    assert bool(keep_mask(mask_key(0, "w", 0), 1.0, 0, 100).all())


def test_sum_election_and_normalization_by_hand():
    # entry 0: u = (2, -1, -0.5): Σ = 0.5 > 0 → +; only model 0 counts → 2 / w0 = 2 / 1
    # entry 1: u = (-1, 3, 0): + elected; model 1 counts; zero never counts → 3 / 2 = 1.5
    # entry 2: u = (1, -1, 0): Σ = 0, tie goes to + → 1 / 1
    # entry 3: all zero: divisor falls back to 1 → 0
    d = [torch.tensor([2.0, -1.0, 1.0, 0.0]), torch.tensor([-0.5, 1.5, -0.5, 0.0]), torch.tensor([-0.5, 0.0, 0.0, 0.0])]
    weights = [1.0, 2.0, 1.0]
    assert mix_deltas(d, weights, "sum", normalize=True).tolist() == [2.0, 1.5, 1.0, 0.0]
    assert mix_deltas(d, weights, "sum", normalize=False).tolist() == [2.0, 3.0, 1.0, 0.0]


def test_count_election_differs_from_sum():
    # u = (3, -1, -1): sum elects +, count elects − (two negatives vs one positive)
    d = [torch.tensor([3.0]), torch.tensor([-1.0]), torch.tensor([-1.0])]
    assert mix_deltas(d, [1.0, 1.0, 1.0], "sum", normalize=True).tolist() == [3.0]
    assert mix_deltas(d, [1.0, 1.0, 1.0], "count", normalize=True).tolist() == [-1.0]


def test_no_consensus_normalizes_by_weight_sum():
    d = [torch.tensor([1.0, -2.0]), torch.tensor([3.0, 4.0])]
    assert mix_deltas(d, [1.0, 3.0], None, normalize=True).tolist() == [2.5, 2.5]
    assert mix_deltas(d, [1.0, 3.0], None, normalize=False).tolist() == [10.0, 10.0]
    assert mix_parameters([torch.tensor([1.0]), torch.tensor([5.0])], [3.0, 1.0], True).tolist() == [2.0]


def test_dare_keeps_density_share_and_its_expectation_is_task_arithmetic():
    delta = torch.randn(4000)
    density, trials = 0.3, 200
    total = torch.zeros_like(delta)
    shares = []
    for seed in range(trials):
        mask = keep_mask(mask_key(seed, "w", 0), density, 0, delta.numel())
        shares.append(float(mask.float().mean()))
        total += torch.where(mask, delta, 0.0) / density  # the DARE paper's 1/density rescale
    assert abs(sum(shares) / trials - density) < 0.005
    mean = total / trials
    # per entry, std of the mean is |δ|·sqrt((1-p)/(p·n)) ≈ 0.108|δ|; 5 sigma bound
    assert bool(((mean - delta).abs() <= 5 * 0.11 * delta.abs() + 1e-6).all())
