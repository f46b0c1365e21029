"""Merge configs: micota's native form and mergekit YAML (accepted as is, same math).

Native form (a ``merge:`` recipe section or a standalone YAML)::

    method: dare_ties            # linear | task_arithmetic | ties | dare_linear | dare_ties
    base: runs/ta/base           # θ₀: the TA before SFT (HF folder with safetensors)
    models:                      # θᵢ: fine-tuned models
      - model: runs/ta/sft/model
        weight: 1.0              # wᵢ; a list is interpolated across layers
        density: 0.5             # share of δ kept, in (0, 1]; a list is interpolated too
    lambda: 1.0                  # λ: scale of the merged delta (0 = base)
    seed: 0                      # DARE masks are a pure function of (seed, tensor, model)
    dtype: float32               # computation dtype
    out_dtype: null              # null = the base checkpoint's dtype

mergekit's keys (``merge_method``, ``base_model``, ``models[].parameters``,
``parameters{normalize, rescale, lambda, int8_mask}``, ``dtype``, ``out_dtype``) are
translated by :func:`from_mergekit`. One deliberate difference: when a mergekit file gives
no ``dtype``, micota computes in float32 (mergekit computes in the checkpoint's dtype).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import ConfigDict, Field, field_validator, model_validator

from micota.config import NOT_HASHED, StrictModel, read_yaml, validate_config
from micota.errors import MicotaError
from micota.merge.methods import MERGE_METHODS, Rescale

LayerValue = Union[float, list[float]]  # a scalar, or values interpolated from first to last layer
DType = Literal["float32", "bfloat16", "float16"]


class MergeModel(StrictModel):
    """One fine-tuned model and its parameters."""

    model: str  # HF model folder with *.safetensors
    weight: LayerValue = 1.0  # wᵢ
    density: LayerValue = 1.0  # share of δ kept by the sparsifier, in (0, 1]

    @field_validator("density")
    @classmethod
    def _density_in_range(cls, value: LayerValue) -> LayerValue:
        for item in value if isinstance(value, list) else [value]:
            if not 0.0 < item <= 1.0:
                raise ValueError(f"density must be in (0, 1], got {item}. Set density: 1.0 to keep every entry")
        return value


class LengthSearchConfig(StrictModel):
    """Length-targeted merging: find the strength whose CoT is `target_ratio` × the fine-tuned one's."""

    target_ratio: float = Field(0.5, gt=0.0, le=1.5)  # wanted mean length / fine-tuned mean length
    probe_set: str  # JSONL prompt set: `problem` (or `question`) and `answer` per line
    max_probes: int = Field(64, ge=1)  # prompts used from the probe set
    prompt_template: str = "micota_generation"  # a file in micota/_data/prompts/
    benchmark: Optional[str] = None  # grader profile passed to micota.grade (e.g. math500, lab)
    accuracy_tolerance: float = Field(0.05, ge=0.0, le=1.0)  # allowed absolute drop vs fine-tuned
    param: Literal["lambda", "density"] = "lambda"  # what the search varies
    low: float = Field(0.0, ge=0.0)  # search range of `param`
    high: float = Field(1.0, gt=0.0)
    max_evals: int = Field(6, ge=2)  # merges probed (besides the fine-tuned model itself)
    max_new_tokens: int = Field(1024, ge=1)
    batch_size: int = Field(16, ge=1)
    device: str = "auto"


class MergeConfig(StrictModel):
    """Everything one merge needs; see the module docstring for the YAML form."""

    model_config = ConfigDict(**StrictModel.model_config, validate_by_name=True, validate_by_alias=True)

    method: str = "dare_ties"  # a row of micota.merge.methods.MERGE_METHODS
    base: Optional[str] = None  # θ₀; required by every method but `linear`
    models: list[MergeModel] = Field(min_length=1)
    lambda_: float = Field(1.0, alias="lambda")  # λ: merged delta scale
    normalize: Optional[bool] = None  # None = the method's default
    rescale: Optional[Rescale] = None  # None = the method's default (l1 for DARE rows)
    seed: int = 0  # seeds DARE masks
    dtype: DType = "float32"  # computation dtype
    out_dtype: Optional[DType] = None  # None = keep the base checkpoint's dtype
    embedding_mismatch: Literal["error", "base_rows"] = "error"  # base_rows: output keeps the base's rows;
    # rows a model lacks count as unchanged (δ = 0), rows beyond the base's are dropped
    allow_pickle: bool = False  # refuse *.bin checkpoints unless set
    shard_size_mb: int = Field(2000, ge=1)  # max output shard size
    chunk_mb: int = Field(32, ge=1, json_schema_extra=NOT_HASHED)  # compute chunk (float32 MB per operand) for big tensors
    length_search: Optional[LengthSearchConfig] = None
    out_dir: Path = Field(json_schema_extra=NOT_HASHED)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        if value not in MERGE_METHODS:
            raise ValueError(f"unknown merge method {value!r}; available: {', '.join(MERGE_METHODS)}")
        return value

    @model_validator(mode="after")
    def _base_needed(self) -> "MergeConfig":
        if self.base is None and MERGE_METHODS[self.method].on_deltas:
            raise ValueError(f"method {self.method!r} merges deltas from a base model; add `base: <model folder>`")
        return self

    def resolved_normalize(self) -> bool:
        return MERGE_METHODS[self.method].normalize if self.normalize is None else self.normalize

    def resolved_rescale(self) -> Rescale:
        return MERGE_METHODS[self.method].rescale if self.rescale is None else self.rescale


def load_merge_config(
    path: str | Path, out_dir: str | Path | None = None, seed: int | None = None, overrides: list[str] | None = None
) -> MergeConfig:
    """Read a native or mergekit YAML merge config (detected by its `merge_method` key)."""
    from micota.config import apply_overrides

    data = read_yaml(path)
    if "merge_method" in data:
        data = from_mergekit(data, source=str(path))
    data = apply_overrides(data, overrides or [])
    if out_dir is not None:
        data["out_dir"] = str(out_dir)
    if seed is not None:
        data["seed"] = seed
    if "out_dir" not in data:
        raise MicotaError(f"{path}: no output folder. Pass OUT_DIR on the command line or add `out_dir:`.")
    return validate_config(MergeConfig, data, source=str(path))


_MERGEKIT_TOP = {"merge_method", "base_model", "models", "parameters", "dtype", "out_dtype", "tokenizer_source", "name"}
_MERGEKIT_GLOBAL = {"normalize", "rescale", "lambda", "int8_mask", "weight", "density"}


def from_mergekit(data: dict[str, Any], source: str = "mergekit config") -> dict[str, Any]:
    """Translate mergekit YAML (the subset micota reads) into the native form."""
    unknown = set(data) - _MERGEKIT_TOP
    if unknown:
        raise MicotaError(
            f"{source}: mergekit keys {sorted(unknown)} are not supported by micota's merge. "
            f"Supported: {', '.join(sorted(_MERGEKIT_TOP))}."
        )
    if data.get("tokenizer_source") not in (None, "base"):
        raise MicotaError(
            f"{source}: tokenizer_source={data['tokenizer_source']!r} is not supported; micota copies the base's "
            "tokenizer and never resizes embeddings (mergekit's union/model tokenizers shrink or grow them). Remove it."
        )
    params = dict(data.get("parameters") or {})
    bad = set(params) - _MERGEKIT_GLOBAL
    if bad:
        raise MicotaError(f"{source}: parameters {sorted(bad)} are not supported. Supported: {sorted(_MERGEKIT_GLOBAL)}.")
    base = data.get("base_model")
    native: dict[str, Any] = {"method": data["merge_method"], "base": base, "models": []}
    for index, entry in enumerate(data.get("models") or []):
        if entry.get("model") == base and not entry.get("parameters"):
            continue  # mergekit configs often list the base itself without parameters
        model_params = entry.get("parameters") or {}
        extra = set(model_params) - {"weight", "density"}
        if extra:
            raise MicotaError(f"{source}: models[{index}].parameters {sorted(extra)} not supported (weight, density are).")
        native["models"].append(
            {
                "model": entry.get("model"),
                "weight": _plain_value(model_params.get("weight", params.get("weight", 1.0)), source, "weight"),
                "density": _plain_value(model_params.get("density", params.get("density", 1.0)), source, "density"),
            }
        )
    if "normalize" in params:
        native["normalize"] = bool(params["normalize"])
    if "rescale" in params:
        native["rescale"] = "l1" if params["rescale"] else "none"
    if "lambda" in params:
        native["lambda"] = params["lambda"]
    if data.get("dtype"):
        native["dtype"] = data["dtype"]
    if data.get("out_dtype") or data.get("dtype"):
        native["out_dtype"] = data.get("out_dtype") or data["dtype"]
    return native


def _plain_value(value: Any, source: str, name: str) -> Any:
    if isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value)):
        raise MicotaError(
            f"{source}: `{name}` uses mergekit tensor filters ({value!r}); micota supports scalars and per-layer lists."
        )
    return value


def warn_ineffective_parameters(config: MergeConfig) -> None:
    """Warn about settings that silently do nothing (mergekit's traps)."""
    method = MERGE_METHODS[config.method]
    if config.resolved_normalize() and len(config.models) == 1 and config.models[0].weight != 1.0:
        warnings.warn(
            f"weight={config.models[0].weight} has no effect: with one model and normalize: true the weight is "
            "divided out. Use `lambda` to scale the merge, or set normalize: false.",
            stacklevel=2,
        )
    if method.sparsify is None and any(m.density != 1.0 for m in config.models):
        warnings.warn(f"`density` has no effect with method {config.method!r} (it does not sparsify).", stacklevel=2)
    if not method.on_deltas and config.lambda_ != 1.0:
        warnings.warn("`lambda` has no effect with method 'linear' (it mixes parameters, not deltas).", stacklevel=2)
