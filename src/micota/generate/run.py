"""The ``generate`` stage: a prompt set through one engine into chat-format JSONL.

Output folder: ``shards/`` (streamed as samples finish; what makes a killed run resumable),
``data.jsonl`` (every record in prompt order, written once all are done) and
``manifest.json`` (counts of finish reasons, mean response tokens; metrics: the effective
sampling parameters and the placement it ran with).

Hooks for ``micota run``: :func:`placement` (what ``--dry-run`` prints) and :func:`preflight`
(checks made before any stage of the run starts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from pydantic import Field

from micota.config import NOT_HASHED, StrictModel
from micota.data import load_prompt_set, render_prompt
from micota.errors import MicotaError
from micota.generate.engine import EngineConfig, GenerationRequest
from micota.generate.placement import check_engine, engine_placement, resolve_engine
from micota.generate.sampling import effective_sampling
from micota.generate.writer import generate_records
from micota.hub import is_local
from micota.identity import location_free
from micota.jsonl import write_jsonl
from micota.manifest import Manifest
from micota.resources import Placement, Resources
from micota.stage import StageResult, run_stage

DATA_NAME = "data.jsonl"


class GenerateConfig(StrictModel):
    """Generate one response per prompt with ``engine``."""

    out_dir: Path = Field(json_schema_extra=NOT_HASHED)
    prompts: Union[Path, str]  # JSONL prompt set (`problem` or `question`, and `answer` per line) or a hub dataset id
    prompts_split: str = "train"  # hub datasets only
    prompts_config: Optional[str] = None  # hub datasets only, e.g. "main" for openai/gsm8k
    engine: EngineConfig
    prompt_template: str = "micota_generation"  # a file in micota/_data/prompts/ (MiCoTA's generation prompt)
    limit: Optional[int] = Field(None, ge=1)  # use only the first N prompts (smoke tests)
    progress: bool = Field(True, json_schema_extra=NOT_HASHED)  # show a progress bar
    resources: Resources = Field(default_factory=Resources, json_schema_extra=NOT_HASHED)  # GPUs / CPU processes to use


def build_requests(cfg: GenerateConfig) -> list[GenerationRequest]:
    """One chat request per prompt, carrying the gold answer and source for the filter."""
    prompts = load_prompt_set(cfg.prompts, split=cfg.prompts_split, hub_config=cfg.prompts_config, limit=cfg.limit)
    # RUN/<stage>/... for a model inside the run folder: the data must not depend on where the run lies.
    source = location_free(cfg.engine.model, cfg.out_dir.parent) if Path(cfg.engine.model).exists() else cfg.engine.model
    return [
        GenerationRequest(
            id=p.id,
            messages=[{"role": "user", "content": render_prompt(cfg.prompt_template, p.problem)}],
            meta={"problem": p.problem, "answer": p.answer, "source": source},
        )
        for p in prompts
    ]


def run(cfg: GenerateConfig) -> Manifest:
    """Generate (resuming any partial run of the same config) and write ``data.jsonl``."""
    engine = resolve_engine(cfg.engine, cfg.resources)

    def body(out: Path) -> StageResult:
        records = generate_records(engine, build_requests(cfg), out, desc=f"generate {out.name}", progress=cfg.progress)
        write_jsonl(out / DATA_NAME, records)
        metrics = {"sampling": effective_sampling(engine), "placement": engine_placement(engine, cfg.resources).describe()}
        return StageResult(outputs={"data": DATA_NAME}, counts=response_counts(records), metrics=metrics)

    # Local files are hashed by content; a hub id is part of the config hash instead.
    inputs = {name: path for name, path in (("prompts", cfg.prompts), ("model", cfg.engine.model)) if Path(path).exists()}
    return run_stage("generate", cfg, cfg.out_dir, inputs, body, resumable=True)


def placement(cfg: GenerateConfig) -> Placement:
    """How the stage will run: replicas, GPUs, TP x DP (``micota run --dry-run``)."""
    return engine_placement(cfg.engine, cfg.resources)


def preflight(cfg: GenerateConfig) -> None:
    """Checks made before any stage starts: the prompt file exists, the engine can run and fits."""
    if is_local(str(cfg.prompts)) and not Path(cfg.prompts).is_file() and not made_in_run(cfg.prompts, cfg.out_dir):
        raise MicotaError(f"prompts: {str(cfg.prompts)!r} does not exist. Fix the path, or give a hub dataset id.")
    check_engine(cfg.engine, cfg.resources)


def made_in_run(path: Union[Path, str], out_dir: Path) -> bool:
    """Whether ``path`` lies in this run's folder (the stage's parent), where an earlier stage may still make it."""
    return Path(path).resolve().is_relative_to(Path(out_dir).resolve().parent)


def response_counts(records: list[dict]) -> dict[str, float | int]:
    """Sample count, finish reasons and mean response tokens, for manifests and reports."""
    n = len(records)
    stopped = sum(r["finish_reason"] == "stop" for r in records)
    return {
        "samples": n,
        "finish_stop": stopped,
        "finish_length": n - stopped,
        "mean_response_tokens": round(sum(r["n_tokens"] for r in records) / n, 2) if n else 0.0,
    }
