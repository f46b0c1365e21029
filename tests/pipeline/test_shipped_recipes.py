"""Every shipped recipe loads, validates and plans (torchtune's rule: no YAML ships untested)."""

from __future__ import annotations

from pathlib import Path

import pytest

from micota.pipeline.recipe import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[2] / "recipes").rglob("*.yaml"))


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
