"""The sampling parameters an engine actually uses, and where a model's own defaults come in.

By default every engine sends :meth:`EngineConfig.sampling_params` as they are: greedy means
greedy, ``repetition_penalty`` is 1.0 unless a recipe sets it. Qwen2.5-Instruct ships a
``generation_config.json`` with ``repetition_penalty`` 1.05-1.1 and sampling on; transformers
merges it into every ``generate`` call and ``vllm serve`` applies it by default, while the
papers' harnesses pass explicit parameters. With ``use_generation_config: true`` the model's
values fill the sampling fields the recipe left unset (what a server with its default
``--generation-config auto`` does); the effective values are what records and manifests store.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

from micota.generate.engine import EngineConfig

# generation_config.json keys that map onto EngineConfig sampling fields
_MODEL_SAMPLING_KEYS = ("temperature", "top_p", "top_k", "repetition_penalty")


def model_generation_defaults(source: str) -> dict[str, Any]:
    """The model's ``generation_config.json`` as a dict ({} when it has none or it is not cached)."""
    path = Path(source) / "generation_config.json"
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    if Path(source).exists():
        return {}
    try:  # a hub id: only what is already in the local cache (nothing downloads at run time)
        from transformers import GenerationConfig

        return GenerationConfig.from_pretrained(source, local_files_only=True).to_diff_dict()
    except (OSError, ValueError):
        return {}


def effective_sampling(config: EngineConfig, model_defaults: Optional[dict[str, Any]] = None) -> dict[str, Any]:
    """The sampling parameters generation runs with (the record's ``sampling`` field).

    ``model_defaults`` (the model's generation_config.json) is read only when
    ``use_generation_config`` is set; its values replace the fields the recipe did not set.

    >>> effective_sampling(EngineConfig(model="m", max_new_tokens=8))["repetition_penalty"]
    1.0
    """
    if not config.use_generation_config:
        return config.sampling_params()
    defaults = model_generation_defaults(config.model) if model_defaults is None else model_defaults
    update = {k: defaults[k] for k in _MODEL_SAMPLING_KEYS if k in defaults and k not in config.model_fields_set}
    if defaults.get("do_sample") is False and "temperature" not in config.model_fields_set:
        update["temperature"] = 0.0  # the model asks for greedy decoding
    if update.get("top_k") == 0:
        update["top_k"] = -1  # transformers' "off" is vLLM's -1
    return config.model_copy(update=update).sampling_params()


def request_seed(base_seed: int, request_id: str, seed: Optional[int]) -> int:
    """The sampling seed of one request: its own when given, else one derived from (seed, id).

    Deriving it from the id makes sampled generation independent of batching, scheduling and
    of which worker or resumed run produced the sample.

    >>> request_seed(0, "p1", None) == request_seed(0, "p1", None) != request_seed(1, "p1", None)
    True
    """
    if seed is not None:
        return seed
    digest = hashlib.sha256(f"{base_seed}\0{request_id}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def hf_generation_config(sampling: dict[str, Any], *, eos_token_ids: list[int], pad_token_id: int) -> Any:
    """A transformers ``GenerationConfig`` holding exactly ``sampling`` (pass it to ``generate``).

    Fields left None are filled by transformers from the model's own generation config, so
    the engine replaces that with :func:`neutral_generation_config` unless the recipe asks
    for the model's defaults.
    """
    from transformers import GenerationConfig

    kwargs: dict[str, Any] = {
        "max_new_tokens": sampling["max_new_tokens"],
        "repetition_penalty": sampling["repetition_penalty"],
        "num_beams": 1,
        "eos_token_id": eos_token_ids,
        "pad_token_id": pad_token_id,
        "stop_strings": list(sampling["stop"]) or None,
    }
    if sampling["temperature"] > 0:
        top_k = sampling["top_k"]
        kwargs.update(do_sample=True, temperature=sampling["temperature"], top_p=sampling["top_p"], top_k=max(top_k, 0))
    else:
        kwargs.update(do_sample=False)
    return GenerationConfig(**kwargs)


def neutral_generation_config(model_config: Any) -> Any:
    """A generation config with only the model's special token ids: no sampling defaults to merge."""
    from transformers import GenerationConfig

    keep = ("eos_token_id", "pad_token_id", "bos_token_id", "decoder_start_token_id")
    return GenerationConfig(**{k: getattr(model_config, k) for k in keep if getattr(model_config, k, None) is not None})
