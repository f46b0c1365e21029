"""``EvaluateConfig``: models × benchmarks under one protocol, scored in one or more modes.

A model is a path or hub id, or ``{model: ..., engine: {...}}`` whose ``engine`` keys are
merged over the shared ``engine`` (e.g. ``tensor_parallel_size: 4`` for a 14B model).
``protocol: sampled`` draws ``samples`` responses per problem at temperature 0.6, top_p 0.95
unless ``engine.temperature`` / ``engine.top_p`` are set explicitly.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, ValidationError, create_model, field_validator, model_serializer, model_validator

from micota.config import NOT_HASHED, StrictModel
from micota.evaluate.context import ContextPolicy
from micota.evaluate.judge import JudgeConfig
from micota.evaluate.metrics import DEFAULT_REFLECTION_MARKERS
from micota.evaluate.protocols import PROTOCOLS
from micota.evaluate.scoring import SCORINGS
from micota.generate.engine import EngineConfig
from micota.resources import Resources

LAB_BENCHMARK = "lab"


class EngineSettings(EngineConfig):
    """Generation settings shared by every evaluated model (``model`` comes from ``models``)."""

    model: str = ""  # filled per model from EvaluateConfig.models


class _SetFieldsOnly(StrictModel):
    """Dumps only the fields a recipe set, so ``config.yaml`` shows a model's overrides and nothing else."""

    @model_serializer(mode="wrap")
    def _only_set(self, handler: Any) -> dict[str, Any]:
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}


def _partial_engine() -> type[StrictModel]:
    """EngineConfig with every field optional (``model`` excluded): a model's engine overrides.

    Each field keeps its NOT_HASHED mark, so a per-model ``batch_size`` stays out of the hash;
    the value ranges are checked when the overrides are merged into a full EngineConfig.
    """
    fields = {name: (Optional[info.annotation], Field(None, json_schema_extra=info.json_schema_extra))
              for name, info in EngineConfig.model_fields.items() if name != "model"}
    return create_model("EngineOverrides", __base__=_SetFieldsOnly, **fields)


EngineOverrides = _partial_engine()


class ModelEntry(StrictModel):
    """One evaluated model; a plain string in YAML (``Instruct: Qwen/...``) is ``{model: ...}``."""

    model: str  # local model folder or hub id (openai engine: the server's model name)
    engine: EngineOverrides = Field(default_factory=EngineOverrides)  # merged over the shared `engine`

    def overrides(self) -> dict[str, Any]:
        """The engine keys this model sets itself."""
        return self.engine.model_dump()


class BenchmarkRun(StrictModel):
    """One benchmark to run; a plain string in YAML (``- math500``) means all of it."""

    name: str  # a row of micota.data.BENCHMARKS, or "lab"
    limit: Optional[int] = Field(None, ge=1)  # evaluate only the first N problems (quick subsets)
    path: Optional[str] = None  # lab benchmark: JSONL with id, problem, answer on each line
    prompt: Optional[str] = None  # template under micota/_data/prompts/; default: the benchmark's own

    @model_validator(mode="after")
    def _lab_needs_path(self) -> "BenchmarkRun":
        if self.name == LAB_BENCHMARK and not self.path:
            raise ValueError("the lab benchmark needs `path:` to its JSONL file (id, problem, answer)")
        return self


class EvaluateConfig(StrictModel):
    """Evaluate ``models`` on ``benchmarks``; outputs per-sample JSONL and ``results.json``."""

    out_dir: str = Field(json_schema_extra=NOT_HASHED)
    models: dict[str, ModelEntry]  # display name -> path/hub id, or {model: ..., engine: {overrides}}
    benchmarks: list[BenchmarkRun]
    data_dir: Optional[str] = None  # folder with <name>/test.jsonl; default $MICOTA_DATA_DIR
    benchmark_source: Literal["local", "hub"] = "local"  # "hub": load the table's hub ids (needs network)
    engine: EngineSettings = Field(default_factory=EngineSettings)  # greedy, max_new_tokens 16384
    protocol: Literal["greedy", "sampled"] = "greedy"  # rows of micota.evaluate.protocols.PROTOCOLS
    samples: Optional[int] = Field(None, ge=1)  # responses per problem; default: the protocol's (greedy 1, sampled 8)
    scoring: list[Literal["robust", "paper", "judge"]] = Field(default_factory=lambda: ["robust", "paper"])
    judge: Optional[JudgeConfig] = None  # the LLM judge of `scoring: [..., judge]`
    context_policy: ContextPolicy = "error"  # prompt + max_new_tokens > context: "error" or "lower"
    system_prompt: Optional[str] = None  # optional system message before the rendered prompt
    reflection_markers: list[str] = Field(default_factory=lambda: list(DEFAULT_REFLECTION_MARKERS))
    resources: Resources = Field(default_factory=Resources, json_schema_extra=NOT_HASHED)  # filled by the planner
    grade_workers: Optional[int] = Field(None, ge=1, json_schema_extra=NOT_HASHED)  # grading processes; None = min(CPUs, 8)
    progress: bool = Field(True, json_schema_extra=NOT_HASHED)  # progress bars

    @field_validator("models", mode="before")
    @classmethod
    def _paths_as_entries(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {name: {"model": item} if isinstance(item, str) else item for name, item in value.items()}
        return value

    @field_validator("models")
    @classmethod
    def _some_models(cls, value: dict[str, ModelEntry]) -> dict[str, ModelEntry]:
        if not value:
            raise ValueError("give at least one model, e.g. `models: {Instruct: Qwen/Qwen2.5-1.5B-Instruct}`")
        return value

    @field_validator("benchmarks", mode="before")
    @classmethod
    def _names_as_runs(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @field_validator("benchmarks")
    @classmethod
    def _unique_names(cls, value: list[BenchmarkRun]) -> list[BenchmarkRun]:
        names = [b.name for b in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"benchmark names must be unique; repeated: {repeated} (use `limit` for subsets)")
        return value

    @field_validator("engine")
    @classmethod
    def _no_engine_model(cls, value: EngineSettings) -> EngineSettings:
        if value.model:
            raise ValueError(f"engine.model is set ({value.model!r}) but evaluate takes its models from `models:`; "
                             "remove engine.model and list the model under `models: {name: path}`")
        return value

    @field_validator("scoring")
    @classmethod
    def _known_unique_scoring(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"give at least one scoring mode: {', '.join(SCORINGS)}")
        if "judge" in value and "paper" not in value:  # the judge re-checks what `paper` failed
            value = [*value[: value.index("judge")], "paper", *value[value.index("judge"):]]
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _protocol_settings(self) -> "EvaluateConfig":
        """Fill the protocol's defaults (samples, temperature, top_p) and check what was set against it."""
        protocol = PROTOCOLS[self.protocol]
        if self.samples is None:
            self.samples = protocol.samples
        protocol.check(self.samples, self.engine)
        for name, value in protocol.sampling_defaults().items():
            if name not in self.engine.model_fields_set:
                setattr(self.engine, name, value)
        for name in self.models:
            protocol.check(self.samples, self.engine_settings(name))
        if "judge" in self.scoring and self.judge is None:
            raise ValueError("scoring has `judge` but no `judge:` block; add `judge: {engine: {engine: vllm, "
                             "model: Qwen/Qwen2.5-32B-Instruct}}` (or openai with base_url), or drop judge from scoring")
        return self

    def engine_settings(self, name: str) -> EngineConfig:
        """Model ``name``'s EngineConfig: the shared engine, then its own overrides, then its model."""
        entry = self.models[name]
        settings = {**self.engine.model_dump(exclude={"model"}), **entry.overrides()}
        try:
            return EngineConfig(**settings, model=entry.model)
        except ValidationError as exc:
            problems = "; ".join(f"models.{name}.engine.{'.'.join(map(str, e['loc']))}: {e['msg']} (got {e.get('input')!r})"
                                 for e in exc.errors())
            raise ValueError(problems) from None
