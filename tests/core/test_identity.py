"""A stage's identity holds input names, content hashes and its code version, never a path."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import pytest
from pydantic import Field

from micota.config import NOT_HASHED, StrictModel
from micota.identity import stage_identity
from micota.manifest import read_manifest
from micota.stage import STAGE_CODE_VERSIONS, StageResult, run_stage


class Source(StrictModel):
    data: Path
    ratio: float = 1.0


class Cfg(StrictModel):
    out_dir: Path = Field(json_schema_extra=NOT_HASHED)
    sources: list[Source]
    models: dict[str, str]
    tokenizer: Optional[str] = None
    note: str = "cosine"


def make_run(root: Path) -> Path:
    """RUN/{gen/data.jsonl, lab/tokenizer/, sft/model/}"""
    (root / "gen").mkdir(parents=True)
    (root / "gen" / "data.jsonl").write_text('{"a": 1}\n')
    (root / "lab" / "tokenizer").mkdir(parents=True)
    (root / "lab" / "tokenizer" / "tok.json").write_text("{}")
    (root / "sft" / "model").mkdir(parents=True)
    (root / "sft" / "model" / "w.bin").write_bytes(b"\x00\x01")
    return root


def config_in(root: Path) -> tuple[Cfg, dict[str, Path]]:
    cfg = Cfg(out_dir=root / "eval", sources=[Source(data=root / "gen" / "data.jsonl")],
              models={"student": str(root / "sft" / "model"), "hub": "Qwen/Qwen2.5-3B-Instruct"},
              tokenizer=str(root / "lab" / "tokenizer"))
    return cfg, {"data": root / "gen" / "data.jsonl", "model": root / "sft"}


def test_paths_at_any_depth_become_references_and_hub_ids_stay(tmp_path):
    cfg, inputs = config_in(make_run(tmp_path / "run"))
    identity = stage_identity(cfg, cfg.out_dir, inputs)
    assert identity.config == {
        "sources": [{"data": "<data>", "ratio": 1.0}],
        "models": {"student": "<model>/model", "hub": "Qwen/Qwen2.5-3B-Instruct"},  # inside an input folder
        "tokenizer": "RUN/lab/tokenizer",  # inside the run, no declared input: found and hashed
        "note": "cosine",
    }
    assert identity.inputs["RUN/lab/tokenizer"] == tmp_path / "run" / "lab" / "tokenizer"
    assert identity.refs == {"data": "RUN/gen/data.jsonl", "model": "RUN/sft", "RUN/lab/tokenizer": "RUN/lab/tokenizer"}


def test_same_stage_elsewhere_has_the_same_identity_and_other_values_do_not(tmp_path):
    a_cfg, a_inputs = config_in(make_run(tmp_path / "a"))
    b_cfg, b_inputs = config_in(make_run(tmp_path / "deep" / "b"))
    a = stage_identity(a_cfg, a_cfg.out_dir, a_inputs)
    assert a.config_sha256 == stage_identity(b_cfg, b_cfg.out_dir, b_inputs).config_sha256
    changed = b_cfg.model_copy(update={"note": "linear"})
    assert stage_identity(changed, b_cfg.out_dir, b_inputs).config_sha256 != a.config_sha256


def test_stage_run_copied_elsewhere_is_done_and_a_found_input_is_content_checked(tmp_path):
    calls: list[Path] = []

    def body(out: Path) -> StageResult:
        calls.append(out)
        (out / "r.txt").write_text("x")
        return StageResult()

    cfg, inputs = config_in(make_run(tmp_path / "a"))
    run_stage("toy", cfg, cfg.out_dir, inputs, body)
    manifest = read_manifest(cfg.out_dir)
    assert set(manifest.inputs) == {"data", "model", "RUN/lab/tokenizer"} and manifest.code_version == 1
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    b_cfg, b_inputs = config_in(tmp_path / "b")
    run_stage("toy", b_cfg, b_cfg.out_dir, b_inputs, body)
    assert calls == [cfg.out_dir]  # up to date where it was copied to
    (tmp_path / "b" / "lab" / "tokenizer" / "tok.json").write_text('{"changed": 1}')
    run_stage("toy", b_cfg, b_cfg.out_dir, b_inputs, body)
    assert calls == [cfg.out_dir, b_cfg.out_dir]  # the tokenizer is an input although no stage declared it


def test_new_stage_code_version_reruns_and_is_recorded(tmp_path, monkeypatch):
    cfg, inputs = config_in(make_run(tmp_path / "a"))
    calls: list[int] = []
    body = lambda out: calls.append(1) or StageResult()  # noqa: E731
    run_stage("filter", cfg, cfg.out_dir, inputs, body)
    run_stage("filter", cfg, cfg.out_dir, inputs, body)
    monkeypatch.setitem(STAGE_CODE_VERSIONS, "filter", STAGE_CODE_VERSIONS["filter"] + 1)
    run_stage("filter", cfg, cfg.out_dir, inputs, body)
    assert len(calls) == 2 and read_manifest(cfg.out_dir).code_version == STAGE_CODE_VERSIONS["filter"]


def test_partial_output_is_not_resumed_on_a_changed_input(tmp_path):
    """A killed resumable stage keeps its partial output only for the same config AND inputs."""
    cfg, inputs = config_in(make_run(tmp_path / "a"))

    def crash(out: Path) -> StageResult:
        (out / "half.txt").write_text("from the old model")
        raise RuntimeError("killed")

    seen: list[bool] = []
    with pytest.raises(RuntimeError):
        run_stage("toy", cfg, cfg.out_dir, inputs, crash, resumable=True)
    (tmp_path / "a" / "sft" / "model" / "w.bin").write_bytes(b"retrained")
    run_stage("toy", cfg, cfg.out_dir, inputs, lambda out: seen.append((out / "half.txt").exists()) or StageResult(), resumable=True)
    assert seen == [False]


def test_a_folder_the_stage_reads_declared_files_from_is_not_hashed_whole(tmp_path):
    """A report reads results.json inside an evaluate folder: the folder's scratch is not an input."""
    root = make_run(tmp_path / "run")
    (root / "gen" / "shards").mkdir()
    cfg = Cfg(out_dir=root / "eval", sources=[Source(data=root / "gen")], models={})
    identity = stage_identity(cfg, cfg.out_dir, {"results": root / "gen" / "data.jsonl"})
    assert identity.config["sources"] == [{"data": "RUN/gen", "ratio": 1.0}] and set(identity.inputs) == {"results"}
