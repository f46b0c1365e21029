"""Lazy safetensors reading and streaming writing, by rows, without mmap.

Reading uses ``os.preadv`` into fresh buffers instead of mapping the file: pages of a
mapped file count towards the process's resident memory for as long as the mapping lives,
so mmap-based loaders report ~ the size of every input as RSS. Writing lays out a shard's
header up front (shapes and dtypes are known from the base) and then appends tensor bytes
as chunks are produced, so no output tensor is ever held whole.
"""

from __future__ import annotations

import json
import os
import struct
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterable

import torch

from micota.errors import MicotaError
from micota.weight_files import safetensors_header

DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}
DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
INDEX_NAME = "model.safetensors.index.json"


@dataclass(frozen=True)
class TensorInfo:
    """Where one tensor lives: file, dtype, shape and byte offset of its data."""

    path: Path
    dtype: torch.dtype
    shape: tuple[int, ...]
    offset: int  # absolute byte offset of the first element in the file

    @property
    def numel(self) -> int:
        n = 1
        for size in self.shape:
            n *= size
        return n

    @property
    def row_numel(self) -> int:
        """Entries per leading-dimension row (the unit of chunking)."""
        return self.numel // self.shape[0] if self.shape and self.shape[0] else self.numel


def read_header(path: Path) -> dict[str, TensorInfo]:
    """Tensor table of one ``.safetensors`` file (the JSON header only, checked against the file size)."""
    header, data_start = safetensors_header(path)
    table = {}
    for name, entry in header.items():
        if entry["dtype"] not in DTYPES:
            raise MicotaError(f"{path}: tensor {name!r} has dtype {entry['dtype']}, which the merge does not support.")
        start = entry["data_offsets"][0]
        table[name] = TensorInfo(path, DTYPES[entry["dtype"]], tuple(entry["shape"]), data_start + start)
    return table


def model_tensors(model_dir: Path, allow_pickle: bool = False) -> dict[str, TensorInfo]:
    """Every tensor of an HF model folder (single file or sharded), by name."""
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        pickles = sorted(p.name for p in model_dir.glob("*.bin"))
        if pickles and not allow_pickle:
            raise MicotaError(
                f"{model_dir}: only pickle checkpoints ({', '.join(pickles)}) found. Pickle files can run "
                "arbitrary code when loaded; convert them to safetensors, or pass --allow-pickle if you trust them."
            )
        if pickles:
            return _unpickled_tensors(model_dir, sorted(model_dir.glob("*.bin")))
        raise MicotaError(f"{model_dir}: no *.safetensors files. Is this an HF model folder?")
    table: dict[str, TensorInfo] = {}
    for path in files:
        table.update(read_header(path))
    return table


def _unpickled_tensors(model_dir: Path, pickles: list[Path]) -> dict[str, TensorInfo]:
    """``--allow-pickle``: convert ``*.bin`` files once to safetensors in a temp folder (removed at exit).

    Pickles cannot be read lazily, so this loads each file whole (``weights_only=True``: tensors only).
    """
    import atexit
    import shutil
    import tempfile

    from safetensors.torch import save_file

    folder = Path(tempfile.mkdtemp(prefix="micota-unpickled-"))
    atexit.register(shutil.rmtree, folder, True)
    table: dict[str, TensorInfo] = {}
    for number, path in enumerate(pickles):
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises many types for bad pickles
            raise MicotaError(f"{path}: could not load the pickle checkpoint ({exc}).") from None
        tensors = {name: value.contiguous().clone() for name, value in state.items() if isinstance(value, torch.Tensor)}
        target = folder / f"{model_dir.name}-{number}.safetensors"
        save_file(tensors, str(target), metadata={"format": "pt"})
        del state, tensors
        table.update(read_header(target))
    return table


def read_rows(info: TensorInfo, start: int, stop: int) -> torch.Tensor:
    """Rows ``[start, stop)`` of a tensor (all of it for a 0-d tensor), read from disk."""
    itemsize = torch.empty(0, dtype=info.dtype).element_size()
    count = (stop - start) * info.row_numel if info.shape else 1
    buffer = torch.empty(count * itemsize, dtype=torch.uint8)
    fd = os.open(info.path, os.O_RDONLY)
    try:
        view = memoryview(buffer.numpy())
        offset, done = info.offset + start * info.row_numel * itemsize, 0
        while done < len(view):
            got = os.preadv(fd, [view[done:]], offset + done)
            if got <= 0:
                raise MicotaError(f"{info.path}: file is truncated (tensor data ends early). Re-download or re-save it.")
            done += got
    finally:
        os.close(fd)
    shape = (stop - start, *info.shape[1:]) if info.shape else ()
    return buffer.view(info.dtype).reshape(shape)


class ShardWriter:
    """Writes one safetensors shard whose tensor list is known in advance, chunk by chunk."""

    def __init__(self, path: Path, specs: list[tuple[str, torch.dtype, tuple[int, ...]]]):
        self.path = path
        header: dict[str, object] = {"__metadata__": {"format": "pt"}}
        offset = 0
        for name, dtype, shape in specs:
            size = torch.empty(0, dtype=dtype).element_size()
            for dim in shape:
                size *= dim
            header[name] = {"dtype": DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        raw = json.dumps(header, separators=(",", ":")).encode()
        raw += b" " * (-len(raw) % 8)  # safetensors aligns the data start to 8 bytes
        self.data_size = offset
        self._handle: BinaryIO = path.open("wb")
        self._handle.write(struct.pack("<Q", len(raw)) + raw)
        # write-behind: the disk write of chunk n overlaps the compute of chunk n+1 (the GIL is
        # released during write); at most two chunks wait, so memory stays bounded.
        self._pool = ThreadPoolExecutor(max_workers=1)
        self._pending: deque[Future] = deque()

    def write(self, chunk: torch.Tensor) -> None:
        """Append the next chunk of bytes (tensors must arrive in spec order)."""
        data = chunk.contiguous().reshape(-1).view(torch.uint8).numpy()
        self._pending.append(self._pool.submit(self._handle.write, data.data))
        while len(self._pending) > 2:
            self._pending.popleft().result()

    def close(self) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True)
            self._handle.close()


def plan_shards(specs: Iterable[tuple[str, torch.dtype, tuple[int, ...]]], max_bytes: int) -> list[list[tuple[str, torch.dtype, tuple[int, ...]]]]:
    """Group tensors, in order, into shards of at most ``max_bytes`` (a bigger tensor gets its own)."""
    shards: list[list[tuple[str, torch.dtype, tuple[int, ...]]]] = [[]]
    used = 0
    for spec in specs:
        size = torch.empty(0, dtype=spec[1]).element_size()
        for dim in spec[2]:
            size *= dim
        if shards[-1] and used + size > max_bytes:
            shards.append([])
            used = 0
        shards[-1].append(spec)
        used += size
    return shards


def write_index(out_dir: Path, weight_map: dict[str, str], total_size: int) -> None:
    """``model.safetensors.index.json``: which shard holds each tensor (HF's sharded format)."""
    index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
    (out_dir / INDEX_NAME).write_text(json.dumps(index, indent=2), encoding="utf-8")
