"""The real probe of length-targeted merging: generate on a probe set, grade, summarise.

It runs the project's HF engine (``micota.generate``) greedily on the probe prompts and
grades each response with ``micota.grade``; see :mod:`micota.merge.search` for the search.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Iterable, Optional

from micota.data import load_prompt_set, render_prompt
from micota.generate.engine import EngineConfig, GenerationRequest
from micota.generate.writer import generate_records
from micota.merge.config import LengthSearchConfig
from micota.merge.search import Probe, ProbePoint


def probe_requests(search: LengthSearchConfig) -> list[GenerationRequest]:
    """The first ``max_probes`` prompts of the probe set as chat requests carrying their gold."""
    prompts = load_prompt_set(search.probe_set, limit=search.max_probes)
    return [
        GenerationRequest(
            id=p.id,
            messages=[{"role": "user", "content": render_prompt(search.prompt_template, p.problem)}],
            meta={"gold": p.answer},
        )
        for p in prompts
    ]


def generation_probe(search: LengthSearchConfig, work_dir: Path) -> Probe:
    """A ``probe(model_dir)`` that generates greedily with the HF engine and grades the answers."""
    requests = probe_requests(search)
    numbers = itertools.count()

    def probe(model_dir: Path) -> ProbePoint:
        engine = EngineConfig(
            engine="hf",
            model=str(model_dir),
            max_new_tokens=search.max_new_tokens,
            batch_size=search.batch_size,
            temperature=0.0,
            device=search.device,
        )
        out_dir = work_dir / f"probe-{next(numbers):03d}"
        records = generate_records(engine, requests, out_dir, desc=f"probe {Path(model_dir).name}")
        return summarise(records, search.benchmark)

    return probe


def summarise(records: Iterable[dict[str, Any]], benchmark: Optional[str]) -> ProbePoint:
    """Mean tokens, accuracy and the share of finished responses with an extractable answer.

    >>> summarise([{"gold": "4", "response": "so \\\\boxed{4}", "n_tokens": 10, "finish_reason": "stop"},
    ...            {"gold": "5", "response": "hmm", "n_tokens": 30, "finish_reason": "length"}], None)
    ProbePoint(mean_tokens=20.0, accuracy=0.5, well_formed_share=0.5)
    """
    from micota.grade import grade

    rows = list(records)
    if not rows:
        return ProbePoint(0.0, 0.0, 0.0)
    verdicts = [grade(r["gold"], r["response"], benchmark=benchmark) for r in rows]
    well_formed = [r["finish_reason"] == "stop" and v.extracted is not None for r, v in zip(rows, verdicts)]
    return ProbePoint(
        mean_tokens=sum(r["n_tokens"] for r in rows) / len(rows),
        accuracy=sum(v.correct for v in verdicts) / len(rows),
        well_formed_share=sum(well_formed) / len(rows),
    )
