"""The ``filter`` stage: keep samples that are correct, finished and short enough (MiCoTA step 2).

Every dropped sample is written to ``dropped.jsonl`` with the first reason that applies
(``truncated`` > ``too_long`` > ``incorrect``), and the manifest counts each reason, so a
user can see at a glance why a teacher's data shrank.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field

from micota.config import NOT_HASHED, StrictModel
from micota.errors import MicotaError
from micota.jsonl import read_jsonl, write_jsonl
from micota.manifest import Manifest, made_by
from micota.stage import StageResult, run_stage

KEPT_NAME = "data.jsonl"
DROPPED_NAME = "dropped.jsonl"


class FilterConfig(StrictModel):
    """Which generated samples become training data."""

    out_dir: Path = Field(json_schema_extra=NOT_HASHED)
    data: Path  # a generate stage's data.jsonl (fields: answer, response, n_tokens, finish_reason, messages)
    max_tokens: Optional[int] = Field(None, ge=1)  # drop responses longer than this many tokens
    require_correct: bool = True  # drop samples whose final answer does not match the gold
    require_finished: bool = True  # drop samples cut off by max_new_tokens (finish_reason "length")
    benchmark: Optional[str] = None  # grading rules to apply (e.g. "lab", "gsm8k"); None = general math
    grade_mode: Literal["robust", "paper"] = "robust"


def drop_reason(record: dict[str, Any], cfg: FilterConfig, verdict: Any) -> Optional[str]:
    """The first reason to drop ``record``, or None to keep it."""
    if cfg.require_finished and record["finish_reason"] != "stop":
        return "truncated"
    if cfg.max_tokens is not None and record["n_tokens"] > cfg.max_tokens:
        return "too_long"
    if cfg.require_correct and not verdict.correct:
        return "incorrect"
    return None


def run(cfg: FilterConfig) -> Manifest:
    """Split ``data`` into kept and dropped samples; count each drop reason."""

    def body(out: Path) -> StageResult:
        from micota.grade import grade_many

        records = read_jsonl(cfg.data)
        verdicts = grade_many([(r["answer"], r["response"]) for r in records], benchmark=cfg.benchmark, mode=cfg.grade_mode)
        kept, dropped = [], []
        for record, verdict in zip(records, verdicts):
            reason = drop_reason(record, cfg, verdict)
            if reason is None:
                kept.append(record)
            else:
                dropped.append({"id": record["id"], "reason": reason, "extracted": verdict.extracted,
                                "grader": verdict.reason, "n_tokens": record["n_tokens"]})
        write_jsonl(out / DROPPED_NAME, dropped)
        reasons = Counter(d["reason"] for d in dropped)
        if not kept:
            raise MicotaError(nothing_kept_message(cfg, len(records), reasons, out / DROPPED_NAME))
        write_jsonl(out / KEPT_NAME, kept)
        counts = {"input": len(records), "kept": len(kept), **{f"dropped_{k}": reasons.get(k, 0) for k in ("truncated", "too_long", "incorrect")}}
        return StageResult(outputs={"data": KEPT_NAME, "dropped": DROPPED_NAME}, counts=counts)

    return run_stage("filter", cfg, cfg.out_dir, {"data": cfg.data}, body)


# what to change when a rule dropped everything, per rule
_RULE_FIXES = {
    "truncated": "finish_reason was not 'stop' (cut at the generate stage's engine.max_new_tokens): raise max_new_tokens "
                 "there, or set `require_finished: false`",
    "too_long": "n_tokens > max_tokens={max_tokens}: raise `max_tokens`, or remove it",
    "incorrect": "the extracted answer did not match the gold (grade_mode {grade_mode}, benchmark {benchmark}): check the "
                 "`answer` field and `benchmark:`, or set `require_correct: false`",
}


def nothing_kept_message(cfg: FilterConfig, total: int, reasons: Counter, dropped_file: Path) -> str:
    """The error when no sample survives: how many each rule dropped and what to change."""
    if total == 0:
        return f"filter ({cfg.out_dir}): data {cfg.data} holds no samples ({made_by(cfg.data)}). Check the stage that made it."
    rules = "; ".join(f"{rule} dropped {reasons[rule]} ({fix.format(**cfg.model_dump())})"
                      for rule, fix in _RULE_FIXES.items() if reasons.get(rule))
    return (f"filter ({cfg.out_dir}): all {total} samples of {cfg.data} were dropped, so there is no training data. "
            f"{rules}. Each dropped sample and its reason is in {dropped_file}.")
