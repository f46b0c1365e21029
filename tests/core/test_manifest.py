from __future__ import annotations

from micota.manifest import Manifest, input_hashes, is_stage_done, read_manifest, sha256_path, write_manifest


def test_folder_hash_tracks_content_not_manifest(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    before = sha256_path(tmp_path)
    write_manifest(tmp_path, Manifest(stage="s", config_sha256="c"))
    assert sha256_path(tmp_path) == before
    (tmp_path / "a.txt").write_text("two")
    assert sha256_path(tmp_path) != before


def test_stage_done_only_with_same_config_and_inputs(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("{}\n")
    stage = tmp_path / "stage"
    inputs = input_hashes({"data": src})
    assert not is_stage_done(stage, "c1", inputs)
    write_manifest(stage, Manifest(stage="s", config_sha256="c1", inputs=inputs, counts={"n": 1}))
    assert read_manifest(stage).counts == {"n": 1}
    assert is_stage_done(stage, "c1", inputs)
    assert not is_stage_done(stage, "c2", inputs)
    src.write_text("{}\n{}\n")
    assert not is_stage_done(stage, "c1", input_hashes({"data": src}))
