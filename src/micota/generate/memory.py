"""Will the model fit the placement? An estimate from the model folder, made before anything loads.

weights = parameters x bytes per parameter at ``dtype`` (parameters counted from the
safetensors headers when the weights are local, else estimated from config.json);
KV cache per token = 2 (K and V) x layers x KV heads x head width x bytes.

* vLLM needs the weights plus room for at least one ``max_model_len`` sequence in each replica's
  ``gpu_memory_utilization`` share of its TP x PP GPUs (vLLM refuses to start otherwise);
* hf needs the weights plus the KV cache of a whole batch, ``batch_size`` x (``max_new_tokens``
  + ``PROMPT_TOKENS``), on one GPU (or across all with ``device_map: auto``). Qwen2.5-32B at
  16K new tokens and batch 64: ~270 GB of KV cache, which is why such runs use vLLM.

A hub id that is not in the local cache is not checked (nothing downloads at plan time).
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any, Optional

from micota.errors import MicotaError
from micota.generate.engine import EngineConfig
from micota.generate.parallel import gpus_per_replica

PROMPT_TOKENS = 512  # prompt length assumed for the hf KV estimate (MiCoTA's prompts are ~100-300 tokens)
_DTYPE_BYTES = {"float32": 4, "float": 4, "bfloat16": 2, "float16": 2, "half": 2, "F32": 4, "BF16": 2, "F16": 2,
                "F64": 8, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
GIB = float(1 << 30)


def check_fits(engine: EngineConfig, gpus: int, *, field: str = "engine", gpu_memory_bytes: Optional[int] = None,
               host_memory_bytes: Optional[int] = None) -> None:
    """Raise :class:`MicotaError` with the numbers and the fix when ``engine`` cannot fit ``gpus`` GPUs.

    ``engine.data_parallel_size`` must be resolved (a number). Memory sizes default to this
    machine's (GPU 0's total memory; physical RAM).
    """
    config = model_config(engine.model)
    if config is None:
        return
    weights = weight_bytes(engine.model, config, engine.dtype)
    per_token = kv_bytes_per_token(config, engine.dtype)
    if engine.engine == "vllm":
        context = engine.max_model_len or int(config.get("max_position_embeddings", 0) or 0)
        kv, need_what = per_token * context, f"one {context}-token sequence (max_model_len)"
        if not gpus:
            _check_cpu_kv_cache(engine, kv, context, field)
            kv, need_what = kv_cache_gb(engine) * GIB, "kv_cache_memory_gb"
    else:
        kv = per_token * engine.batch_size * (engine.max_new_tokens + PROMPT_TOKENS)
        need_what = f"batch_size {engine.batch_size} x ({engine.max_new_tokens} new + {PROMPT_TOKENS} prompt) tokens"
    have, have_what = _budget(engine, gpus, gpu_memory_bytes, host_memory_bytes)
    if weights + kv <= have:
        return
    name = Path(engine.model).name or engine.model
    raise MicotaError(
        f"{field}: {name} does not fit the placement: {weights / GIB:.1f} GiB of weights + {kv / GIB:.1f} GiB of "
        f"KV cache for {need_what} = {(weights + kv) / GIB:.1f} GiB, but {have_what} = {have / GIB:.1f} GiB. "
        f"Fix: {_fix(engine, gpus, weights, per_token, have)}"
    )


def _check_cpu_kv_cache(engine: EngineConfig, kv: float, context: int, field: str) -> None:
    """vLLM's CPU build refuses to start when its fixed KV cache cannot hold one max_model_len sequence."""
    size = kv_cache_gb(engine) * GIB
    if kv > size:
        raise MicotaError(f"{field}.kv_cache_memory_gb: {size / GIB:g} GiB holds fewer than the {context} tokens of one "
                          f"max_model_len sequence ({kv / GIB:.2f} GiB). Raise kv_cache_memory_gb to "
                          f"{kv / GIB * 1.1:.2f} or set a smaller max_model_len.")


def kv_cache_gb(engine: EngineConfig) -> float:
    """The KV-cache size given to vLLM: the field, else (CPU build) VLLM_CPU_KVCACHE_SPACE, else 1 GiB."""
    return engine.kv_cache_memory_gb or float(os.environ.get("VLLM_CPU_KVCACHE_SPACE") or 1.0)


def model_config(source: str) -> Optional[dict[str, Any]]:
    """config.json of a local folder or a cached hub model (None when neither is available)."""
    path = Path(source) / "config.json"
    if not path.is_file():
        if Path(source).exists():
            return None
        try:
            from huggingface_hub import try_to_load_from_cache

            cached = try_to_load_from_cache(source, "config.json")
        except Exception:  # an id the hub client rejects is checked when loaded
            return None
        if not isinstance(cached, str):
            return None
        path = Path(cached)
    config = json.loads(path.read_text(encoding="utf-8"))
    return config.get("text_config", config) if "num_hidden_layers" not in config else config


def weight_bytes(source: str, config: dict[str, Any], dtype: str) -> int:
    """Bytes of the weights at ``dtype`` ("auto": the checkpoint's own dtype)."""
    counts = safetensors_counts(Path(source))
    if counts:
        if dtype == "auto":
            return sum(n * _DTYPE_BYTES.get(kind, 2) for kind, n in counts.items())
        return sum(counts.values()) * _DTYPE_BYTES[dtype]
    return estimated_parameters(config) * _dtype_bytes(config, dtype)


def safetensors_counts(folder: Path) -> dict[str, int]:
    """Parameter count per stored dtype, read from the safetensors headers (no tensor is loaded)."""
    counts: dict[str, int] = {}
    for file in sorted(folder.glob("*.safetensors")) if folder.is_dir() else []:
        with file.open("rb") as handle:
            header = json.loads(handle.read(struct.unpack("<Q", handle.read(8))[0]))
        for name, info in header.items():
            if name != "__metadata__":
                numel = 1
                for size in info["shape"]:
                    numel *= size
                counts[info["dtype"]] = counts.get(info["dtype"], 0) + numel
    return counts


def estimated_parameters(config: dict[str, Any]) -> int:
    """Decoder-only transformer parameters from config.json (embeddings, attention, gated MLP)."""
    hidden, layers = config["hidden_size"], config["num_hidden_layers"]
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or hidden // heads
    inter = config.get("intermediate_size") or 4 * hidden
    experts = config.get("num_local_experts") or config.get("num_experts") or 1
    attention = hidden * head_dim * (2 * heads + 2 * kv_heads)
    mlp = 3 * hidden * (config.get("moe_intermediate_size") or inter) * experts
    embeddings = config["vocab_size"] * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return embeddings + layers * (attention + mlp)


def kv_bytes_per_token(config: dict[str, Any], dtype: str) -> int:
    """KV-cache bytes one token occupies across all layers."""
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads") or heads
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    return 2 * config["num_hidden_layers"] * kv_heads * head_dim * _dtype_bytes(config, dtype)


def _dtype_bytes(config: dict[str, Any], dtype: str) -> int:
    if dtype != "auto":
        return _DTYPE_BYTES[dtype]
    return _DTYPE_BYTES.get(str(config.get("torch_dtype") or config.get("dtype") or "bfloat16"), 2)


def _budget(engine: EngineConfig, gpus: int, gpu_memory_bytes: Optional[int], host_memory_bytes: Optional[int]) -> tuple[float, str]:
    """Memory one replica may use, and how it was computed (for the message)."""
    if not gpus:
        host = host_memory_bytes or os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        replicas = int(engine.data_parallel_size)
        return host / replicas, f"each of {replicas} replica(s) has host RAM {host / GIB:.1f} GiB / {replicas}"
    per_gpu = gpu_memory_bytes or _gpu_memory()
    if engine.engine == "vllm":
        count = gpus_per_replica(engine)
        return (per_gpu * count * engine.gpu_memory_utilization,
                f"a replica has {count} GPU(s) x {per_gpu / GIB:.1f} GiB x gpu_memory_utilization {engine.gpu_memory_utilization}")
    count = gpus if engine.device_map == "auto" else 1
    return per_gpu * count, f"a replica has {count} GPU(s) x {per_gpu / GIB:.1f} GiB"


def _fix(engine: EngineConfig, gpus: int, weights: int, per_token: int, have: float) -> str:
    if engine.engine == "vllm":
        room = int((have - weights) // per_token) if have > weights else 0
        shorter = f"max_model_len <= {room}" if room >= 256 else "a shorter max_model_len"
        return (f"raise tensor_parallel_size (more GPUs per replica), lower {shorter}, "
                "or raise gpu_memory_utilization.")
    fits = int((have - weights) // (per_token * (engine.max_new_tokens + PROMPT_TOKENS))) if have > weights else 0
    if fits >= 1:
        return f"lower batch_size to {fits}, or use engine: vllm (it pages the KV cache)."
    return "use engine: vllm with tensor_parallel_size > 1, or device_map: auto to spread the model over all GPUs."


def _gpu_memory() -> int:
    import torch

    return torch.cuda.get_device_properties(0).total_memory
