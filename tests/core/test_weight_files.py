"""The cheap weight-file checks agree with the safetensors loader and name the file and the numbers."""

from __future__ import annotations

import json
import os
import random
import struct
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from micota.errors import MicotaError
from micota.weight_files import check_weight_files, safetensors_header


def _tensors() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {"a.weight": torch.randn(4, 8, generator=gen), "b.bias": torch.randn(8, generator=gen).to(torch.bfloat16),
            "c.scalar": torch.tensor(3, dtype=torch.int64), "d.empty": torch.zeros(0, 5), "e.mask": torch.ones(3, dtype=torch.bool)}


@pytest.fixture()
def good(tmp_path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(_tensors(), str(path), metadata={"format": "pt"})
    return path


def _loads(path: Path) -> bool:
    try:
        with safe_open(str(path), framework="pt") as handle:
            for name in handle.keys():
                handle.get_tensor(name)
        return True
    except (SafetensorError, OSError, RuntimeError):
        return False


def _ours(path: Path) -> bool:
    try:
        safetensors_header(path)
        return True
    except MicotaError:
        return False


def test_a_good_file_passes_with_its_table(good):
    header, start = safetensors_header(good)
    assert sorted(header) == sorted(_tensors()) and start > 8
    assert header["a.weight"]["shape"] == [4, 8] and header["c.scalar"]["shape"] == []


def test_every_cut_is_caught_like_safetensors_does(good, tmp_path):
    data = good.read_bytes()
    cut = tmp_path / "cut.safetensors"
    for size in sorted({0, 4, 8, 9, len(data) // 2, len(data) - 1, *random.Random(0).sample(range(len(data)), 40)}):
        cut.write_bytes(data[:size])
        assert not _loads(cut) and not _ours(cut), size


def test_cut_file_error_names_file_and_missing_bytes(good):
    data = good.read_bytes()
    good.write_bytes(data[: len(data) - 10])
    with pytest.raises(MicotaError) as err:
        safetensors_header(good)
    assert str(good) in str(err.value) and "truncated" in str(err.value) and "10 bytes missing" in str(err.value)
    assert "Re-download or re-save" in str(err.value)


def _rewrite_header(path: Path, change) -> None:
    data = path.read_bytes()
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    change(header)
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data[8 + length :])


@pytest.mark.parametrize("change, words", [
    (lambda h: h["a.weight"].update(shape=[8, 8]), ["lies about tensor 'a.weight'", "shape [8, 8] of F32 needs 256 bytes", "span 128"]),
    (lambda h: h["e.mask"].update(data_offsets=[h["e.mask"]["data_offsets"][0], h["e.mask"]["data_offsets"][1] + 4]),
     ["lies about tensor 'e.mask'"]),
    (lambda h: [h[k].update(data_offsets=[o + 4 for o in h[k]["data_offsets"]]) for k in h if k != "__metadata__"],
     ["starts at data byte 4", "contiguous"]),
    (lambda h: h["a.weight"].update(dtype=3), ["malformed header entry"]),
])  # fmt: skip
def test_a_header_that_lies_is_caught_like_safetensors_does(good, change, words):
    _rewrite_header(good, change)
    assert not _loads(good)
    with pytest.raises(MicotaError) as err:
        safetensors_header(good)
    assert str(good) in str(err.value) and all(w in str(err.value) for w in words), str(err.value)


def test_garbage_and_trailing_bytes(good, tmp_path):
    garbage = tmp_path / "garbage.safetensors"
    for seed in range(20):
        garbage.write_bytes(random.Random(seed).randbytes(good.stat().st_size))
        assert not _loads(garbage) and not _ours(garbage)
    with pytest.raises(MicotaError, match="not a safetensors file"):
        safetensors_header(garbage)
    good.write_bytes(good.read_bytes() + b"\0" * 16)
    assert not _loads(good)
    with pytest.raises(MicotaError, match="16 unexpected bytes after the last tensor"):
        safetensors_header(good)


def test_folder_check_names_the_field_and_catches_index_and_pickle_damage(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    tensors = _tensors()
    save_file({k: tensors[k] for k in ("a.weight", "b.bias")}, str(folder / "model-00001-of-00002.safetensors"))
    save_file({k: tensors[k] for k in ("c.scalar",)}, str(folder / "model-00002-of-00002.safetensors"))
    weight_map = {"a.weight": "model-00001-of-00002.safetensors", "b.bias": "model-00001-of-00002.safetensors",
                  "c.scalar": "model-00002-of-00002.safetensors"}
    index = folder / "model.safetensors.index.json"
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    check_weight_files(folder, field="sft.model")
    index.write_text(json.dumps({"metadata": {}, "weight_map": {**weight_map, "d.empty": "model-00002-of-00002.safetensors"}}))
    with pytest.raises(MicotaError, match=r"^sft.model: .*lists 1 tensors under 'model-00002-of-00002.safetensors'.*'d.empty'"):
        check_weight_files(folder, field="sft.model")
    index.write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    os.remove(folder / "model-00002-of-00002.safetensors")
    with pytest.raises(MicotaError, match="names shard 'model-00002-of-00002.safetensors' for 1 tensors, but .* does not exist"):
        check_weight_files(folder, field="sft.model")
    index.unlink()
    torch.save(tensors, folder / "pytorch_model.bin")
    check_weight_files(folder, field="m")
    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(MicotaError, match="pytorch_model.bin: corrupt or truncated checkpoint"):
        check_weight_files(folder, field="m")
