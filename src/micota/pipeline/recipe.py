"""Pipeline recipes: named stages of known kinds, linked by ``@stage`` references.

A recipe is YAML like::

    run_dir: runs/lab            # where every stage writes RUN/<stage-name>/
    defaults:                    # per-kind values shared by all stages of that kind
      sft: {learning_rate: 1.0e-5, epochs: 2}
    stages:
      ta-sft:
        kind: sft
        model: "@ta-instruct"            # the primary output of stage ta-instruct (its model/)
        data: "@teacher-filtered"        # the primary output of stage teacher-filtered (data.jsonl)
      ta-merged:
        kind: merge
        base: "@ta-instruct/model"       # an explicit path inside a stage folder

A string starting with ``@`` names another stage; that makes an edge of the DAG. Values
layer: the stage kind's config defaults < ``defaults.<kind>`` < the stage's own keys, and
``key=value`` overrides apply to the YAML before any of this (``stages.ta-sft.epochs=1``).

A recipe-level ``resources:`` block (:class:`micota.resources.Resources`: GPUs to use) is given
to every stage whose config has a ``resources`` field; ``defaults.<kind>.resources`` and a
stage's own ``resources:`` override it key by key.
"""

from __future__ import annotations

import difflib
import importlib
import posixpath
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, Field

from micota.config import StrictModel, apply_overrides, read_yaml, validate_config
from micota.errors import MicotaError
from micota.resources import Resources


@dataclass(frozen=True)
class StageKind:
    module: str  # module holding `run(config) -> Manifest`
    config_class: str  # the stage's config class in that module
    primary: str  # what `@stage` points to inside the stage folder ("" = the folder itself)


STAGE_KINDS: dict[str, StageKind] = {
    "lab": StageKind("micota.lab.run", "LabConfig", ""),
    "generate": StageKind("micota.generate.run", "GenerateConfig", "data.jsonl"),
    "filter": StageKind("micota.curate.filter", "FilterConfig", "data.jsonl"),
    "mix": StageKind("micota.curate.mix", "MixConfig", "data.jsonl"),
    "sft": StageKind("micota.sft.run", "SFTConfig", "model"),
    "merge": StageKind("micota.merge", "MergeConfig", ""),
    "evaluate": StageKind("micota.evaluate.run", "EvaluateConfig", ""),
    "report": StageKind("micota.pipeline.report_stage", "ReportConfig", "report.md"),
    "bpc": StageKind("micota.analyze.bpc_stage", "BpcConfig", ""),  # the folder: bpc.json and bpc.md, like evaluate
}


class Recipe(StrictModel):
    """The whole pipeline: where it runs, shared defaults and the stages."""

    description: str = ""
    run_dir: Path = Path("runs/default")  # RUN: every stage writes RUN/<stage-name>/
    cpu_threads: Optional[int] = Field(None, ge=1)  # torch CPU threads; 1 is fastest for tiny models on a busy CPU
    resources: Resources = Field(default_factory=Resources)  # hardware for every stage that uses it (a stage's own overrides)
    defaults: dict[str, dict[str, Any]] = Field(default_factory=dict)  # per stage kind
    stages: dict[str, dict[str, Any]]  # name -> {kind: ..., <that kind's config fields>}


@dataclass
class PlannedStage:
    name: str
    kind: str
    config: BaseModel  # the validated stage config, references resolved to paths
    depends_on: list[str]


def load_recipe(path: str | Path, overrides: Optional[list[str]] = None, run_dir: Optional[Path] = None) -> tuple[Recipe, list[PlannedStage]]:
    """Read, override, validate and plan a recipe; stages come back in dependency order."""
    data = apply_overrides(read_recipe_data(Path(path)), overrides or [])
    recipe = validate_config(Recipe, data, source=str(path))
    if run_dir is not None:
        recipe.run_dir = Path(run_dir)
    return recipe, plan_stages(recipe, source=str(path))


def read_recipe_data(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The recipe's YAML, with ``extends: other.yaml`` (relative to this file) merged underneath."""
    data = read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    parent_path = (path.parent / str(parent)).resolve()
    if parent_path in seen:
        raise MicotaError(f"{path}: extends: {parent!r} makes a loop of recipes.")
    return deep_merge(read_recipe_data(parent_path, (*seen, parent_path)), data)


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over ``base``, merging nested mappings key by key (lists and scalars replace)."""
    merged = dict(base)
    for key, value in top.items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def plan_stages(recipe: Recipe, *, source: str) -> list[PlannedStage]:
    """Validate each stage against its kind and order the stages so inputs come first."""
    unknown = set(recipe.defaults) - set(STAGE_KINDS)
    if unknown:
        raise MicotaError(f"{source}: defaults.{sorted(unknown)[0]}: not a stage kind. Kinds: {', '.join(STAGE_KINDS)}.")
    planned = {name: _plan_one(recipe, name, spec, source) for name, spec in recipe.stages.items()}
    return _topological(planned, source)


def _plan_one(recipe: Recipe, name: str, spec: dict[str, Any], source: str) -> PlannedStage:
    kind = spec.get("kind")
    if kind not in STAGE_KINDS:
        raise MicotaError(f"{source}: stages.{name}.kind: {kind!r} is not a stage kind. Kinds: {', '.join(STAGE_KINDS)}.")
    # nested blocks layer key by key, as `extends` does: defaults.generate.engine gives the sampling, a stage its model
    fields = deep_merge(recipe.defaults.get(kind, {}), {k: v for k, v in spec.items() if k != "kind"})
    deps: list[str] = []
    resolved = _resolve_refs(fields, recipe, deps, where=f"{source}: stages.{name}")
    resolved["out_dir"] = str(recipe.run_dir / name)
    cls = config_class(kind)
    if "resources" in cls.model_fields:
        own = resolved.get("resources") or {}
        if not isinstance(own, dict):
            raise MicotaError(f"{source}: stages.{name}.resources: expected a mapping like {{gpus: 2}}, got {own!r}.")
        resolved["resources"] = {**recipe.resources.model_dump(), **own}
    config = validate_config(cls, resolved, source=f"{source}: stages.{name} (kind: {kind})")
    return PlannedStage(name=name, kind=kind, config=config, depends_on=sorted(set(deps)))


def config_class(kind: str) -> type[BaseModel]:
    """The config class of a stage kind (its module is imported here, lazily)."""
    row = STAGE_KINDS[kind]
    return getattr(importlib.import_module(row.module), row.config_class)


def _resolve_refs(value: Any, recipe: Recipe, deps: list[str], where: str) -> Any:
    if isinstance(value, dict):
        return {k: _resolve_refs(v, recipe, deps, where) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_refs(v, recipe, deps, where) for v in value]
    if isinstance(value, str) and value.startswith("@"):
        stage, _, inner = value[1:].partition("/")
        if stage not in recipe.stages:
            close = difflib.get_close_matches(stage, list(recipe.stages), n=1)
            hint = f" Did you mean @{close[0]}?" if close else ""
            raise MicotaError(f"{where}: reference {value!r} names no stage.{hint} Stages: {', '.join(recipe.stages)}.")
        deps.append(stage)
        target = recipe.run_dir / stage
        if inner and (posixpath.isabs(inner) or posixpath.normpath(inner).split("/")[0] == ".."):
            raise MicotaError(
                f"{where}: reference {value!r} points outside the folder of stage {stage!r}. A reference names "
                f"@{stage} or a path inside its folder (@{stage}/sub/path); write a file outside the run folder "
                "as a plain path, and another stage's output as @that-stage."
            )
        kind = recipe.stages[stage].get("kind")
        if not inner and kind in STAGE_KINDS:
            inner = STAGE_KINDS[kind].primary
        return str(target / inner) if inner else str(target)
    return value


def _topological(planned: dict[str, PlannedStage], source: str) -> list[PlannedStage]:
    order: list[PlannedStage] = []
    state: dict[str, str] = {}

    def visit(name: str, chain: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "visiting":
            raise MicotaError(f"{source}: stages form a cycle: {' -> '.join([*chain, name])}. A stage cannot consume its own output.")
        state[name] = "visiting"
        for dep in planned[name].depends_on:
            visit(dep, [*chain, name])
        state[name] = "done"
        order.append(planned[name])

    for name in planned:  # recipe order breaks ties, so the file reads top to bottom
        visit(name, [])
    return order
