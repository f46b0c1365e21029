"""Stage manifests: what a stage read, with which config, and what it wrote.

A stage folder ``RUN/<stage>/`` is *done* exactly when its ``manifest.json`` exists and
records the current config hash and input hashes. The manifest is written last and
atomically, so an interrupted stage never looks done.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from micota.jsonl import write_json

MANIFEST_NAME = "manifest.json"
# What can change a stage's output without a line of micota changing (open-r1 #194: MATH-500 moved
# from 0.756 to 0.816 with a latex2sympy2_extended release). `micota version --full` prints them too.
VERSIONED_PACKAGES = (
    "micota", "torch", "transformers", "trl", "accelerate", "datasets", "safetensors", "tokenizers", "vllm",
    "math-verify", "latex2sympy2_extended", "sympy",
)  # fmt: skip
_hash_cache: dict[tuple[str, int, int], str] = {}


@dataclass
class Manifest:
    """The record every stage writes beside its outputs."""

    stage: str
    config_sha256: str  # of the location-free config (micota.identity): paths replaced by input names
    inputs: dict[str, str] = field(default_factory=dict)  # input name -> sha256 of its content
    input_refs: dict[str, str] = field(default_factory=dict)  # input name -> RUN/<stage>/... or an absolute path
    code_version: int = 0  # micota's version of this stage's code (micota.stage.STAGE_CODE_VERSIONS)
    identity: dict[str, Any] = field(default_factory=dict)  # the hashed config, so a change can be named
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
    """Python, the installed versions of :data:`VERSIONED_PACKAGES`, and the grader's rule version."""
    versions = {"python": platform.python_version()}
    for name in VERSIONED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    from micota.grade.grader import GRADER_VERSION  # light: no sympy until a symbolic check runs

    versions["micota-grader"] = str(GRADER_VERSION)
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
    data = json.loads(target.read_text(encoding="utf-8"))
    known = {f.name for f in fields(Manifest)}
    return Manifest(**{k: v for k, v in data.items() if k in known})  # a newer micota may add fields


def is_stage_done(stage_dir: str | Path, config_sha: str, inputs: dict[str, str], code_version: int | None = None) -> bool:
    """True when the stage finished with exactly this config, these input hashes and (if given) code version."""
    manifest = read_manifest(stage_dir)
    return (manifest is not None and manifest.config_sha256 == config_sha and manifest.inputs == inputs
            and (code_version is None or manifest.code_version == code_version))
