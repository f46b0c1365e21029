"""Run a recipe's stages in dependency order, skipping those already done.

``micota run`` is one orchestrator process: it refuses to start under a distributed launcher,
plans the run (state and placement of every stage), runs every stage's preflight check before
any stage starts, holds the run folder's lock, and then calls each stage's ``run(config)``.
Each stage decides for itself (through :func:`micota.stage.run_stage`) whether its manifest
still matches its config and inputs; because inputs are hashed by content, a changed upstream
output re-runs every stage downstream of it and nothing else.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from micota.lock import RUN_LOCK_NAME, hold_locks, stage_lock_path
from micota.manifest import read_manifest
from micota.pipeline.plan import PreflightFindings, StagePlan, plan_stages, preflight, preflight_findings, refuse_launcher, stage_module
from micota.pipeline.recipe import PlannedStage, Recipe, load_recipe


@dataclass
class StageOutcome:
    name: str
    kind: str
    ran: bool  # False when the stage was already done
    wall_time_s: float


def plan_recipe(
    path: str | Path,
    overrides: Optional[list[str]] = None,
    run_dir: Optional[Path] = None,
    only: Optional[list[str]] = None,
    assumed_gpus: Optional[int] = None,
) -> tuple[Recipe, list[StagePlan], PreflightFindings]:
    """Load and plan a recipe without running anything: (recipe, stage plans, preflight findings).

    ``assumed_gpus`` plans for a node with that many GPUs (placements and GPU checks use it).
    """
    from contextlib import nullcontext

    from micota.resources import assume_gpus

    refuse_launcher()
    recipe, stages = load_recipe(path, overrides, run_dir)
    with assume_gpus(assumed_gpus) if assumed_gpus is not None else nullcontext():
        plans = plan_stages(_selected(stages, only))
        return recipe, plans, preflight_findings(plans)


def run_recipe(
    path: str | Path,
    overrides: Optional[list[str]] = None,
    run_dir: Optional[Path] = None,
    only: Optional[list[str]] = None,
    log: Callable[[str], None] = print,
) -> list[StageOutcome]:
    """Run every stage of the recipe (or only the named ones) and return what happened to each."""
    refuse_launcher()
    recipe, stages = load_recipe(path, overrides, run_dir)
    stages = _selected(stages, only)
    recipe.run_dir.mkdir(parents=True, exist_ok=True)
    locks = [(recipe.run_dir / RUN_LOCK_NAME, f"run folder {recipe.run_dir}")]
    locks += [(stage_lock_path(s.config.out_dir), f"stage folder {s.config.out_dir}") for s in stages]
    with hold_locks(locks):
        plans = plan_stages(stages)  # under the lock: no one else changes the folder while we read it
        preflight(plans)
        if recipe.cpu_threads:
            import torch

            torch.set_num_threads(recipe.cpu_threads)
        outcomes = []
        for index, plan in enumerate(plans, start=1):
            why = f": {'; '.join(plan.reasons)}" if plan.state == "stale" and plan.reasons else ""
            log(f"[{index}/{len(plans)}] {plan.stage.name} ({plan.stage.kind}, {plan.state}{why}) on {plan.placement.describe()}")
            outcome = run_planned_stage(plan.stage)
            log(f"    {'done' if outcome.ran else 'up to date, skipped'} in {outcome.wall_time_s:.1f}s")
            outcomes.append(outcome)
    return outcomes


def _selected(stages: list[PlannedStage], only: Optional[list[str]]) -> list[PlannedStage]:
    if not only:
        return stages
    from micota.errors import MicotaError

    unknown = sorted(set(only) - {s.name for s in stages})
    if unknown:
        raise MicotaError(f"--only {unknown[0]}: no such stage. Stages: {', '.join(s.name for s in stages)}.")
    return [s for s in stages if s.name in set(only)]


def run_planned_stage(stage: PlannedStage) -> StageOutcome:
    """Run one planned stage; report whether it actually ran."""
    out_dir = Path(getattr(stage.config, "out_dir"))
    before = read_manifest(out_dir)
    started = time.perf_counter()
    manifest = stage_module(stage.kind).run(stage.config)
    ran = before is None or before.created_at != manifest.created_at or before.config_sha256 != manifest.config_sha256
    return StageOutcome(stage.name, stage.kind, ran, time.perf_counter() - started)
