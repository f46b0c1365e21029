"""Length-targeted merging: pick the merge strength whose CoT is ``ratio ×`` the fine-tuned one's.

MiCoTA merges the teacher assistant before and after long-CoT SFT so the merged model writes
CoT about half as long at equal accuracy. This module answers the question users actually
have: *how strongly should I merge?* It probes the fine-tuned model once, then
merges at a few strengths (λ, or density), probes each merge (mean tokens, accuracy, share of
well-formed answers), and keeps the merge whose mean length is closest to the target while
its accuracy stays within ``accuracy_tolerance`` of the fine-tuned model's. Strengths are
chosen by interpolation on the bracketing pair (mean length grows with strength), falling
back to bisection, so a handful of merges suffice. The whole curve goes to the manifest and
a PNG plot.

The probe is any ``probe(model_dir) -> ProbePoint`` callable; :mod:`micota.merge.probe`
provides the real one (HF generation + the project's grader).
"""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

from micota.merge.config import LengthSearchConfig, MergeConfig

CURVE_NAME = "length_search.json"
PLOT_NAME = "length_search.png"


@dataclass(frozen=True)
class ProbePoint:
    """What a probe measures on one model."""

    mean_tokens: float  # mean generated tokens per probe prompt
    accuracy: float  # share of probe prompts answered correctly, in [0, 1]
    well_formed_share: float  # share of responses that finished and carry an extractable answer


Probe = Callable[[Path], ProbePoint]


@dataclass
class CurvePoint:
    """One probed merge on the search curve."""

    strength: float  # value of the searched parameter (λ or density)
    mean_tokens: float
    accuracy: float
    well_formed_share: float
    length_ratio: float  # mean_tokens / the fine-tuned model's mean_tokens
    acceptable: bool  # accuracy within tolerance of the fine-tuned model's


@dataclass
class SearchResult:
    """The fine-tuned reference, the target, every probed point and the chosen one."""

    param: str
    target_ratio: float
    target_tokens: float
    reference: ProbePoint
    curve: list[CurvePoint] = field(default_factory=list)
    best: Optional[CurvePoint] = None
    note: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def search_merge_strength(
    cfg: MergeConfig, probe: Probe, work_dir: Path, merge: Callable[[MergeConfig, Path], object]
) -> tuple[SearchResult, Path]:
    """Probe merges of ``cfg`` at several strengths; return the result and the best merge's folder.

    ``merge(config, folder)`` writes one merged model (``micota.merge.run.merge_into`` in
    production). Only the best merge so far is kept on disk.
    """
    search = cfg.length_search
    assert search is not None, "cfg.length_search must be set"
    reference = probe(Path(cfg.models[0].model))
    result = SearchResult(search.param, search.target_ratio, search.target_ratio * reference.mean_tokens, reference)
    folders: dict[float, Path] = {}

    def evaluate(strength: float) -> CurvePoint:
        folder = work_dir / f"{search.param}-{strength:.6f}"
        folder.mkdir(parents=True, exist_ok=True)
        merge(with_strength(cfg, search.param, strength), folder)
        point = probe(folder)
        ratio = point.mean_tokens / reference.mean_tokens if reference.mean_tokens > 0 else float("nan")
        acceptable = point.accuracy >= reference.accuracy - search.accuracy_tolerance
        curve_point = CurvePoint(strength, point.mean_tokens, point.accuracy, point.well_formed_share, ratio, acceptable)
        result.curve.append(curve_point)
        folders[strength] = folder
        _keep_only_best(result, folders, search)
        return curve_point

    bracket_search(search, result.target_tokens, evaluate)
    result.curve.sort(key=lambda p: p.strength)
    _keep_only_best(result, folders, search)
    return result, folders[result.best.strength]


def bracket_search(search: LengthSearchConfig, target: float, evaluate: Callable[[float], CurvePoint]) -> None:
    """Probe both ends of the range, then points inside the bracket around ``target``."""
    low, high = evaluate(search.low), evaluate(search.high)
    min_span = 1e-4 * abs(search.high - search.low)
    for _ in range(search.max_evals - 2):
        strength = next_strength(low, high, target, min_span)
        if strength is None:
            return
        middle = evaluate(strength)
        if (middle.mean_tokens < target) == (low.mean_tokens < target):
            low = middle
        else:
            high = middle


def next_strength(low: CurvePoint, high: CurvePoint, target: float, min_span: float) -> Optional[float]:
    """The next strength inside the bracket, or None when the target is outside it or it is tiny.

    Linear interpolation of mean length, kept 10% of the bracket away from its ends so every
    step shrinks it (regula falsi with a bisection guard; mean length grows with strength).

    >>> a, b = CurvePoint(0.0, 10, 1, 1, 0.1, True), CurvePoint(1.0, 110, 1, 1, 1.0, True)
    >>> next_strength(a, b, 60.0, 1e-4)
    0.5
    >>> next_strength(a, b, 200.0, 1e-4) is None
    True
    """
    if not min(low.mean_tokens, high.mean_tokens) <= target <= max(low.mean_tokens, high.mean_tokens):
        return None  # out of reach for this range: the nearer end is the best there is
    span = high.strength - low.strength
    if abs(span) <= min_span:
        return None
    rise = high.mean_tokens - low.mean_tokens
    share = (target - low.mean_tokens) / rise if rise else 0.5
    return low.strength + min(max(share, 0.1), 0.9) * span


def choose_best(result: SearchResult, tolerance: float) -> tuple[Optional[CurvePoint], str]:
    """Closest to the target length among acceptable points; else the most accurate point.

    Ties (merges on either side of a discrete switch often write identical answers) go to the
    lower strength, so the choice never depends on the order the points were probed in: the
    search keeps only the best merge's folder on disk and must find it there at the end.

    >>> ref = ProbePoint(100.0, 0.8, 1.0)
    >>> r = SearchResult("lambda", 0.5, 50.0, ref, [CurvePoint(0.3, 40, 0.5, 1, 0.4, False), CurvePoint(0.6, 70, 0.8, 1, 0.7, True)])
    >>> choose_best(r, 0.05)[0].strength
    0.6
    """
    if not result.curve:
        return None, "no merge was probed"
    acceptable = [p for p in result.curve if p.acceptable]
    if acceptable:
        return min(acceptable, key=lambda p: (abs(p.mean_tokens - result.target_tokens), -p.accuracy, p.strength)), ""
    best = max(result.curve, key=lambda p: (p.accuracy, -abs(p.mean_tokens - result.target_tokens), -p.strength))
    note = (
        f"no merge kept accuracy within {tolerance} of the fine-tuned model's {result.reference.accuracy:.3f}; "
        f"chose the most accurate ({best.accuracy:.3f} at {result.param}={best.strength:.4g}). "
        "Raise accuracy_tolerance, widen low/high, or use more probe prompts."
    )
    return best, note


def _keep_only_best(result: SearchResult, folders: dict[float, Path], search: LengthSearchConfig) -> None:
    result.best, result.note = choose_best(result, search.accuracy_tolerance)
    for strength, folder in folders.items():
        if result.best is None or strength != result.best.strength:
            shutil.rmtree(folder, ignore_errors=True)


def with_strength(cfg: MergeConfig, param: str, strength: float) -> MergeConfig:
    """A copy of ``cfg`` (without the search) merging at ``strength``."""
    update: dict = {"length_search": None}
    if param == "lambda":
        update["lambda_"] = strength
    else:
        update["models"] = [m.model_copy(update={"density": min(max(strength, 1e-6), 1.0)}) for m in cfg.models]
    return cfg.model_copy(update=update)


def write_curve(result: SearchResult, folder: Path) -> None:
    """``length_search.json`` and a PNG plot of mean tokens and accuracy against strength."""
    (folder / CURVE_NAME).write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    xs = [p.strength for p in result.curve]
    fig, left = plt.subplots(figsize=(6, 4))
    left.plot(xs, [p.mean_tokens for p in result.curve], "o-", color="tab:blue", label="mean tokens")
    left.axhline(result.target_tokens, color="tab:blue", ls=":", label=f"target ({result.target_ratio}× fine-tuned)")
    left.set_xlabel(result.param)
    left.set_ylabel("mean CoT tokens", color="tab:blue")
    right = left.twinx()
    right.plot(xs, [p.accuracy for p in result.curve], "s-", color="tab:red", label="accuracy")
    right.plot(xs, [p.well_formed_share for p in result.curve], "^--", color="tab:gray", label="well-formed")
    right.axhline(result.reference.accuracy, color="tab:red", ls=":")
    right.set_ylabel("share", color="tab:red")
    right.set_ylim(-0.02, 1.02)
    if result.best is not None:
        left.axvline(result.best.strength, color="k", alpha=0.3)
    handles = left.get_legend_handles_labels()[0] + right.get_legend_handles_labels()[0]
    left.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="best")
    left.set_title("length-targeted merge")
    fig.tight_layout()
    fig.savefig(folder / PLOT_NAME, dpi=120)
    plt.close(fig)
    if result.note:
        warnings.warn(result.note, stacklevel=2)
