"""Reading JSONL with errors that name the file, the line and the fix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

from micota.errors import MicotaError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, record)`` for each non-blank line; malformed lines raise MicotaError."""
    path = Path(path)
    if not path.is_file():
        raise MicotaError(f"{path}: file not found. Check the path (cwd is {Path.cwd()}).")
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise MicotaError(f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}). Fix or delete the line.") from None
            if not isinstance(record, dict):
                raise MicotaError(f"{path}:{number}: each line must be a JSON object, got {type(record).__name__}.")
            yield number, record


def require_field(record: dict[str, Any], names: tuple[str, ...], *, where: str) -> Any:
    """The value of the first of ``names`` present in ``record``; a clear error when none is."""
    for name in names:
        if record.get(name) is not None:
            return record[name]
    wanted = " or ".join(f"`{n}`" for n in names)
    raise MicotaError(f"{where}: missing field {wanted}; the line has {sorted(record) or 'no fields'}.")
