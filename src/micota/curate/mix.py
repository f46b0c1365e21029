"""The ``mix`` stage: blend datasets by ratio (Mix-Long, Mix-Large), seeded.

"Small Models Struggle to Learn from Strong Reasoners" (Li et al., 2025) mixes long CoT
with short CoT at 1:4 (Mix-Long) and large-teacher with small-teacher CoT (Mix-Large).
With ``unique_prompts`` each prompt appears once in the mix, taken from one source, so the
ratio is a ratio of problems rather than duplicated problems in two styles.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any, Optional

from pydantic import Field

from micota.config import NOT_HASHED, StrictModel
from micota.errors import MicotaError
from micota.jsonl import read_jsonl, write_jsonl
from micota.manifest import Manifest, made_by
from micota.stage import StageResult, run_stage

MIX_NAME = "data.jsonl"


class MixSource(StrictModel):
    data: Path  # JSONL with chat `messages` (e.g. a filter stage's data.jsonl)
    ratio: float = Field(gt=0)  # relative share, e.g. 1 (long) and 4 (short) for Mix-Long
    name: Optional[str] = None  # label stored in each record's `mix_source`


class MixConfig(StrictModel):
    out_dir: Path = Field(json_schema_extra=NOT_HASHED)
    sources: list[MixSource] = Field(min_length=2)
    total: Optional[int] = Field(None, ge=1)  # samples in the mix; default: the most the ratios allow
    unique_prompts: bool = True  # each prompt id at most once across sources
    seed: int = 0


def mix_records(sources: list[list[dict[str, Any]]], ratios: list[float], total: Optional[int], unique: bool, seed: int) -> list[list[dict[str, Any]]]:
    """Pick records from each source in proportion to ``ratios``; return the picks per source.

    >>> picks = mix_records([[{"id": "a"}], [{"id": "b"}, {"id": "c"}]], [1, 1], None, True, 0)
    >>> [len(p) for p in picks]
    [1, 1]
    """
    rng = random.Random(seed)
    pools = [rng.sample(records, len(records)) for records in sources]
    if unique:
        pools = _disjoint_pools(pools, ratios, rng)
    shares = [r / sum(ratios) for r in ratios]
    most = min(int(len(pool) / share) for pool, share in zip(pools, shares))
    total = most if total is None else total
    if total > most:
        raise MicotaError(f"mix.total={total} is more than the sources allow at these ratios ({most}); lower total.")
    counts = _split_total(total, shares)
    return [pool[:count] for pool, count in zip(pools, counts)]


def run(cfg: MixConfig) -> Manifest:
    def body(out: Path) -> StageResult:
        data = [read_jsonl(s.data) for s in cfg.sources]
        for index, (source, records) in enumerate(zip(cfg.sources, data)):
            if not records:
                raise MicotaError(f"sources[{index}].data: {source.data} holds no samples ({made_by(source.data)}); "
                                  "a mix needs every source. Fix the stage that made it, or drop the source.")
        picks = mix_records(data, [s.ratio for s in cfg.sources], cfg.total, cfg.unique_prompts, cfg.seed)
        names = [s.name or f"source{i}" for i, s in enumerate(cfg.sources)]
        mixed = [{**r, "mix_source": name} for name, pick in zip(names, picks) for r in pick]
        random.Random(cfg.seed).shuffle(mixed)
        write_jsonl(out / MIX_NAME, mixed)
        return StageResult(outputs={"data": MIX_NAME}, counts={"samples": len(mixed), **{n: len(p) for n, p in zip(names, picks)}})

    return run_stage("mix", cfg, cfg.out_dir, {f"sources[{i}]": s.data for i, s in enumerate(cfg.sources)}, body)


def _disjoint_pools(pools: list[list[dict[str, Any]]], ratios: list[float], rng: random.Random) -> list[list[dict[str, Any]]]:
    """Give each prompt id to one source that has it, at random in proportion to the ratios."""
    holders: dict[str, list[int]] = {}
    for i, pool in enumerate(pools):
        for record in pool:
            holders.setdefault(record["id"], []).append(i)
    owner = {pid: rng.choices(have, weights=[ratios[i] for i in have])[0] for pid, have in sorted(holders.items())}
    return [[r for r in pool if owner[r["id"]] == i] for i, pool in enumerate(pools)]


def _split_total(total: int, shares: list[float]) -> list[int]:
    # Largest-remainder rounding so the counts add up to `total` exactly.
    raw = [total * s for s in shares]
    counts = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: counts[i] - raw[i])[: total - sum(counts)]:
        counts[i] += 1
    return counts
