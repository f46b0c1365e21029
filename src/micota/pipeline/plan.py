"""The plan of a run: each stage's state (done, stale and why, pending), how it will run, and
the checks that must pass before any stage starts.

Reading the plan loads nothing and downloads nothing: states come from the manifests on disk
(a stage is re-checked through the same :func:`micota.identity.stage_identity` that
:func:`micota.stage.run_stage` uses), placements and preflight checks from two optional hooks
of each stage module, ``placement(cfg) -> Placement`` and ``preflight(cfg) -> None``.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from micota.errors import MicotaError, MissingPackage
from micota.identity import RUN_PREFIX, resolve_ref, stage_identity
from micota.manifest import input_hashes, read_manifest
from micota.pipeline.recipe import STAGE_KINDS, PlannedStage
from micota.resources import Placement, visible_gpu_count
from micota.stage import PARTIAL_MARK, code_version

_LAUNCHER_VARS = ("WORLD_SIZE", "RANK", "LOCAL_RANK")  # set by torchrun, accelerate launch, deepspeed


@dataclass
class StagePlan:
    """One stage of the plan."""

    stage: PlannedStage
    state: str  # "done" | "stale" | "pending"
    reasons: list[str] = field(default_factory=list)  # why stale (or what a pending stage has on disk)
    waits_on: list[str] = field(default_factory=list)  # upstream stages that are not done yet
    placement: Placement = field(default_factory=Placement)

    @property
    def may_run(self) -> bool:
        """True unless the stage is done and nothing upstream can change its inputs."""
        return self.state != "done" or bool(self.waits_on)


def refuse_launcher(environ: Mapping[str, str] = os.environ) -> None:
    """Stop when started by a distributed launcher: ``micota run`` is the one orchestrator process."""
    found = {name: environ[name] for name in _LAUNCHER_VARS if name in environ}
    if not found or (set(found) == {"WORLD_SIZE"} and found["WORLD_SIZE"].strip() in ("", "0", "1")):
        return
    shown = " ".join(f"{k}={v}" for k, v in found.items())
    raise MicotaError(
        f"`micota run` was started under a distributed launcher ({shown}). It is one process that starts "
        "each stage's own processes: the sft stage launches its ranks itself, generation and evaluation "
        "use the GPUs of `resources`. Run it directly, e.g. `micota run recipes/qwen2.5/micota-3b.yaml`, "
        "without accelerate launch / torchrun / deepspeed; choose GPUs with `resources: {gpus: N}` in the "
        "recipe (or CUDA_VISIBLE_DEVICES)."
    )


def plan_stages(stages: list[PlannedStage]) -> list[StagePlan]:
    """The state and placement of every stage (in the given, dependency, order)."""
    plans: dict[str, StagePlan] = {}
    for stage in stages:
        state, reasons = stage_state(stage)
        waits = [dep for dep in stage.depends_on if dep in plans and plans[dep].may_run]
        plans[stage.name] = StagePlan(stage, state, reasons, waits, stage_placement(stage))
    return list(plans.values())


def stage_state(stage: PlannedStage) -> tuple[str, list[str]]:
    """``("done" | "stale" | "pending", reasons)`` from the stage folder's manifest."""
    out_dir = Path(os.path.abspath(stage.config.out_dir))
    manifest = read_manifest(out_dir)
    if manifest is None:
        partial = (out_dir / PARTIAL_MARK).is_file()
        return "pending", ["partial output of an interrupted run (kept if its config and inputs are unchanged)"] if partial else []
    reasons = []
    current = code_version(manifest.stage)
    if manifest.code_version != current:
        reasons.append(f"stage code version changed ({manifest.code_version} -> {current})")
    declared = {name: resolve_ref(ref, out_dir.parent) for name, ref in manifest.input_refs.items() if not name.startswith(RUN_PREFIX)}
    missing = sorted(name for name, path in declared.items() if not path.exists())
    if missing:
        return "stale", [*reasons, *(f"input {name} is missing ({declared[name]})" for name in missing)]
    identity = stage_identity(stage.config, out_dir, declared)
    if identity.config_sha256 != manifest.config_sha256:
        changes = changed_values(manifest.identity, identity.config)
        reasons.append("config changed" + (f": {'; '.join(changes[:3])}" + (" ..." if len(changes) > 3 else "") if changes else ""))
    hashes = input_hashes({n: p for n, p in identity.inputs.items() if p.exists()})
    for name in sorted(set(hashes) | set(manifest.inputs)):
        if name not in manifest.inputs:
            reasons.append(f"new input {name}")
        elif name not in hashes:
            reasons.append(f"input {name} is no longer read")
        elif hashes[name] != manifest.inputs[name]:
            reasons.append(f"input {name} changed ({identity.refs.get(name, name)})")
    return ("stale" if reasons else "done"), reasons


def changed_values(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ, with both values (shortened).

    >>> changed_values({"a": 1, "e": {"t": 48}}, {"a": 1, "e": {"t": 64}, "n": True})
    ['e.t: 48 -> 64', 'n: (unset) -> True']
    """
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            found += changed_values(old.get(key, _UNSET), new.get(key, _UNSET), f"{prefix}{key}.")
        return found
    if old == new:
        return []
    return [f"{prefix.rstrip('.')}: {_short(old)} -> {_short(new)}"]


class _Unset:
    def __repr__(self) -> str:
        return "(unset)"


_UNSET = _Unset()


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def stage_module(kind: str):
    """The module that runs a stage kind (imported lazily)."""
    return importlib.import_module(STAGE_KINDS[kind].module)


def stage_placement(stage: PlannedStage) -> Placement:
    """The stage module's ``placement(cfg)``; without one, one process (on a GPU when the stage uses hardware)."""
    hook = getattr(stage_module(stage.kind), "placement", None)
    if hook is not None:
        return hook(stage.config)
    resources = getattr(stage.config, "resources", None)
    return Placement(processes=1, gpus=min(1, resources.gpu_count()) if resources is not None else 0)


@dataclass
class PreflightFindings:
    """What the cheap checks found: problems of the recipe or the run, and packages this Python lacks."""

    problems: list[str] = field(default_factory=list)  # each names the stage and the fix
    missing: dict[str, list[str]] = field(default_factory=dict)  # package -> [first message, stage names...]

    def all_messages(self) -> list[str]:
        """Every finding as one line: the problems, then one line per missing package."""
        return [*self.problems, *(missing_package_line(package, found) for package, found in self.missing.items())]


def missing_package_line(package: str, found: list[str]) -> str:
    message, stages = found[0], found[1:]
    shown = ", ".join(stages[:4]) + (f" and {len(stages) - 4} more" if len(stages) > 4 else "")
    return f"package {package} (stage{'s' if len(stages) > 1 else ''} {shown}): {message}"


def preflight_findings(plans: list[StagePlan]) -> PreflightFindings:
    """Every problem the cheap checks find in stages that may run; a missing package is listed once."""
    findings = PreflightFindings()
    for plan in plans:
        if not plan.may_run:
            continue
        try:
            check_resources(plan.stage)
            hook = getattr(stage_module(plan.stage.kind), "preflight", None)
            if hook is not None:
                hook(plan.stage.config)
        except MissingPackage as exc:
            findings.missing.setdefault(exc.package, [str(exc)]).append(repr(plan.stage.name))
        except MicotaError as exc:
            findings.problems.append(f"stage {plan.stage.name!r} ({plan.stage.kind}): {exc}")
    return findings


def check_resources(stage: PlannedStage) -> None:
    """A stage may not ask for more GPUs than this machine shows."""
    resources = getattr(stage.config, "resources", None)
    if resources is None or resources.gpus == "auto":
        return
    visible = visible_gpu_count()
    if resources.gpus > visible:
        shown = os.environ.get("CUDA_VISIBLE_DEVICES")
        seen = f"{visible} visible" + (f" (CUDA_VISIBLE_DEVICES={shown!r})" if shown is not None else "")
        raise MicotaError(
            f"resources.gpus: {resources.gpus} asked, {seen}. Set `resources: {{gpus: auto}}` (every visible GPU) "
            f"or a number up to {visible}, in the recipe or under stages.{stage.name}."
        )


def preflight(plans: list[StagePlan]) -> None:
    """Raise one MicotaError listing every preflight problem; nothing has run yet."""
    problems = preflight_findings(plans).all_messages()
    if problems:
        raise MicotaError("the run cannot start; nothing has run:\n" + "\n".join(f"  - {p}" for p in problems))


def describe_plan(plans: list[StagePlan], run_dir: Path, findings: PreflightFindings, assumed_gpus: int | None = None) -> list[str]:
    """The lines ``micota run --dry-run`` prints (``assumed_gpus``: planned for a node with that many GPUs)."""
    count = visible_gpu_count() if assumed_gpus is None else assumed_gpus
    gpus = f"{count} GPU{'s' if count != 1 else ''}"
    where = f"planned for {gpus} (--gpus), not this machine's" if assumed_gpus is not None else f"{gpus} visible"
    lines = [f"run folder: {run_dir}   ({where})"]
    width = max((len(p.stage.name) for p in plans), default=5)
    kind_width = max((len(p.stage.kind) for p in plans), default=4)
    for index, plan in enumerate(plans, start=1):
        lines.append(f"{index:>3}. {plan.stage.name:<{width}}  {plan.stage.kind:<{kind_width}}  {plan.state:<7}  {plan.placement.describe()}")
        lines += [f"{'':>5}{'':<{width}}  - {reason}" for reason in plan.reasons]
        if plan.waits_on and plan.state != "pending":
            lines.append(f"{'':>5}{'':<{width}}  - re-checked after {', '.join(plan.waits_on)}")
    counts = {state: sum(p.state == state for p in plans) for state in ("done", "stale", "pending")}
    lines.append(", ".join(f"{n} {state}" for state, n in counts.items()) + f"; {sum(p.may_run for p in plans)} may run.")
    if not findings.problems and not findings.missing:
        lines.append("preflight: ok")
    if findings.problems:
        lines.append("preflight found problems:")
        lines += [f"  - {p}" for p in findings.problems]
    if findings.missing:
        lines.append("packages this Python lacks (install them where the run will go):" if assumed_gpus is not None
                     else "preflight found missing packages:")
        lines += [f"  - {missing_package_line(package, found)}" for package, found in findings.missing.items()]
    return lines
