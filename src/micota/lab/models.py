"""Tiny Qwen2-architecture models for the micro-lab, built from config (no download).

Sizes are rows of :data:`LAB_MODEL_SIZES`, from ``student-tiny`` to ``ta`` with 16x its
parameters (the paper: a 14B TA for 1.5B-7B students). Models start from random weights; the
``lab`` stage trains them into small "instruct" models on ``instruct.jsonl``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from micota.config import StrictModel
from micota.errors import MicotaError


class LabModelSize(StrictModel):
    """Shape of one tiny Qwen2 model."""

    hidden_size: int = Field(ge=8)  # width of the residual stream
    num_hidden_layers: int = Field(ge=1)  # transformer blocks
    num_attention_heads: int = Field(ge=1)  # query heads; hidden_size must divide by it
    num_key_value_heads: int = Field(ge=1)  # grouped-query attention, as in Qwen2.5
    intermediate_size: int = Field(ge=8)  # MLP width


LAB_MODEL_SIZES: dict[str, LabModelSize] = {
    # Every head is 32 wide: vLLM's CPU attention accepts head widths 32, 64, 80, 96, 112, 128, ...
    # only (16-24 crash at the first request), so the lab models also run on `engine: vllm`.
    # ~0.04M parameters (vocab 1024): one head; learns the lab's short CoT fully in ~4,000 steps.
    "student-tiny": LabModelSize(hidden_size=32, num_hidden_layers=2, num_attention_heads=1, num_key_value_heads=1, intermediate_size=96),
    # ~0.12M parameters.
    "student": LabModelSize(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=1, intermediate_size=192),
    # ~0.36M parameters: a larger student.
    "student-large": LabModelSize(hidden_size=96, num_hidden_layers=3, num_attention_heads=3, num_key_value_heads=1, intermediate_size=288),
    # ~0.64M parameters: the teacher assistant, 16x student-tiny and 5.2x student. Three
    # layers, not four: it trains in about the time of both students together, so the lab stage's
    # two worker processes finish together (docs/benchmarks.md, Micro-lab).
    "ta": LabModelSize(hidden_size=128, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, intermediate_size=384),
}


def lab_model_config(size: str, tokenizer):
    """The ``Qwen2Config`` of a named size for ``tokenizer``'s vocabulary."""
    from transformers import Qwen2Config

    shape = LAB_MODEL_SIZES.get(size)
    if shape is None:
        raise MicotaError(f"lab model size {size!r} is unknown. Available: {', '.join(LAB_MODEL_SIZES)}.")
    return Qwen2Config(
        vocab_size=len(tokenizer),
        max_position_embeddings=1024,  # lab sequences are < 400 tokens
        tie_word_embeddings=True,  # as Qwen2.5-0.5B..3B; halves the tiny models' embedding cost
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **shape.model_dump(),
    )


def build_model(size: str, tokenizer_dir: str | Path, out_dir: str | Path, seed: int = 0) -> Path:
    """Save a random-init ``Qwen2ForCausalLM`` of ``size`` (+ tokenizer) as an HF folder at ``out_dir``."""
    import torch
    from transformers import AutoTokenizer, GenerationConfig, Qwen2ForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    config = lab_model_config(size, tokenizer)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    # Generation stops at <|im_end|> (end of the assistant turn) or <|endoftext|>, like Qwen2.5-Instruct.
    model.generation_config = GenerationConfig(
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
    )
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def count_parameters(model) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in model.parameters())
