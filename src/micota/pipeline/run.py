"""Run a recipe's stages in dependency order, skipping those already done.

Each stage decides for itself (through :func:`micota.stage.run_stage`) whether its manifest
still matches its config and inputs; because inputs are hashed by content, a changed
upstream output re-runs every stage downstream of it and nothing else.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from micota.manifest import read_manifest
from micota.pipeline.recipe import STAGE_KINDS, PlannedStage, load_recipe


@dataclass
class StageOutcome:
    name: str
    kind: str
    ran: bool  # False when the stage was already done
    wall_time_s: float


def run_recipe(
    path: str | Path,
    overrides: Optional[list[str]] = None,
    run_dir: Optional[Path] = None,
    only: Optional[list[str]] = None,
    log: Callable[[str], None] = print,
) -> list[StageOutcome]:
    """Run every stage of the recipe (or only the named ones) and return what happened to each."""
    recipe, stages = load_recipe(path, overrides, run_dir)
    if only:
        stages = [s for s in stages if s.name in set(only)]
    recipe.run_dir.mkdir(parents=True, exist_ok=True)
    if recipe.cpu_threads:
        import torch

        torch.set_num_threads(recipe.cpu_threads)
    outcomes = []
    for index, stage in enumerate(stages, start=1):
        log(f"[{index}/{len(stages)}] {stage.name} ({stage.kind})")
        outcome = run_planned_stage(stage)
        log(f"    {'done' if outcome.ran else 'up to date, skipped'} in {outcome.wall_time_s:.1f}s")
        outcomes.append(outcome)
    return outcomes


def run_planned_stage(stage: PlannedStage) -> StageOutcome:
    """Run one planned stage; report whether it actually ran."""
    out_dir = Path(getattr(stage.config, "out_dir"))
    before = read_manifest(out_dir)
    started = time.perf_counter()
    module = importlib.import_module(STAGE_KINDS[stage.kind].module)
    manifest = module.run(stage.config)
    ran = before is None or before.created_at != manifest.created_at or before.config_sha256 != manifest.config_sha256
    return StageOutcome(stage.name, stage.kind, ran, time.perf_counter() - started)
