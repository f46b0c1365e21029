from __future__ import annotations

from pathlib import Path

import pytest

from micota.config import StrictModel
from micota.errors import MicotaError
from micota.manifest import read_manifest
from micota.stage import StageResult, run_stage


class Cfg(StrictModel):
    out_dir: Path
    factor: int = 2


def make_body(calls: list[int], factor: int):
    def body(out: Path) -> StageResult:
        calls.append(1)
        (out / "out.txt").write_text(str(factor))
        return StageResult(outputs={"out": "out.txt"}, counts={"n": factor})

    return body


def test_runs_once_then_skips_until_config_or_input_changes(tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("a")
    calls: list[int] = []
    cfg = Cfg(out_dir=tmp_path / "s")
    run_stage("s", cfg, cfg.out_dir, {"src": src}, make_body(calls, 2))
    run_stage("s", cfg, cfg.out_dir, {"src": src}, make_body(calls, 2))
    assert len(calls) == 1
    # out_dir is not part of the hash, factor is
    cfg3 = Cfg(out_dir=tmp_path / "s", factor=3)
    run_stage("s", cfg3, cfg3.out_dir, {"src": src}, make_body(calls, 3))
    assert len(calls) == 2 and read_manifest(cfg.out_dir).counts == {"n": 3}
    src.write_text("b")
    run_stage("s", cfg3, cfg3.out_dir, {"src": src}, make_body(calls, 3))
    assert len(calls) == 3


def test_interrupted_body_leaves_no_manifest_and_stale_files_are_cleared(tmp_path):
    cfg = Cfg(out_dir=tmp_path / "s")

    def crash(out: Path) -> StageResult:
        (out / "half.txt").write_text("x")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage("s", cfg, cfg.out_dir, {}, crash)
    assert read_manifest(cfg.out_dir) is None
    run_stage("s", cfg, cfg.out_dir, {}, make_body([], 2))
    assert not (cfg.out_dir / "half.txt").exists()


def test_resumable_stage_keeps_partial_output_of_same_config(tmp_path):
    cfg = Cfg(out_dir=tmp_path / "s")
    seen: list[bool] = []

    def crash(out: Path) -> StageResult:
        (out / "half.txt").write_text("x")
        raise RuntimeError("killed")

    def resume(out: Path) -> StageResult:
        seen.append((out / "half.txt").exists())
        return StageResult()

    with pytest.raises(RuntimeError):
        run_stage("s", cfg, cfg.out_dir, {}, crash, resumable=True)
    run_stage("s", cfg, cfg.out_dir, {}, resume, resumable=True)
    assert seen == [True]


def test_missing_input_is_a_clear_error(tmp_path):
    cfg = Cfg(out_dir=tmp_path / "s")
    with pytest.raises(MicotaError, match="input not found: src="):
        run_stage("s", cfg, cfg.out_dir, {"src": tmp_path / "nope"}, make_body([], 2))


def test_resumed_stage_drops_temp_files_of_the_killed_writer(tmp_path):
    from micota.jsonl import temp_path

    cfg = Cfg(out_dir=tmp_path / "s")
    left: list[str] = []

    def crash(out: Path) -> StageResult:
        temp_path(out / "results.json").write_text("{half")  # killed between write and rename
        (out / ".keep.tmp").write_text("not ours")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run_stage("s", cfg, cfg.out_dir, {}, crash, resumable=True)
    run_stage("s", cfg, cfg.out_dir, {}, lambda out: left.extend(sorted(p.name for p in out.glob("*.tmp"))) or StageResult(), resumable=True)
    assert left == [".keep.tmp"]


def test_preserved_subfolders_survive_a_config_change_and_the_rest_is_cleared(tmp_path):
    calls: list[int] = []
    cfg = Cfg(out_dir=tmp_path / "s")

    def body(out: Path) -> StageResult:
        calls.append(1)
        (out / "kept").mkdir(exist_ok=True)
        (out / "kept" / f"made-{len(calls)}.txt").write_text("content-addressed")
        (out / "stale.txt").write_text("one run's output")
        return StageResult()

    run_stage("s", cfg, cfg.out_dir, {}, body, preserve=("kept",))
    (cfg.out_dir / "stale.txt").write_text("left over")
    run_stage("s", Cfg(out_dir=cfg.out_dir, factor=3), cfg.out_dir, {}, lambda out: StageResult(), preserve=("kept",))
    assert (cfg.out_dir / "kept" / "made-1.txt").is_file() and not (cfg.out_dir / "stale.txt").exists()
    run_stage("s", Cfg(out_dir=cfg.out_dir, factor=4), cfg.out_dir, {}, lambda out: StageResult())
    assert not (cfg.out_dir / "kept").exists()  # without preserve the folder is cleared as before
