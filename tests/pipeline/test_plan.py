"""The plan of a run: states and reasons, placements, preflight, resources, launcher refusal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import Field

from micota.config import NOT_HASHED, StrictModel
from micota.errors import MicotaError
from micota.manifest import Manifest
from micota.pipeline import recipe as recipe_module
from micota.pipeline.plan import describe_plan, refuse_launcher
from micota.pipeline.recipe import load_recipe
from micota.pipeline.run import plan_recipe, run_recipe
from micota.resources import Placement, Resources
from micota.stage import STAGE_CODE_VERSIONS, StageResult, run_stage

ROOT = Path(__file__).resolve().parents[2]


def write_data(path: Path, n: int, tag: str = "") -> Path:
    rows = [{"id": f"p{i}", "answer": str(i), "response": f"{tag}\\boxed{{{i}}}", "n_tokens": 5 + i, "finish_reason": "stop",
             "messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"{tag}{i}"}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def curate_recipe(tmp_path: Path, **top) -> Path:
    """filter -> filter -> mix: real stages that need no model."""
    long, short = write_data(tmp_path / "long.jsonl", 6, "long "), write_data(tmp_path / "short.jsonl", 8, "short ")
    stages = {
        "long-f": {"kind": "filter", "data": str(long), "require_correct": False},
        "short-f": {"kind": "filter", "data": str(short), "require_correct": False},
        "mix": {"kind": "mix", "sources": [{"data": "@long-f", "ratio": 1}, {"data": "@short-f", "ratio": 1}]},
    }
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), **top, "stages": stages}))
    return path


def states(path: Path, overrides: list[str] | None = None) -> dict[str, tuple[str, list[str]]]:
    _, plans, findings = plan_recipe(path, overrides)
    assert findings.problems == [] and findings.missing == {}
    return {p.stage.name: (p.state, p.reasons) for p in plans}


def test_plan_names_pending_done_and_why_stale(tmp_path, monkeypatch):
    path = curate_recipe(tmp_path)
    assert {name: state for name, (state, _) in states(path).items()} == {"long-f": "pending", "short-f": "pending", "mix": "pending"}
    run_recipe(path, log=lambda _: None)
    assert all(state == "done" and not why for state, why in states(path).values())
    # a config change names the field and both values
    state, why = states(path, ["stages.long-f.max_tokens=7"])["long-f"]
    assert state == "stale" and why == ["config changed: max_tokens: None -> 7"]
    # a changed input names the input
    write_data(tmp_path / "short.jsonl", 9, "short ")
    assert states(path)["short-f"] == ("stale", [f"input data changed ({tmp_path / 'short.jsonl'})"])
    run_recipe(path, log=lambda _: None)
    # a new version of a stage's code
    monkeypatch.setitem(STAGE_CODE_VERSIONS, "mix", STAGE_CODE_VERSIONS["mix"] + 1)
    assert states(path)["mix"][1] == [f"stage code version changed ({STAGE_CODE_VERSIONS['mix'] - 1} -> {STAGE_CODE_VERSIONS['mix']})"]
    assert [o.ran for o in run_recipe(path, log=lambda _: None)] == [False, False, True]


def test_done_stage_downstream_of_a_stale_one_is_rechecked(tmp_path):
    path = curate_recipe(tmp_path)
    run_recipe(path, log=lambda _: None)
    _, plans, findings = plan_recipe(path, ["stages.long-f.max_tokens=7"])
    lines = describe_plan(plans, tmp_path / "run", findings)
    mix = next(p for p in plans if p.stage.name == "mix")
    assert mix.state == "done" and mix.waits_on == ["long-f"] and mix.may_run
    assert any("re-checked after long-f" in line for line in lines) and lines[-1] == "preflight: ok"


# A stage kind that uses hardware, with both hooks, registered as a row of STAGE_KINDS.
class GpuStageConfig(StrictModel):
    out_dir: Path = Field(json_schema_extra=NOT_HASHED)
    tp: int = 1
    resources: Resources = Field(default_factory=Resources, json_schema_extra=NOT_HASHED)


def placement(cfg: GpuStageConfig) -> Placement:
    return Placement(processes=1, gpus=cfg.resources.cpu_processes, tensor_parallel=cfg.tp, note="fake engine")


def preflight(cfg: GpuStageConfig) -> None:
    if cfg.tp == 3:
        raise MicotaError("tp: 3 does not divide the GPUs. Set tp: 1 or 2.")


RAN: list[str] = []


def run(cfg: GpuStageConfig) -> Manifest:
    RAN.append(cfg.out_dir.name)
    return run_stage("gpu-toy", cfg, cfg.out_dir, {}, lambda out: StageResult())


@pytest.fixture
def gpu_kind(monkeypatch):
    row = recipe_module.StageKind(__name__, "GpuStageConfig", "")
    monkeypatch.setitem(recipe_module.STAGE_KINDS, "gpu-toy", row)
    RAN.clear()


def gpu_recipe(tmp_path: Path, stages: dict, **top) -> Path:
    path = tmp_path / "gpu.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), **top, "stages": stages}))
    return path


def test_recipe_resources_reach_every_stage_and_a_stage_overrides_them(tmp_path, gpu_kind):
    path = gpu_recipe(tmp_path, {"a": {"kind": "gpu-toy"}, "b": {"kind": "gpu-toy", "resources": {"cpu_processes": 3}}},
                      resources={"gpus": 0, "cpu_processes": 2})
    _, plans, _ = plan_recipe(path)
    assert [p.stage.config.resources for p in plans] == [Resources(gpus=0, cpu_processes=2), Resources(gpus=0, cpu_processes=3)]
    assert plans[1].placement.describe() == "1 process, 3 GPUs, fake engine"


def test_preflight_fails_before_any_stage_runs_naming_stage_value_and_fix(tmp_path, gpu_kind):
    path = gpu_recipe(tmp_path, {"a": {"kind": "gpu-toy"}, "b": {"kind": "gpu-toy", "tp": 3},
                                 "c": {"kind": "gpu-toy", "resources": {"gpus": 64}}})
    with pytest.raises(MicotaError) as err:
        run_recipe(path, log=lambda _: None)
    message = str(err.value)
    assert "nothing has run" in message and RAN == []
    assert "stage 'b' (gpu-toy): tp: 3 does not divide the GPUs. Set tp: 1 or 2." in message
    assert "stage 'c' (gpu-toy): resources.gpus: 64 asked, 0 visible" in message and "gpus: auto" in message
    assert not (tmp_path / "run" / "a").exists()


def test_launchers_are_refused_and_one_process_is_not():
    refuse_launcher({})
    refuse_launcher({"WORLD_SIZE": "1"})
    for env in ({"WORLD_SIZE": "8", "RANK": "3"}, {"LOCAL_RANK": "0"}, {"WORLD_SIZE": "2"}):
        with pytest.raises(MicotaError, match="without accelerate launch / torchrun"):
            refuse_launcher(env)


def micota(*args: str, **env: str) -> subprocess.CompletedProcess:
    base = {"PYTHONPATH": str(ROOT / "src"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "micota", *args], capture_output=True, text=True, env={**base, **env}, timeout=300)


def test_cli_run_under_a_launcher_stops_with_how_to_run(tmp_path):
    result = micota("run", str(curate_recipe(tmp_path)), WORLD_SIZE="2", RANK="0", LOCAL_RANK="0")
    assert result.returncode == 2 and "micota run recipes/qwen2.5/micota-3b.yaml" in result.stderr
    assert not (tmp_path / "run").exists()


def test_paper_recipe_dry_run_plans_every_stage_offline(tmp_path, shared_data):
    paper = str(ROOT / "recipes" / "qwen2.5" / "micota-3b.yaml")
    # No network here: nothing may download. HF_HUB_OFFLINE stays unset, or evaluate's preflight
    # (rightly) asks for the hub models in the local cache.
    offline = {"HF_HUB_OFFLINE": "0", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = micota("run", paper, "--dry-run", "--run-dir", str(tmp_path / "r"), MICOTA_DATA_DIR=str(shared_data), **offline)
    stages = {s.name: s.kind for s in load_recipe(paper)[1]}  # the paper recipe's stages (recipes/micota/r1-3b.yaml)
    evaluates = [name for name, kind in stages.items() if kind == "evaluate"]
    rows = [line for line in result.stdout.splitlines() if line[:4].strip().rstrip(".").isdigit()]
    assert len(rows) == len(stages) and all(" pending " in row for row in rows), result.stdout + result.stderr
    # On this machine the run could not start: no GPU for the TP-2 engines, no vLLM, no DeepSpeed (exit 2).
    assert result.returncode == 2 and "preflight found problems:" in result.stdout
    assert "no GPU is visible" in result.stdout and "MICOTA_DATA_DIR" not in result.stdout  # benchmark data was found
    # Planned for an 8-GPU node: every stage placed on GPUs, only the GPU packages left to install (exit 0).
    result = micota("run", paper, "--dry-run", "--gpus", "8", "--run-dir", str(tmp_path / "r"), MICOTA_DATA_DIR=str(shared_data), **offline)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "preflight found problems" not in result.stdout and "planned for 8 GPUs" in result.stdout
    missing = result.stdout.split("install them where the run will go):\n")[1].splitlines()
    assert sorted(line.split()[2] for line in missing) == ["deepspeed", "vllm==0.32.0"]
    teacher = next(row for row in result.stdout.splitlines() if " teacher-data " in row)
    assert "8 GPUs, TP 2 x DP 4, engine vllm" in teacher
    assert not (tmp_path / "r").exists()  # a plan writes nothing
    # --gpus only plans: a real run refuses it
    result = micota("run", paper, "--gpus", "8", "--run-dir", str(tmp_path / "r"))
    assert result.returncode == 2 and "only goes with --dry-run" in result.stderr
    # without benchmark data the plan still prints, and the preflight names the stage and the fix (exit 2)
    result = micota("run", paper, "--dry-run", "--run-dir", str(tmp_path / "r"), MICOTA_DATA_DIR="", **offline)
    assert result.returncode == 2 and f"{len(stages)} pending" in result.stdout
    assert f"stage '{evaluates[0]}' (evaluate):" in result.stdout and "MICOTA_DATA_DIR" in result.stdout
