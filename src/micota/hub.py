"""Loading models and tokenizers from a local folder or a hub id, with errors that say what to fix.

Every stage that reads a model goes through here, so "folder has no weights", "no
tokenizer", "not found and offline" read the same everywhere. ``trust_remote_code`` is
off unless the recipe turns it on.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from micota.errors import MicotaError
from micota.weight_files import check_weight_files

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
    if need_weights:
        check_weight_files(path, field=field)  # a truncated or corrupt file fails here, not hours later
    if need_tokenizer and not _has_tokenizer(path):
        raise MicotaError(
            f"{field}: {text!r} has no tokenizer files ({', '.join(_TOKENIZER_FILES)}). "
            "Save the tokenizer into the model folder, or set the `tokenizer` field to a folder that has one."
        )
    return text


def load_tokenizer(source: str, *, trust_remote_code: bool = False, field: str = "tokenizer", model: str | None = None) -> Any:
    """AutoTokenizer for ``source``; errors name the field and the source.

    With ``model`` (the model the tokenizer will feed) the tokenizer is checked against it
    (:func:`check_tokenizer_fits`) before anything is generated or trained.
    """
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
    if model is not None:
        check_tokenizer_fits(tokenizer, source, model, field=field, trust_remote_code=trust_remote_code)
    return tokenizer


def load_causal_lm(source: str, *, dtype: str = "auto", device: str = "cpu", trust_remote_code: bool = False, field: str = "model",
                   device_map: str | None = None) -> Any:
    """AutoModelForCausalLM in eval mode on ``device`` (or spread by ``device_map="auto"`` over every
    visible GPU, for a model larger than one); errors name the field and the source."""
    import torch
    from transformers import AutoModelForCausalLM

    if is_local(source) and Path(source).is_dir():
        check_weight_files(source, field=field)
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


def check_tokenizer_fits(tokenizer: Any, source: str, model: str, *, field: str, trust_remote_code: bool = False) -> None:
    """A MicotaError naming both paths and sizes unless ``tokenizer`` (loaded from ``source``) belongs to ``model``.

    Three cheap tests against the model's config.json (local folders, or hub ids already in the
    HF cache): every token id has an embedding row (a larger id indexes past the embedding
    matrix: an IndexError on CPU, a device-side assert on GPU); the model's ``eos_token_id`` is
    a token of this tokenizer; and a tokenizer given apart from a model folder that ships its
    own means the same token by every id they share (another model's tokenizer does not).
    Embedding rows may exceed the tokenizer (Qwen2.5 pads 151,665 tokens to 151,936 rows).
    """
    config = _model_config(model)
    if config is None:
        return
    size = tokenizer_size(tokenizer)
    rows = config.get("vocab_size") or (config.get("text_config") or {}).get("vocab_size")
    separate = Path(source).resolve() != Path(model).resolve()
    fix = ("Remove `tokenizer:` to use the model folder's own tokenizer, or point it at the tokenizer the model was "
           "trained with." if separate else "The folder's tokenizer does not belong to its weights: save the tokenizer "
           "the model was trained with into it.")
    if isinstance(rows, int) and size > rows:
        raise MicotaError(
            f"{field}: tokenizer {source!r} has {size} token ids, model {model!r} has {rows} embedding rows "
            f"(vocab_size in its config.json): ids {rows}..{size - 1} would index past the embeddings. {fix} If you "
            "added tokens on purpose, resize the model's embeddings (model.resize_token_embeddings) and save it.")
    eos = config.get("eos_token_id")
    outside = [i for i in (eos if isinstance(eos, list) else [eos]) if isinstance(i, int) and i >= size]
    if outside:
        raise MicotaError(
            f"{field}: model {model!r} ends its answers with eos_token_id {outside} (config.json), which tokenizer "
            f"{source!r} ({size} token ids) does not have: it is another model's tokenizer. {fix}")
    if separate and is_local(model) and _has_tokenizer(Path(model)):
        _check_same_vocabulary(tokenizer, source, model, field=field, fix=fix, trust_remote_code=trust_remote_code)


def tokenizer_size(tokenizer: Any) -> int:
    """Largest token id + 1 (added tokens included): the embedding rows the tokenizer needs."""
    return max(tokenizer.get_vocab().values(), default=-1) + 1


def _check_same_vocabulary(tokenizer: Any, source: str, model: str, *, field: str, fix: str, trust_remote_code: bool) -> None:
    """Every id both tokenizers have is the same token (extra added tokens on either side are fine)."""
    from transformers import AutoTokenizer

    try:
        own_vocab = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code).get_vocab()
    except (OSError, ValueError):
        return  # the model folder's own tokenizer does not load; nothing to compare with
    own = {index: token for token, index in own_vocab.items()}
    given = {index: token for token, index in tokenizer.get_vocab().items()}
    clashes = sorted(index for index in given.keys() & own.keys() if given[index] != own[index])
    if clashes:
        index = clashes[0]
        raise MicotaError(
            f"{field}: tokenizer {source!r} ({tokenizer_size(tokenizer)} token ids) is not the tokenizer of model {model!r} "
            f"(its own has {max(own, default=-1) + 1}): {len(clashes)} ids they share mean different tokens, e.g. id "
            f"{index} is {given[index]!r} in {source!r} and {own[index]!r} in the model's. {fix}")


def _model_config(model: str) -> dict[str, Any] | None:
    """The model's config.json as a dict: from a local folder, or from the HF cache for a hub id (no download)."""
    path: Path | None = Path(model) / "config.json" if is_local(model) else None
    if path is None:
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(model, "config.json")
        except Exception:  # an odd id or cache layout: the loader reports it later
            return None
        path = Path(cached) if isinstance(cached, str) else None
    try:
        config = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) else None


def _has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in _TOKENIZER_FILES)
