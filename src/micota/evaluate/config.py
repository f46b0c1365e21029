"""``EvaluateConfig``: models × benchmarks, greedy, 16K new tokens by default (issue 5, item 3)."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_validator, model_validator

from micota.config import NOT_HASHED, StrictModel
from micota.evaluate.context import ContextPolicy
from micota.evaluate.metrics import DEFAULT_REFLECTION_MARKERS
from micota.generate.engine import EngineConfig

LAB_BENCHMARK = "lab"


class EngineSettings(EngineConfig):
    """Generation settings shared by every evaluated model (``model`` comes from ``models``)."""

    model: str = ""  # filled per model from EvaluateConfig.models


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
    models: dict[str, str]  # display name -> local model folder or hub id
    benchmarks: list[BenchmarkRun]
    data_dir: Optional[str] = None  # folder with <name>/test.jsonl; default $MICOTA_DATA_DIR
    benchmark_source: Literal["local", "hub"] = "local"  # "hub": load the table's hub ids (needs network)
    engine: EngineSettings = Field(default_factory=EngineSettings)  # greedy, max_new_tokens 16384
    context_policy: ContextPolicy = "error"  # prompt + max_new_tokens > context: "error" or "lower"
    system_prompt: Optional[str] = None  # optional system message before the rendered prompt
    reflection_markers: list[str] = Field(default_factory=lambda: list(DEFAULT_REFLECTION_MARKERS))
    grade_workers: Optional[int] = Field(None, ge=1, json_schema_extra=NOT_HASHED)  # grading processes; None = min(CPUs, 8)
    progress: bool = Field(True, json_schema_extra=NOT_HASHED)  # progress bars

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

    @field_validator("models")
    @classmethod
    def _some_models(cls, value: dict[str, str]) -> dict[str, str]:
        if not value:
            raise ValueError("give at least one model, e.g. `models: {Instruct: Qwen/Qwen2.5-1.5B-Instruct}`")
        return value

    def engine_for(self, model_path: str, max_new_tokens: int) -> EngineConfig:
        """The generate EngineConfig of one model, with the context-checked max_new_tokens."""
        settings = self.engine.model_dump(exclude={"model"})
        settings["max_new_tokens"] = max_new_tokens
        return EngineConfig(**settings, model=model_path)
