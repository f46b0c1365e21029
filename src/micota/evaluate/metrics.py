"""Per-sample reflection counts and per-benchmark summaries (issue 5, items 3 and 6).

Reflection markers are the words MiCoTA's Figure 4 counts ("wait", …); the list is
configurable. Counting is case-insensitive on word boundaries, so "await" is not "wait".
"""

from __future__ import annotations

import re
import statistics
from functools import lru_cache
from typing import Any, Iterable, Sequence

DEFAULT_REFLECTION_MARKERS = ("wait", "hmm", "alternatively", "let me check", "let me verify", "double-check")


@lru_cache(maxsize=256)
def _marker_pattern(marker: str) -> re.Pattern[str]:
    words = [re.escape(w) for w in marker.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def count_reflection_markers(text: str, markers: Iterable[str] = DEFAULT_REFLECTION_MARKERS) -> dict[str, int]:
    """How often each marker occurs in ``text``.

    >>> count_reflection_markers("Wait, 2+2=4. Hmm... wait. Await!", ["wait", "hmm"])
    {'wait': 2, 'hmm': 1}
    """
    return {marker: len(_marker_pattern(marker).findall(text)) for marker in markers}


def summarize_samples(samples: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``results.json`` entry of one model × benchmark from its per-sample records.

    Accuracies and rates are fractions in [0, 1]; token counts are response tokens.
    """
    n = len(samples)
    if n == 0:
        return {"n": 0}
    tokens = [s["n_tokens"] for s in samples]
    markers = list(samples[0].get("reflection", {}))
    return {
        "n": n,
        "accuracy_robust": sum(bool(s["correct_robust"]) for s in samples) / n,
        "accuracy_paper": sum(bool(s["correct_paper"]) for s in samples) / n,
        "mean_tokens": statistics.fmean(tokens),
        "median_tokens": statistics.median(tokens),
        "max_tokens": max(tokens),
        "truncation_rate": sum(s["finish_reason"] == "length" for s in samples) / n,
        "reflection_per_response": statistics.fmean(s["reflection_total"] for s in samples),
        "reflection_by_marker": {m: statistics.fmean(s["reflection"][m] for s in samples) for m in markers},
    }
