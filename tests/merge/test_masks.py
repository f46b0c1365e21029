"""DARE masks are reproducible and independent of chunking and threads (issue 4, determinism)."""

from __future__ import annotations

import torch

from micota.merge.masks import BLOCK, keep_mask, mask_key


def test_same_seed_same_mask_other_seed_other_mask():
    key = mask_key(7, "model.layers.0.mlp.up_proj.weight", 0)
    assert torch.equal(keep_mask(key, 0.5, 0, 5000), keep_mask(mask_key(7, "model.layers.0.mlp.up_proj.weight", 0), 0.5, 0, 5000))
    assert not torch.equal(keep_mask(key, 0.5, 0, 5000), keep_mask(mask_key(8, "model.layers.0.mlp.up_proj.weight", 0), 0.5, 0, 5000))
    assert not torch.equal(keep_mask(key, 0.5, 0, 5000), keep_mask(mask_key(7, "model.layers.1.mlp.up_proj.weight", 0), 0.5, 0, 5000))
    assert not torch.equal(keep_mask(key, 0.5, 0, 5000), keep_mask(mask_key(7, "model.layers.0.mlp.up_proj.weight", 1), 0.5, 0, 5000))


def test_any_chunking_gives_the_same_mask():
    key = mask_key(0, "w", 0)
    n = 2 * BLOCK + 12345
    whole = keep_mask(key, 0.37, 0, n)
    for cuts in ([0, 1, n], [0, BLOCK - 3, BLOCK + 7, n], [0, 999_999, 2_000_001, n]):
        parts = [keep_mask(key, 0.37, a, b) for a, b in zip(cuts, cuts[1:])]
        assert torch.equal(torch.cat(parts), whole)


def test_thread_count_does_not_change_mask():
    key = mask_key(3, "w", 0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = keep_mask(key, 0.5, 10, 3 * BLOCK)
        torch.set_num_threads(max(2, before))
        many = keep_mask(key, 0.5, 10, 3 * BLOCK)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, many)
