"""JSON(L) files: reading with errors that name the file and line, writing atomically."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path
from typing import Any, Iterable, Iterator

from micota.errors import MicotaError


def iter_jsonl(path: str | Path, *, errors: str = "strict") -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line; a bad line is a MicotaError naming it.

    ``errors="replace"`` reads undecodable bytes (model text can hold them) as U+FFFD instead of failing.
    """
    path = Path(path)
    if not path.is_file():
        raise MicotaError(f"{path}: file not found.")
    with path.open(encoding="utf-8", errors=errors) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MicotaError(f"{path}:{number}: malformed JSON ({exc.msg} at column {exc.colno}). Fix or delete that line.") from None
            if not isinstance(record, dict):
                raise MicotaError(f"{path}:{number}: each line must be a JSON object, got {type(record).__name__}.")
            yield number, record


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """All records of a JSONL file."""
    return [record for _, record in iter_jsonl(path)]


def write_jsonl(path: str | Path, records: Iterable[dict[str, Any]]) -> int:
    """Write records to ``path`` atomically (temp file + rename); return how many."""
    count = 0

    def write(handle) -> None:
        nonlocal count
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1

    _write_atomically(Path(path), write)
    return count


def write_json(path: str | Path, data: Any, *, sort_keys: bool = False) -> None:
    """Write ``data`` as indented JSON atomically: a reader never sees half a file."""
    _write_atomically(Path(path), lambda handle: handle.write(json.dumps(data, indent=2, sort_keys=sort_keys)))


def temp_path(path: Path) -> Path:
    """A hidden temp name beside ``path``, unique per writer (pid and a random part), so two
    processes writing the same file never rename each other's half-written data."""
    return path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")


_TEMP_NAME = re.compile(r"^\..+\.\d+-[0-9a-f]{8}\.tmp$")  # what temp_path makes


def remove_temp_files(folder: Path) -> list[Path]:
    """Delete the temp files killed writers left under ``folder`` (call it holding the folder's lock).

    A writer killed between creating its temp file and the rename leaves it behind, and no
    later writer reuses its unique name.
    """
    found = [p for p in folder.rglob(".*.tmp") if _TEMP_NAME.match(p.name) and p.is_file()]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def _write_atomically(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            write(handle)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
