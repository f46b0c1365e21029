"""The ``generate`` stage: a prompt set through one engine into chat-format JSONL.

Output folder: ``shards/`` (streamed as samples finish; what makes a killed run resumable),
``data.jsonl`` (every record in prompt order, written once all are done) and
``manifest.json`` (counts of finish reasons, mean response tokens).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from pydantic import Field

from micota.config import NOT_HASHED, StrictModel
from micota.data import load_prompt_set, render_prompt
from micota.generate.engine import EngineConfig, GenerationRequest
from micota.generate.writer import generate_records
from micota.identity import location_free
from micota.jsonl import write_jsonl
from micota.manifest import Manifest
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

    def body(out: Path) -> StageResult:
        records = generate_records(cfg.engine, build_requests(cfg), out, desc=f"generate {out.name}", progress=cfg.progress)
        write_jsonl(out / DATA_NAME, records)
        return StageResult(outputs={"data": DATA_NAME}, counts=response_counts(records))

    # Local files are hashed by content; a hub id is part of the config hash instead.
    inputs = {name: path for name, path in (("prompts", cfg.prompts), ("model", cfg.engine.model)) if Path(path).exists()}
    return run_stage("generate", cfg, cfg.out_dir, inputs, body, resumable=True)


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
