"""Tiny Qwen2 models on disk for merge tests: a base and two perturbed "fine-tunes"."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch


def build_tokenizer(folder: Path) -> None:
    """A small word-level tokenizer saved as PreTrainedTokenizerFast with eos/pad tokens."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{str(d): 3 + d for d in range(10)}, "+": 13, "=": 14}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    fast = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>")
    fast.save_pretrained(folder)


def build_model(folder: Path, seed: int, base: Path | None = None, scale: float = 0.02, vocab: int = 64) -> Path:
    """A 2-layer Qwen2 (hidden 32); with ``base``, the base's weights plus seeded noise."""
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True, dtype="float32",
    )  # fmt: skip
    model = Qwen2ForCausalLM(config)
    if base is not None:
        model = Qwen2ForCausalLM.from_pretrained(base)
        with torch.no_grad():
            for param in model.parameters():
                param.add_(torch.randn_like(param) * scale)
    model.save_pretrained(folder, safe_serialization=True)
    build_tokenizer(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tiny_models")
    base = build_model(root / "base", seed=0)
    return {
        "base": base,
        "ft": build_model(root / "ft", seed=1, base=base),
        "ft2": build_model(root / "ft2", seed=2, base=base),
        "wide": build_model(root / "wide", seed=3, vocab=72),
    }
