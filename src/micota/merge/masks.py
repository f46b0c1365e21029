"""Reproducible DARE keep-masks: counter-based, so neither chunking nor threads change them.

Each tensor's mask is a pure function of ``(seed, tensor name, model index, flat entry
index)``. The flat index space is cut into fixed blocks of :data:`BLOCK` entries; block ``b``
is drawn from a Philox4x64 generator (Salmon et al. 2011, "Parallel random numbers: as easy
as 1, 2, 3") keyed by a hash of (seed, name, model) with its counter set to ``b``. A chunk
``[start, stop)`` regenerates just the blocks it overlaps and slices them, so any chunking of
a tensor, processed in any order on any number of threads, yields bit-identical masks. This
fixes the mergekit trap where DARE masks change from run to run.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

BLOCK = 1 << 20  # entries per counter block: big enough to amortise generator setup (~µs)
_U32 = float(1 << 32)


def mask_key(seed: int, name: str, model_index: int) -> np.ndarray:
    """The 128-bit Philox key of one (seed, tensor, model) stream.

    >>> mask_key(0, "w", 0).dtype
    dtype('uint64')
    """
    digest = hashlib.sha256(f"{seed}\0{name}\0{model_index}".encode()).digest()
    return np.frombuffer(digest[:16], dtype=np.uint64).copy()


def keep_mask(key: np.ndarray, density: float, start: int, stop: int) -> torch.Tensor:
    """Boolean mask for flat entries ``[start, stop)``: each kept with probability ``density``.

    The probability is ``round(density * 2**32) / 2**32`` (exact to 2.3e-10).

    >>> key = mask_key(0, "w", 0)
    >>> bool((keep_mask(key, 0.5, 0, 10) == keep_mask(key, 0.5, 0, 20)[:10]).all())
    True
    """
    if stop <= start:
        return torch.zeros(0, dtype=torch.bool)
    threshold = np.uint32(min(round(density * _U32), (1 << 32) - 1))
    first, last = start // BLOCK, (stop - 1) // BLOCK
    parts = []
    for block in range(first, last + 1):
        lo = max(start - block * BLOCK, 0)
        hi = min(stop - block * BLOCK, BLOCK)
        parts.append(_block_uniforms(key, block)[lo:hi] < threshold)
    flat = parts[0] if len(parts) == 1 else np.concatenate(parts)
    return torch.from_numpy(flat)


def _block_uniforms(key: np.ndarray, block: int) -> np.ndarray:
    """The ``BLOCK`` uint32 draws of one block (counter word 1 = block index, word 0 runs inside)."""
    counter = np.array([0, block, 0, 0], dtype=np.uint64)
    generator = np.random.Philox(counter=counter, key=key)
    return generator.random_raw(BLOCK // 2).view(np.uint32)
