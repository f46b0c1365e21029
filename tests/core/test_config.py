from __future__ import annotations

from pathlib import Path
from typing import Literal

import pytest

from micota.config import StrictModel, config_sha256, load_config
from micota.errors import MicotaError


class Inner(StrictModel):
    lr: float = 1e-5
    scheduler: Literal["cosine", "linear"] = "cosine"


class Outer(StrictModel):
    name: str
    sft: Inner = Inner()


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    return path


def test_layers_defaults_yaml_then_overrides(tmp_path):
    path = write(tmp_path, "name: a\nsft:\n  lr: 2.0e-5\n")
    cfg = load_config(Outer, path, ["sft.scheduler=linear", "name=b"])
    assert (cfg.name, cfg.sft.lr, cfg.sft.scheduler) == ("b", 2e-5, "linear")


def test_unknown_key_names_path_and_suggests(tmp_path):
    path = write(tmp_path, "name: a\nsft:\n  lrr: 1\n")
    with pytest.raises(MicotaError) as err:
        load_config(Outer, path)
    msg = str(err.value)
    assert str(path) in msg and "sft.lrr" in msg and "Did you mean `lr`" in msg


def test_bad_literal_lists_allowed_values(tmp_path):
    path = write(tmp_path, "name: a\nsft:\n  scheduler: step\n")
    with pytest.raises(MicotaError) as err:
        load_config(Outer, path)
    msg = str(err.value)
    assert "sft.scheduler" in msg and "'step'" in msg and "cosine" in msg


def test_missing_field_and_yaml_syntax_error(tmp_path):
    with pytest.raises(MicotaError, match="name: required"):
        load_config(Outer, write(tmp_path, "sft: {}\n"))
    with pytest.raises(MicotaError, match=r"r.yaml:2:"):
        load_config(Outer, write(tmp_path, "name: a\n  bad: [\n"))


def test_config_hash_ignores_key_order_but_not_values():
    a = Outer(name="x", sft=Inner(lr=1.0))
    b = Outer.model_validate({"sft": {"lr": 1.0}, "name": "x"})
    c = Outer(name="x", sft=Inner(lr=2.0))
    assert config_sha256(a) == config_sha256(b) != config_sha256(c)


def test_override_indexes_into_lists():
    from micota.config import apply_overrides

    data = {"benchmarks": [{"name": "math500"}, {"name": "gsm8k"}]}
    out = apply_overrides(data, ["benchmarks.1.limit=50", "benchmarks.0.name=aime24"])
    assert out == {"benchmarks": [{"name": "aime24"}, {"name": "gsm8k", "limit": 50}]}
    assert data["benchmarks"][1] == {"name": "gsm8k"}  # the input is not changed
    with pytest.raises(MicotaError, match="not an index of a list of 2 items"):
        apply_overrides(data, ["benchmarks.2.limit=1"])


def test_fields_marked_not_hashed_stay_out_of_the_hash_at_any_depth():
    from pydantic import Field

    from micota.config import NOT_HASHED, StrictModel

    class Engine(StrictModel):
        temperature: float = 0.0
        batch_size: int = Field(8, json_schema_extra=NOT_HASHED)

    class Stage(StrictModel):
        out_dir: str = Field(json_schema_extra=NOT_HASHED)
        engines: list[Engine]

    base = config_sha256(Stage(out_dir="a", engines=[Engine()]))
    assert config_sha256(Stage(out_dir="elsewhere", engines=[Engine(batch_size=64)])) == base
    assert config_sha256(Stage(out_dir="a", engines=[Engine(temperature=0.6)])) != base
