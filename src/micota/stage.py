"""The one place that decides whether a stage runs, and that writes its record.

Every stage's ``run(config)`` calls :func:`run_stage` with its named inputs and a body that
writes outputs into the stage folder. ``run_stage``:

* skips the body when ``manifest.json`` already records this stage's identity (its
  location-free config, see :mod:`micota.identity`), these input hashes and this stage code
  version (the stage is truly done, wherever the run folder now lies);
* otherwise removes stale outputs (unless the stage is ``resumable`` and its partial
  outputs were made by the same config, inputs and code), writes ``config.yaml``, runs the
  body, and writes ``manifest.json`` last, atomically, so an interrupted stage never looks done.

Subfolders named in ``preserve`` survive a config change: the stage keys their contents by
content (evaluate's generations, per model, benchmark and sampling settings), so they stay
valid whatever else in the config changed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from pydantic import BaseModel

from micota.errors import MicotaError, is_no_room, no_room_message
from micota.identity import stage_identity
from micota.jsonl import remove_temp_files
from micota.manifest import MANIFEST_NAME, Manifest, input_hashes, is_stage_done, read_manifest, write_manifest

CONFIG_NAME = "config.yaml"
PARTIAL_MARK = ".partial-config-sha256"

# micota's version of each stage's code, by the name a stage gives run_stage. Bump a row when a
# change to that stage's code changes what it writes: every finished stage of the kind becomes
# stale (`micota run --dry-run` says so) and re-runs. Unknown names (tests, plug-ins) are 1.
# generate 2: records name a model inside the run folder as RUN/<stage>/..., not by absolute path.
STAGE_CODE_VERSIONS: dict[str, int] = {
    "lab": 1, "generate": 2, "filter": 1, "mix": 1, "sft": 1, "merge": 1, "evaluate": 1, "report": 1,
    "analyze-bpc": 1,
}  # fmt: skip


def code_version(stage: str) -> int:
    """micota's version of the code of stage ``stage`` (see :data:`STAGE_CODE_VERSIONS`)."""
    return STAGE_CODE_VERSIONS.get(stage, 1)


@dataclass
class StageResult:
    """What a stage body reports back: output names, counts and metrics for the manifest."""

    outputs: dict[str, str] = field(default_factory=dict)
    counts: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)


def run_stage(
    stage: str,
    config: BaseModel,
    out_dir: str | Path,
    inputs: dict[str, str | Path],
    body: Callable[[Path], StageResult],
    *,
    resumable: bool = False,
    preserve: tuple[str, ...] = (),
) -> Manifest:
    """Run ``body(out_dir)`` unless the stage is already done; return the stage's manifest.

    Config fields marked :data:`micota.config.NOT_HASHED` (``out_dir``, progress bars, batch
    sizes, server addresses) do not enter the config hash: they do not change what the stage
    produces. Paths to inputs do not either (:func:`micota.identity.stage_identity`).
    ``preserve`` names subfolders of ``out_dir`` that are never cleared.
    """
    out_dir = Path(out_dir)
    missing = {name: str(p) for name, p in inputs.items() if not Path(p).exists()}
    if missing:
        listed = ", ".join(f"{k}={v}" for k, v in missing.items())
        raise MicotaError(f"stage {stage!r}: input not found: {listed}. Run the stage that makes it first, or fix the path.")
    identity = stage_identity(config, out_dir, inputs)
    hashes = input_hashes(identity.inputs)
    version = code_version(stage)
    if is_stage_done(out_dir, identity.config_sha256, hashes, version):
        return read_manifest(out_dir)
    with _no_room_reported(stage, out_dir, resumable):
        _prepare_dir(out_dir, partial_key(identity.config_sha256, hashes, version), resumable, preserve)
        (out_dir / CONFIG_NAME).write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
        started = time.perf_counter()
        result = body(out_dir)
        manifest = Manifest(
            stage=stage,
            config_sha256=identity.config_sha256,
            inputs=hashes,
            input_refs=identity.refs,
            code_version=version,
            identity=identity.config,
            outputs=result.outputs,
            counts=result.counts,
            metrics=result.metrics,
            wall_time_s=round(time.perf_counter() - started, 3),
        )
        write_manifest(out_dir, manifest)
    (out_dir / PARTIAL_MARK).unlink(missing_ok=True)
    return manifest


def partial_key(config_sha: str, hashes: dict[str, str], version: int) -> str:
    """What a resumable stage's partial output must have been made with to be kept.

    Input hashes belong here: a generation killed half way must not resume on a model that
    was re-trained in the meantime (same config, same path, different weights).
    """
    data = json.dumps({"config": config_sha, "inputs": hashes, "code_version": version}, sort_keys=True)
    return hashlib.sha256(data.encode()).hexdigest()


def _prepare_dir(out_dir: Path, key: str, resumable: bool, preserve: tuple[str, ...] = ()) -> None:
    """Clear what a previous, different run left (but the ``preserve`` subfolders); keep a
    same-identity partial run if resumable."""
    mark = out_dir / PARTIAL_MARK
    keep = resumable and mark.is_file() and mark.read_text().strip() == key
    (out_dir / MANIFEST_NAME).unlink(missing_ok=True)
    if out_dir.exists() and not keep:
        for child in out_dir.iterdir():
            if child.name in preserve and child.is_dir():
                continue
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    if out_dir.exists():
        remove_temp_files(out_dir)  # half-written files of a killed run (we hold the folder's lock)
    out_dir.mkdir(parents=True, exist_ok=True)
    mark.write_text(key)


@contextmanager
def _no_room_reported(stage: str, out_dir: Path, resumable: bool) -> Iterator[None]:
    """A full disk (or quota, or file-size limit) while the stage writes becomes a MicotaError that says what is kept.

    The manifest is written last, so a stage stopped here is never marked done.
    """
    try:
        yield
    except OSError as exc:
        if not is_no_room(exc):
            raise
        then = "it resumes from the work already written" if resumable else "the stage starts again"
        raise MicotaError(f"stage {stage!r}: {no_room_message(getattr(exc, 'filename', None) or out_dir, exc)} Nothing is "
                          f"marked done (no manifest.json in {out_dir}). Free space and re-run: {then}.") from None
