"""The MiCoTA effects, measured from a run's evaluation: claims with numbers and verdicts.

Each claim is a row of :data:`CLAIMS`: what is claimed, the number that decides it, and the
rule. The numbers come from an evaluate stage's ``results.json`` (robust accuracy and mean
response tokens, averaged over benchmarks). One run gives one value per claim; the micro-lab's
seeds study (``benchmarks/lab_seeds.py``) gives mean ± sd over seeds and judges the claims on
the means. Nothing here assumes an effect: a claim whose models are missing reads
"not measured".

The claims follow MiCoTA (arXiv 2507.01887): Figure 2 (the merged TA writes CoT about half as
long at about the same accuracy), Table 2 (the smallest student learns less from the strong
teacher's long CoT than from the merged TA's, and MiCoTA beats the instruct model), and the
learnability gap of "Small Models Struggle to Learn from Strong Reasoners" (the gap is larger
for the smaller student).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

Results = dict[str, dict[str, dict[str, Any]]]  # model -> benchmark -> metrics (results.json)


@dataclass(frozen=True)
class ClaimModels:
    """Which evaluated models each claim compares."""

    # "pre" / "post" / "merged" -> model name of the TA before SFT, after SFT, after merging
    ta: dict[str, str] = field(default_factory=lambda: {"pre": "TA pre-SFT", "post": "TA post-SFT", "merged": "TA merged"})
    # one dict per student size, smallest first: method -> model name
    students: tuple[dict[str, str], ...] = ()
    instruct: str = "Instruct"  # the untrained student's method
    long_cot: str = "Strong-Teacher CoT"  # training on the strong teacher's long CoT
    micota: str = "MiCoTA"  # training on the merged TA's CoT


def mean_metric(results: Results, model: Optional[str], key: str) -> Optional[float]:
    """``key`` averaged over the benchmarks ``model`` was evaluated on; None when absent.

    >>> mean_metric({"m": {"a": {"acc": 0.5}, "b": {"acc": 0.7}}}, "m", "acc")
    0.6
    """
    values = [m[key] for m in results.get(model or "", {}).values() if m.get(key) is not None]
    return statistics.fmean(values) if values else None


def _diff(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a - b


def _acc(results: Results, model: Optional[str]) -> Optional[float]:
    return None if model is None else mean_metric(results, model, "accuracy_robust")


def _method(models: ClaimModels, size_index: int, method: str) -> Optional[str]:
    sizes = models.students
    return sizes[size_index].get(method) if -len(sizes) <= size_index < len(sizes) else None


def _gap(results: Results, models: ClaimModels, size_index: int) -> Optional[float]:
    """MiCoTA minus long-CoT accuracy of one student size (the learnability gap)."""
    return _diff(_acc(results, _method(models, size_index, models.micota)), _acc(results, _method(models, size_index, models.long_cot)))


def _gap_difference(results: Results, models: ClaimModels) -> Optional[float]:
    """The smallest student's gap minus the largest's (None with one student size)."""
    return _diff(_gap(results, models, 0), _gap(results, models, -1)) if len(models.students) > 1 else None


def _length_ratio(results: Results, models: ClaimModels) -> Optional[float]:
    merged = mean_metric(results, models.ta.get("merged"), "mean_tokens")
    post = mean_metric(results, models.ta.get("post"), "mean_tokens")
    return None if merged is None or not post else merged / post


@dataclass(frozen=True)
class Claim:
    """One effect: its number (from results) and the rule that number must satisfy."""

    key: str
    text: str  # what is claimed, as the report states it
    value: Callable[[Results, ClaimModels], Optional[float]]
    holds: Callable[[float], bool]
    unit: str  # "points" (accuracy difference x100) or "ratio"


CLAIMS: tuple[Claim, ...] = (
    Claim("ta_sft_keeps_accuracy", "TA accuracy after long-CoT SFT is at least its accuracy before SFT",
          lambda r, m: _diff(_acc(r, m.ta.get("post")), _acc(r, m.ta.get("pre"))), lambda v: v >= 0, "points"),
    Claim("merged_length_ratio", "the merged TA's CoT is 0.4-0.7x as long as the SFT'd TA's",
          _length_ratio, lambda v: 0.4 <= v <= 0.7, "ratio"),
    Claim("merged_accuracy", "the merged TA's accuracy is within 5 points of the SFT'd TA's (or above it)",
          lambda r, m: _diff(_acc(r, m.ta.get("merged")), _acc(r, m.ta.get("post"))), lambda v: v >= -0.05, "points"),
    Claim("long_cot_below_micota", "the smallest student learns less from the strong teacher's long CoT than from MiCoTA data",
          lambda r, m: _gap(r, m, 0), lambda v: v > 0, "points"),
    Claim("micota_beats_instruct", "the smallest student trained on MiCoTA data beats the untrained student",
          lambda r, m: _diff(_acc(r, _method(m, 0, m.micota)), _acc(r, _method(m, 0, m.instruct))), lambda v: v > 0, "points"),
    Claim("gap_shrinks_with_size", "the MiCoTA-vs-long-CoT gap is larger for the smallest student than for the largest",
          _gap_difference, lambda v: v > 0, "points"),
)


def measure(results: Results, models: ClaimModels) -> dict[str, Optional[float]]:
    """The number behind every claim (None when its models were not evaluated)."""
    return {claim.key: claim.value(results, models) for claim in CLAIMS}


def verdicts(values: dict[str, Optional[float]]) -> dict[str, Optional[bool]]:
    """Whether each claim holds for these values (None: not measured).

    >>> verdicts({"merged_length_ratio": 0.5, "ta_sft_keeps_accuracy": None})["merged_length_ratio"]
    True
    """
    return {c.key: None if values.get(c.key) is None else bool(c.holds(values[c.key])) for c in CLAIMS}


def format_value(claim: Claim, value: Optional[float], sd: Optional[float] = None) -> str:
    """``+3.5 points`` / ``0.52x``, with ``± sd`` when given.

    >>> format_value(CLAIMS[1], 0.5234, 0.0412)
    '0.52x ± 0.04'
    """
    if value is None:
        return "–"
    if claim.unit == "ratio":
        return f"{value:.2f}x" + ("" if sd is None else f" ± {sd:.2f}")
    return f"{100 * value:+.1f} points" + ("" if sd is None else f" ± {100 * sd:.1f}")


def claims_markdown(values: dict[str, Optional[float]], spread: Optional[dict[str, Optional[float]]] = None,
                    seeds: int = 1) -> list[str]:
    """Markdown bullets: each claim, its measured number (mean ± sd over ``seeds``) and the verdict."""
    verdict = {True: "**yes**", False: "**no**", None: "**not measured**"}
    found = verdicts(values)
    over = "" if seeds == 1 else f" (mean ± sd over {seeds} seeds)"
    lines = []
    for claim in CLAIMS:
        shown = format_value(claim, values.get(claim.key), (spread or {}).get(claim.key))
        lines.append(f"- {claim.text}: {verdict[found[claim.key]]} — {shown}{over}.")
    return lines
