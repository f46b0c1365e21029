from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from micota.errors import MicotaError
from micota.pipeline.recipe import load_recipe
from micota.pipeline.run import run_recipe


def write_recipe(tmp_path: Path, stages: dict, **top) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), **top, "stages": stages}))
    return path


def mini_stages(tiny_model: Path, prompts: Path) -> dict:
    return {
        "student-sft": {"kind": "sft", "model": str(tiny_model), "data": "@gen"},
        "gen": {"kind": "generate", "prompts": str(prompts), "progress": False,
                "engine": {"model": str(tiny_model), "max_new_tokens": 4, "batch_size": 4}},
    }


@pytest.fixture
def prompts(tmp_path) -> Path:
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"problem": f"What is {i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(4)))
    return path


def test_references_order_stages_and_defaults_layer(tiny_model, prompts, tmp_path):
    path = write_recipe(tmp_path, mini_stages(tiny_model, prompts), defaults={"sft": {"epochs": 3, "learning_rate": 0.01}})
    recipe, stages = load_recipe(path, ["stages.student-sft.epochs=1"])
    assert [s.name for s in stages] == ["gen", "student-sft"]
    sft = stages[1].config
    assert sft.data == [tmp_path / "run" / "gen" / "data.jsonl"]
    assert (sft.epochs, sft.learning_rate) == (1, 0.01)  # override > defaults > class default
    assert sft.out_dir == tmp_path / "run" / "student-sft"
    _, moved = load_recipe(path, run_dir=tmp_path / "elsewhere")
    assert moved[0].config.out_dir == tmp_path / "elsewhere" / "gen"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"student-sft": {"kind": "sft", "model": "@gen", "data": "@genn"}}, r"reference '@genn' names no stage. Did you mean @gen\?"),
        ({"x": {"kind": "sftt"}}, r"stages.x.kind: 'sftt' is not a stage kind"),
        ({"gen": {"kind": "generate", "prompts": "p", "engine": {"model": "m"}, "temprature": 0}}, r"(?s)stages.gen \(kind: generate\).*temprature: unknown key"),
        ({"a": {"kind": "mix", "sources": [{"data": "@b", "ratio": 1}, {"data": "@b", "ratio": 1}]},
          "b": {"kind": "mix", "sources": [{"data": "@a", "ratio": 1}, {"data": "@a", "ratio": 1}]}}, "cycle: a -> b -> a"),
    ],
)
def test_bad_recipes_fail_with_the_stage_and_field(tiny_model, prompts, tmp_path, change, message):
    stages = {**mini_stages(tiny_model, prompts), **change}
    with pytest.raises(MicotaError, match=message):
        load_recipe(write_recipe(tmp_path, stages))


def test_rerun_skips_and_upstream_change_reruns_downstream(tiny_model, prompts, tmp_path):
    path = write_recipe(tmp_path, mini_stages(tiny_model, prompts), defaults={"sft": {"global_batch_size": 4, "micro_batch_size": 4, "max_steps": 1, "progress": False}})
    log: list[str] = []
    assert [o.ran for o in run_recipe(path, log=log.append)] == [True, True]
    assert [o.ran for o in run_recipe(path, log=log.append)] == [False, False]
    # a config change upstream re-runs the upstream stage and, since its data changed, the downstream one
    assert [o.ran for o in run_recipe(path, ["stages.gen.engine.max_new_tokens=6"], log=log.append)] == [True, True]
    # a downstream-only change leaves upstream alone
    assert [o.ran for o in run_recipe(path, ["stages.gen.engine.max_new_tokens=6", "stages.student-sft.seed=1"], log=log.append)] == [False, True]
    assert any("up to date" in line for line in log)


def test_extends_layers_a_recipe_on_another(tiny_model, prompts, tmp_path):
    write_recipe(tmp_path, mini_stages(tiny_model, prompts), defaults={"sft": {"epochs": 3, "learning_rate": 0.01}})
    child = tmp_path / "child.yaml"
    child.write_text(yaml.safe_dump({"extends": "recipe.yaml", "defaults": {"sft": {"epochs": 1}},
                                     "stages": {"gen": {"engine": {"max_new_tokens": 2}}}}))
    _, stages = load_recipe(child)
    gen, sft = stages
    assert gen.config.engine.max_new_tokens == 2 and gen.config.engine.batch_size == 4  # nested keys merge
    assert (sft.config.epochs, sft.config.learning_rate) == (1, 0.01)


@pytest.mark.parametrize("ref", ["@gen/../../x.jsonl", "@gen/..", "@gen/a/../../student-sft/model", "@gen//etc/passwd"])
def test_reference_outside_its_stage_folder_is_an_error_naming_field_and_fix(tiny_model, prompts, tmp_path, ref):
    stages = mini_stages(tiny_model, prompts)
    stages["student-sft"]["data"] = ref
    with pytest.raises(MicotaError, match=r"stages.student-sft: reference .* points outside the folder of stage 'gen'.*@gen/sub/path"):
        load_recipe(write_recipe(tmp_path, stages))
