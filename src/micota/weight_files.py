"""Cheap integrity checks of a model folder's weight files, made before anything loads them.

A safetensors file is an 8-byte little-endian header length, a JSON header (per tensor:
dtype, shape, ``data_offsets`` into the data area) and the data area. A file cut short by an
interrupted download or copy, a header whose sizes do not add up, or garbage bytes are all
visible from the header and the file size alone, so :func:`check_weight_files` reads only
the headers (a few KB to MB per shard) and stat()s the files. The rules are those of the
safetensors loader (safetensors/src/tensor.rs, ``Metadata::validate``: offsets contiguous from
0, each span = numel x dtype size, the last offset = the data area's length), checked here
so the error names the file and says how much is missing, instead of safetensors'
"incomplete metadata, file not fully covered" hours into a run.

Not detectable this way: flipped bits inside tensor data whose header is intact (that needs
a checksum of the whole file, which no HF folder ships).
"""

from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path
from typing import Any

from micota.errors import MicotaError

INDEX_NAMES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
MAX_HEADER_BYTES = 100_000_000  # safetensors' own limit (MAX_HEADER_SIZE in safetensors/src/tensor.rs)
# bits per element of safetensors dtypes; an unknown (newer) dtype skips the span-size rule only
DTYPE_BITS = {
    "BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16, "F16": 16,
    "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64, "C64": 64, "F4": 4,
    "F6_E2M3": 6, "F6_E3M2": 6,
}  # fmt: skip
_FIX = "Re-download or re-save the model (save_pretrained); an interrupted download or copy leaves files like this."


def safetensors_header(path: str | Path) -> tuple[dict[str, Any], int]:
    """``(header, data_start)`` of a safetensors file, after checking the header against the file size.

    ``header`` maps tensor names to ``{"dtype", "shape", "data_offsets"}`` (``__metadata__`` removed);
    ``data_start`` is the absolute offset of the data area. Any inconsistency is a MicotaError naming
    the file, the tensor and the numbers.
    """
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise MicotaError(f"{path}: not a safetensors file: {size} bytes, too short for the 8-byte header length. {_FIX}")
        (length,) = struct.unpack("<Q", head)
        if length > MAX_HEADER_BYTES or 8 + length > size:
            raise MicotaError(f"{path}: not a safetensors file (garbage or cut inside the header): the header length field "
                              f"says {length} bytes, the file has {size}. {_FIX}")
        raw = handle.read(length)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MicotaError(f"{path}: the safetensors header is not valid JSON ({exc}); the file is corrupt. {_FIX}") from None
    if not isinstance(header, dict):
        raise MicotaError(f"{path}: the safetensors header is a JSON {type(header).__name__}, not an object; "
                          f"corrupt file. {_FIX}")
    header.pop("__metadata__", None)
    _check_spans(path, header, size - 8 - length)
    return header, 8 + length


def _check_spans(path: Path, header: dict[str, Any], data_size: int) -> None:
    """Each tensor's span matches its shape and dtype; spans tile the data area exactly."""
    spans = []
    for name, entry in header.items():
        try:
            dtype, shape, (start, end) = entry["dtype"], [int(d) for d in entry["shape"]], entry["data_offsets"]
            start, end = int(start), int(end)
            if not isinstance(dtype, str):
                raise TypeError(dtype)
        except (TypeError, KeyError, ValueError):
            raise MicotaError(f"{path}: tensor {name!r} has a malformed header entry {entry!r:.120}; "
                              f"corrupt file. {_FIX}") from None
        numel = 1
        for dim in shape:
            numel *= dim
        bits = DTYPE_BITS.get(dtype)
        if min(shape, default=0) < 0 or start > end or (bits is not None and numel * bits != (end - start) * 8):
            raise MicotaError(f"{path}: the header lies about tensor {name!r}: shape {shape} of {dtype} needs "
                              f"{numel * (bits or 0) // 8} bytes, its data_offsets [{start}, {end}] span {end - start}. {_FIX}")
        spans.append((start, end, name))
    position = 0
    for start, end, name in sorted(spans):
        if start != position:
            raise MicotaError(f"{path}: corrupt header: tensor {name!r} starts at data byte {start}, the previous tensor ends "
                              f"at {position} (safetensors data must be contiguous). {_FIX}")
        position = end
    if position > data_size:
        raise MicotaError(f"{path}: truncated: the header says the tensor data is {position} bytes, the file holds "
                          f"{data_size} ({position - data_size} bytes missing). {_FIX}")
    if position < data_size:
        raise MicotaError(f"{path}: {data_size - position} unexpected bytes after the last tensor's data (the header "
                          f"accounts for {position}); not a valid safetensors file. {_FIX}")


def check_weight_files(folder: str | Path, *, field: str) -> None:
    """Check every weight file of a local model folder; a MicotaError names ``field``, the file and the fix.

    safetensors: header and sizes (:func:`safetensors_header`); an index: every shard it names
    exists and holds the tensors listed for it; ``*.bin``: a zip archive (torch.save's format
    since torch 1.6) must have its central directory, which a truncated copy lacks.
    """
    folder = Path(folder)
    headers: dict[str, dict[str, Any]] = {}
    try:
        for path in sorted(folder.glob("*.safetensors")):
            headers[path.name] = safetensors_header(path)[0]
        for path in sorted(folder.glob("*.bin")):
            _check_zip(path)
        for name in INDEX_NAMES:
            if (folder / name).is_file():
                _check_index(folder / name, headers)
    except MicotaError as exc:
        raise MicotaError(f"{field}: {exc}") from None


def _check_zip(path: Path) -> None:
    with path.open("rb") as handle:
        if handle.read(2) != b"PK":  # a legacy (pre-zip) torch pickle: nothing cheap to check
            return
    try:
        with zipfile.ZipFile(path):
            pass
    except zipfile.BadZipFile as exc:
        raise MicotaError(f"{path}: corrupt or truncated checkpoint ({exc}). {_FIX}") from None


def _check_index(index: Path, headers: dict[str, dict[str, Any]]) -> None:
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        by_shard: dict[str, list[str]] = {}
        for tensor, shard in weight_map.items():
            by_shard.setdefault(shard, []).append(tensor)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise MicotaError(f"{index}: not a valid shard index ({type(exc).__name__}: {exc}). {_FIX}") from None
    for shard, tensors in sorted(by_shard.items()):
        if not (index.parent / shard).is_file():
            raise MicotaError(f"{index}: names shard {shard!r} for {len(tensors)} tensors, but {index.parent / shard} "
                              f"does not exist (an incomplete download?). {_FIX}")
        if shard in headers:
            missing = sorted(set(tensors) - headers[shard].keys())
            if missing:
                raise MicotaError(f"{index}: lists {len(missing)} tensors under {shard!r} that the file does not hold, "
                                  f"e.g. {missing[0]!r}. {_FIX}")
