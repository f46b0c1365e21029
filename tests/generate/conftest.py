"""Fixtures for the engine tests: tiny models whose greedy output is varied text, not one repeated token."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def build_varied_model(source: Path, dest: Path, *, seed: int = 1) -> Path:
    """A copy of ``source`` with its weights redrawn wide (std 0.5).

    The session's tiny models are random with transformers' small init, so greedy decoding
    repeats one token; redrawn wide, they write varied token strings that stop at <|im_end|>
    for some prompts and hit the length limit for others - what engine comparisons need.
    """
    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(source, dest)
    model = AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" not in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    model.save_pretrained(dest)
    return dest


@pytest.fixture(scope="session")
def varied_model(tiny_model, tmp_path_factory) -> Path:
    """The session's tiny model (head width 16) with varied greedy output."""
    return build_varied_model(tiny_model, tmp_path_factory.mktemp("varied") / "model")
