"""Every shipped recipe loads, validates and plans (torchtune's rule: no YAML ships untested)."""

from __future__ import annotations

from pathlib import Path

import pytest

from micota.pipeline.recipe import load_recipe

RECIPE_DIR = Path(__file__).resolve().parents[2] / "recipes"
RECIPES = sorted(RECIPE_DIR.rglob("*.yaml"))


def test_recipes_exist():
    names = {p.relative_to(p.parents[1]).as_posix() for p in RECIPES}
    assert {"lab/micota.yaml", "lab/tiny.yaml", "qwen2.5/micota-3b.yaml"} <= names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.relative_to(p.parents[1]).as_posix())
def test_recipe_validates_and_plans(path, tmp_path):
    recipe, stages = load_recipe(path, run_dir=tmp_path / "run")
    assert stages, "a recipe without stages"
    names = [s.name for s in stages]
    for position, stage in enumerate(stages):
        assert all(names.index(dep) < position for dep in stage.depends_on)
        assert Path(stage.config.out_dir) == tmp_path / "run" / stage.name


def test_defaults_layer_under_a_stage_key_by_key(tmp_path):
    """A stage that names only its model keeps the sampling its kind's defaults give (nested blocks merge)."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "defaults:\n  generate:\n    prompts: p.jsonl\n    engine: {temperature: 0.0, max_new_tokens: 77, max_model_len: 99}\n"
        "stages:\n  gen: {kind: generate, engine: {model: m, max_new_tokens: 5}}\n")
    _, (stage,) = load_recipe(recipe, run_dir=tmp_path / "run")
    engine = stage.config.engine
    assert (engine.model, engine.max_new_tokens, engine.max_model_len) == ("m", 5, 99)


def test_paper_recipes_share_one_run_folder_per_experiment():
    """Students of one teacher reuse its data: same run folder, same data stages, distinct student stages."""
    folders = {}
    for path in sorted((RECIPE_DIR / "micota").glob("r1-*.yaml")):
        recipe, stages = load_recipe(path)
        folders[path.name] = (recipe.run_dir, {s.name: s.config for s in stages})
    run_dirs = {run_dir for run_dir, _ in folders.values()}
    assert run_dirs == {Path("runs/micota/r1")}
    configs = [stages for _, stages in folders.values()]
    for name in ("teacher-data", "ta-sft", "ta-merged", "micota-data", "mix-long"):
        assert all(c[name] == configs[0][name] for c in configs), name  # identical config: generated once


PAPER_RECIPES = sorted(p for folder in ("micota", "mix-distill", "qwen2.5") for p in (RECIPE_DIR / folder).glob("*.yaml"))


@pytest.mark.parametrize("path", PAPER_RECIPES, ids=lambda p: p.relative_to(p.parents[1]).as_posix())
def test_paper_recipe_plans_offline_for_an_8_gpu_node(path, tmp_path, monkeypatch, shared_data):
    """`micota run RECIPE --dry-run --gpus 8` on this CPU machine: every stage planned and placed on
    the 8 GPUs, nothing downloaded, and preflight finds nothing wrong but the GPU packages (vLLM,
    DeepSpeed) this machine lacks."""
    from micota.pipeline.run import plan_recipe

    monkeypatch.setenv("MICOTA_DATA_DIR", str(shared_data / "benchmarks"))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.chdir(RECIPE_DIR.parent)  # recipe paths (the Mix-Distillation prompts) are relative to the repository
    _, plans, findings = plan_recipe(path, run_dir=tmp_path / "run", assumed_gpus=8)
    assert [p.state for p in plans] == ["pending"] * len(plans)
    assert not findings.problems, "\n".join(findings.problems)
    assert set(findings.missing) <= {"vllm==0.32.0", "deepspeed"}
    used = [p.placement.gpus for p in plans if p.stage.kind in ("generate", "sft", "evaluate")]
    assert used and all(0 < gpus <= 8 for gpus in used)
    assert not (tmp_path / "run").exists()  # planning writes nothing
