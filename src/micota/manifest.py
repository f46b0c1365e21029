"""Stage manifests: what a stage read, with which config, and what it wrote.

A stage folder ``RUN/<stage>/`` is *done* exactly when its ``manifest.json`` exists and
records the current config hash and input hashes. The manifest is written last and
atomically, so an interrupted stage never looks done.
"""

from __future__ import annotations

import hashlib
import json
import platform
from datetime import datetime, timezone
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from micota.jsonl import write_json

MANIFEST_NAME = "manifest.json"
_VERSIONED_PACKAGES = ("micota", "torch", "transformers", "trl", "accelerate", "datasets", "safetensors", "math-verify")
_hash_cache: dict[tuple[str, int, int], str] = {}


@dataclass
class Manifest:
    """The record every stage writes beside its outputs."""

    stage: str
    config_sha256: str
    inputs: dict[str, str] = field(default_factory=dict)  # path -> sha256
    outputs: dict[str, str] = field(default_factory=dict)  # name -> path relative to the stage dir
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    wall_time_s: float = 0.0
    created_at: str = ""


def sha256_file(path: str | Path) -> str:
    """sha256 of a file's bytes, cached per (path, size, mtime) within the process."""
    path = Path(path)
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    cached = _hash_cache.get(key)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    _hash_cache[key] = digest.hexdigest()
    return _hash_cache[key]


def made_by(path: str | Path) -> str:
    """Which finished stage wrote ``path`` (read from the manifest beside it), for error messages.

    >>> made_by("/nonexistent/data.jsonl")
    'no manifest.json beside it, so no finished micota stage made it'
    """
    folder = Path(path).parent
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError, TypeError):
        manifest = None
    if manifest is None:
        return "no manifest.json beside it, so no finished micota stage made it"
    counts = ", ".join(f"{name} {value}" for name, value in manifest.counts.items())
    return f"made by the {manifest.stage} stage in {folder} (counts: {counts or 'none'})"


def sha256_path(path: str | Path) -> str:
    """sha256 of a file, or of a folder as its sorted (relative path, file sha256) pairs.

    A stage's ``manifest.json`` inside a folder is skipped: it holds wall times, so hashing it
    would make every re-run look like a changed input.
    """
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise FileNotFoundError(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        rel = child.relative_to(path).as_posix()
        if rel == MANIFEST_NAME or "/." in f"/{rel}":
            continue
        digest.update(rel.encode() + b"\0" + sha256_file(child).encode() + b"\n")
    return digest.hexdigest()


def input_hashes(paths: dict[str, str | Path]) -> dict[str, str]:
    """Map each named input to its content hash (files or folders)."""
    return {name: sha256_path(p) for name, p in sorted(paths.items())}


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_manifest(stage_dir: str | Path, manifest: Manifest) -> Path:
    """Write ``manifest.json`` atomically (temp file + rename): the stage's done marker."""
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    if not manifest.versions:
        manifest.versions = package_versions()
    if not manifest.created_at:
        manifest.created_at = datetime.now(timezone.utc).isoformat(timespec="microseconds")
    target = stage_dir / MANIFEST_NAME
    write_json(target, asdict(manifest), sort_keys=True)
    return target


def read_manifest(stage_dir: str | Path) -> Manifest | None:
    """The stage's manifest, or None when the stage never finished."""
    target = Path(stage_dir) / MANIFEST_NAME
    if not target.is_file():
        return None
    return Manifest(**json.loads(target.read_text(encoding="utf-8")))


def is_stage_done(stage_dir: str | Path, config_sha: str, inputs: dict[str, str]) -> bool:
    """True when the stage finished with exactly this config and these input hashes."""
    manifest = read_manifest(stage_dir)
    return manifest is not None and manifest.config_sha256 == config_sha and manifest.inputs == inputs
