"""Loading models and tokenizers from a local folder or a hub id, with errors that say what to fix.

Every stage that reads a model goes through here, so "folder has no weights", "no
tokenizer", "not found and offline" read the same everywhere. ``trust_remote_code`` is
off unless the recipe turns it on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from micota.errors import MicotaError

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def is_local(source: str | Path) -> bool:
    """A source is a local folder when it exists, or when it cannot be a hub id (``a/b/c``, ``./x``)."""
    text = str(source)
    return Path(text).exists() or not _HUB_ID.match(text)


def check_model_source(source: str | Path, *, field: str, need_weights: bool = True, need_tokenizer: bool = True) -> str:
    """Validate a local model folder early; hub ids pass through (they are checked when loaded).

    ``field`` names the recipe field, so the error can point at it.
    """
    text = str(source)
    if not is_local(text):
        return text
    path = Path(text)
    if not path.is_dir():
        raise MicotaError(f"{field}: model folder {text!r} does not exist. Fix the path, or run the stage that creates it.")
    if not (path / "config.json").is_file():
        raise MicotaError(f"{field}: {text!r} has no config.json, so it is not a Hugging Face model folder.")
    if need_weights and not any(any(path.glob(p)) for p in _WEIGHT_PATTERNS):
        raise MicotaError(f"{field}: {text!r} has no weights (*.safetensors or *.bin). Save the model with save_pretrained().")
    if need_tokenizer and not any((path / f).is_file() for f in _TOKENIZER_FILES):
        raise MicotaError(
            f"{field}: {text!r} has no tokenizer files ({', '.join(_TOKENIZER_FILES)}). "
            "Save the tokenizer into the model folder, or set the `tokenizer` field to a folder that has one."
        )
    return text


def load_tokenizer(source: str, *, trust_remote_code: bool = False, field: str = "tokenizer") -> Any:
    """AutoTokenizer for ``source``; errors name the field and the source."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise MicotaError(f"{field}: could not load a tokenizer from {source!r}: {_first_line(exc)}") from None
    if tokenizer.chat_template is None:
        raise MicotaError(
            f"{field}: tokenizer of {source!r} has no chat template; micota applies chat templates to every prompt. "
            "Use an instruct/chat model or add `chat_template` to tokenizer_config.json."
        )
    return tokenizer


def load_causal_lm(source: str, *, dtype: str = "auto", device: str = "cpu", trust_remote_code: bool = False, field: str = "model",
                   device_map: str | None = None) -> Any:
    """AutoModelForCausalLM in eval mode on ``device`` (or spread by ``device_map="auto"`` over every
    visible GPU, for a model larger than one); errors name the field and the source."""
    import torch
    from transformers import AutoModelForCausalLM

    torch_dtype = "auto" if dtype == "auto" else getattr(torch, dtype)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype, trust_remote_code=trust_remote_code,
                                                     **({"device_map": device_map} if device_map else {}))
    except (OSError, ValueError) as exc:
        raise MicotaError(f"{field}: could not load a model from {source!r}: {_first_line(exc)}") from None
    return (model if device_map else model.to(device)).eval()


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
