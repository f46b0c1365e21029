"""What a stage *is*, independent of where its run folder lies.

A stage's identity is its config with every path to an input replaced by that input's name
(the input's content is compared through its recorded sha256, never its path), plus micota's
version of the stage's code. So a run folder moved, copied or mounted elsewhere is still up
to date, and a changed input or a new stage code version is stale for a reason that can be
named.

Paths are found generically in the config's values, at any depth (lists of sources, an
engine's model, a dict of evaluated models): a string equal to an input's path becomes
``<name>``, a path inside an input folder ``<name>/sub/path``, and an existing path inside the
run folder that no declared input covers (a tokenizer folder, say) becomes ``RUN/<stage>/...``
and is hashed as an extra input of that name, unless the stage declared the files it reads
inside it (a report reads ``results.json`` and the sample files of an evaluate folder, not the
folder's scratch). Hub ids are not files and stay as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from micota.config import hashed_values

RUN_PREFIX = "RUN/"  # location-free form of a path inside the run folder (the stage folders' parent)


@dataclass
class StageIdentity:
    """A stage's location-free config, its hash, and every input it reads (declared and found)."""

    config: dict[str, Any]  # hashed config values, paths replaced by references
    config_sha256: str
    inputs: dict[str, Path] = field(default_factory=dict)  # name -> path on this machine
    refs: dict[str, str] = field(default_factory=dict)  # name -> location-free path (RUN/... or absolute)


def stage_identity(config: BaseModel, out_dir: str | Path, inputs: dict[str, str | Path]) -> StageIdentity:
    """The identity of a stage writing to ``out_dir`` from ``config`` and the named ``inputs``.

    >>> from micota.config import StrictModel
    >>> class C(StrictModel):
    ...     data: str
    ...     lr: float
    >>> a = stage_identity(C(data="/old/run/gen/data.jsonl", lr=0.1), "/old/run/sft", {"data": "/old/run/gen/data.jsonl"})
    >>> b = stage_identity(C(data="/new/run/gen/data.jsonl", lr=0.1), "/new/run/sft", {"data": "/new/run/gen/data.jsonl"})
    >>> a.config, a.config_sha256 == b.config_sha256, a.refs
    ({'data': '<data>', 'lr': 0.1}, True, {'data': 'RUN/gen/data.jsonl'})
    """
    out_dir = Path(os.path.abspath(out_dir))
    run_root = out_dir.parent
    named = {name: Path(os.path.abspath(p)) for name, p in inputs.items()}
    # Longest path first, so a path inside a nested input names the innermost one.
    owners = sorted(named.items(), key=lambda item: len(item[1].parts), reverse=True)
    found: dict[str, Path] = {}

    def reference(text: str) -> str:
        if not text or "\n" in text or len(text) > 4096:
            return text  # prompt text or the like, never a path
        path = Path(os.path.abspath(text))
        for name, owner in owners:
            if path == owner or owner in path.parents:
                rel = path.relative_to(owner).as_posix()
                return f"<{name}>" if rel == "." else f"<{name}>/{rel}"
        inside_run = run_root in path.parents
        if inside_run and any(path in owner.parents for _, owner in owners):
            return RUN_PREFIX + path.relative_to(run_root).as_posix()  # a folder the stage reads declared files from
        if inside_run and not _overlaps(path, out_dir) and path.exists():
            ref = RUN_PREFIX + path.relative_to(run_root).as_posix()
            found[ref] = path
            return ref
        return text

    data = _map_strings(hashed_values(config), reference)
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
    all_inputs = {**named, **found}
    return StageIdentity(
        config=data,
        config_sha256=hashlib.sha256(canonical.encode()).hexdigest(),
        inputs=all_inputs,
        refs={name: location_free(path, run_root) for name, path in sorted(all_inputs.items())},
    )


def location_free(path: str | Path, run_root: str | Path) -> str:
    """``RUN/<rel>`` for a path inside the run folder, else the absolute path."""
    path, run_root = Path(os.path.abspath(path)), Path(os.path.abspath(run_root))
    if run_root in path.parents:
        return RUN_PREFIX + path.relative_to(run_root).as_posix()
    return str(path)


def resolve_ref(ref: str, run_root: str | Path) -> Path:
    """The path on this machine of a location-free reference written by :func:`location_free`."""
    if ref.startswith(RUN_PREFIX):
        return Path(run_root) / ref[len(RUN_PREFIX):]
    return Path(ref)


def _overlaps(path: Path, out_dir: Path) -> bool:
    # The stage's own folder (or a folder holding it) is an output, not an input.
    return path == out_dir or out_dir in path.parents or path in out_dir.parents


def _map_strings(value: Any, fn) -> Any:
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    return fn(value) if isinstance(value, str) else value
