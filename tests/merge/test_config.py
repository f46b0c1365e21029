"""Merge configs: mergekit YAML means the same merge as the native form."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from micota.errors import MicotaError
from micota.merge import load_merge_config
from micota.merge.run import layer_value


def write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


MERGEKIT = {
    "merge_method": "dare_ties",
    "base_model": "ta/base",
    "models": [
        {"model": "ta/base"},  # mergekit lists the base without parameters; it is not a task vector
        {"model": "ta/sft", "parameters": {"weight": 0.8, "density": [0.3, 0.7]}},
    ],
    "parameters": {"normalize": True, "rescale": False, "lambda": 0.9, "int8_mask": True},
    "dtype": "bfloat16",
}
NATIVE = {
    "method": "dare_ties",
    "base": "ta/base",
    "models": [{"model": "ta/sft", "weight": 0.8, "density": [0.3, 0.7]}],
    "normalize": True,
    "rescale": "none",
    "lambda": 0.9,
    "dtype": "bfloat16",
    "out_dtype": "bfloat16",
}


def test_mergekit_yaml_parses_to_the_native_merge(tmp_path):
    kit = load_merge_config(write(tmp_path / "kit.yaml", MERGEKIT), out_dir=tmp_path / "o", seed=4)
    native = load_merge_config(write(tmp_path / "native.yaml", NATIVE), out_dir=tmp_path / "o", seed=4)
    assert kit == native
    assert kit.lambda_ == 0.9 and kit.resolved_rescale() == "none" and kit.seed == 4


def test_mergekit_defaults_follow_the_method_row(tmp_path):
    data = {"merge_method": "ties", "base_model": "b", "models": [{"model": "m", "parameters": {"weight": 1, "density": 0.5}}]}
    cfg = load_merge_config(write(tmp_path / "kit.yaml", data), out_dir=tmp_path / "o")
    assert cfg.resolved_normalize() is True and cfg.resolved_rescale() == "none"
    dare = load_merge_config(write(tmp_path / "d.yaml", {**data, "merge_method": "dare_ties"}), out_dir=tmp_path / "o")
    assert dare.resolved_normalize() is False and dare.resolved_rescale() == "l1"


def test_unsupported_mergekit_features_fail_with_the_fix(tmp_path):
    shrink = {**MERGEKIT, "tokenizer_source": "union"}
    with pytest.raises(MicotaError, match="tokenizer_source"):
        load_merge_config(write(tmp_path / "a.yaml", shrink), out_dir=tmp_path / "o")
    with pytest.raises(MicotaError, match="slices"):
        load_merge_config(write(tmp_path / "b.yaml", {**MERGEKIT, "slices": []}), out_dir=tmp_path / "o")


def test_native_errors_name_field_and_fix(tmp_path):
    with pytest.raises(MicotaError, match=r"models\.0\.density.*\(0, 1\]"):
        load_merge_config(write(tmp_path / "a.yaml", {**NATIVE, "models": [{"model": "m", "density": 0}]}), out_dir="o")
    with pytest.raises(MicotaError, match="unknown merge method"):
        load_merge_config(write(tmp_path / "b.yaml", {**NATIVE, "method": "dare_tie"}), out_dir="o")
    with pytest.raises(MicotaError, match="OUT_DIR"):
        load_merge_config(write(tmp_path / "c.yaml", NATIVE))


def test_layer_lists_interpolate_from_first_to_last_layer():
    assert layer_value([0.2, 1.0], "model.layers.0.mlp.up_proj.weight", 5) == 0.2
    assert layer_value([0.2, 1.0], "model.layers.4.mlp.up_proj.weight", 5) == 1.0
    assert layer_value([0.2, 1.0], "model.layers.2.mlp.up_proj.weight", 5) == pytest.approx(0.6)
    assert layer_value([0.2, 1.0], "model.embed_tokens.weight", 5) == 0.2
    assert layer_value([0.2, 1.0], "model.norm.weight", 5) == 1.0
    assert layer_value(0.5, "model.norm.weight", 5) == 0.5


def test_cli_merges_a_mergekit_file(tmp_path, tiny_models):
    from typer.testing import CliRunner

    from micota.cli import app

    kit = {
        "merge_method": "ties",
        "base_model": str(tiny_models["base"]),
        "models": [{"model": str(tiny_models["ft"]), "parameters": {"weight": 1.0, "density": 0.5}}],
        "dtype": "float32",
    }
    result = CliRunner().invoke(app, ["merge", str(write(tmp_path / "kit.yaml", kit)), str(tmp_path / "out"), "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "config.json").is_file()
    assert load_merge_config(tmp_path / "out" / "merge_config.yaml").seed == 3
    bad = CliRunner().invoke(app, ["merge", str(write(tmp_path / "bad.yaml", {**kit, "merge_method": "slerp"})), str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "unknown merge method" in bad.output
