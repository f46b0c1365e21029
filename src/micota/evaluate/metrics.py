"""Per-sample reflection counts and per-benchmark summaries: accuracy per scoring mode, pass@1 ± std, maj@n.

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


def summarize_samples(samples: Sequence[dict[str, Any]], modes: Sequence[str] = ("robust", "paper"), *,
                      protocol: str = "greedy", samples_per_problem: int = 1) -> dict[str, Any]:
    """The ``results.json`` entry of one model × benchmark from its per-sample records.

    Accuracies and rates are fractions in [0, 1]; token counts are response tokens.
    ``accuracy_<mode>`` is pass@1: the mean correctness over all samples (with one sample per
    problem, the accuracy). With several samples per problem (``sample`` = 0..n-1 in each
    record) it adds ``accuracy_<mode>_std``, the population standard deviation of the n
    sample sets' accuracies, and ``maj@<n>_<mode>`` (:func:`majority_accuracy`).
    """
    n = len(samples)
    if n == 0:
        return {"n": 0, "protocol": protocol, "samples_per_problem": samples_per_problem}
    tokens = [s["n_tokens"] for s in samples]
    markers = list(samples[0].get("reflection", {}))
    summary: dict[str, Any] = {"n": len({s["id"] for s in samples}), "n_samples": n, "protocol": protocol,
                               "samples_per_problem": samples_per_problem}
    for mode in modes:
        summary[f"accuracy_{mode}"] = sum(bool(s[f"correct_{mode}"]) for s in samples) / n
        if samples_per_problem > 1:
            summary[f"accuracy_{mode}_std"] = statistics.pstdev(sample_set_accuracies(samples, mode))
            summary[f"maj@{samples_per_problem}_{mode}"] = majority_accuracy(samples, mode)
    summary.update({
        "mean_tokens": statistics.fmean(tokens),
        "median_tokens": statistics.median(tokens),
        "max_tokens": max(tokens),
        "truncation_rate": sum(s["finish_reason"] == "length" for s in samples) / n,
        "reflection_per_response": statistics.fmean(s["reflection_total"] for s in samples),
        "reflection_by_marker": {m: statistics.fmean(s["reflection"][m] for s in samples) for m in markers},
    })
    return summary


def sample_set_accuracies(samples: Sequence[dict[str, Any]], mode: str) -> list[float]:
    """Accuracy of each sample set k (every problem's k-th sample), in order of k.

    >>> sample_set_accuracies([{"sample": 0, "correct_x": True}, {"sample": 1, "correct_x": False},
    ...                        {"sample": 0, "correct_x": True}, {"sample": 1, "correct_x": True}], "x")
    [1.0, 0.5]
    """
    sets: dict[int, list[bool]] = {}
    for s in samples:
        sets.setdefault(s.get("sample", 0), []).append(bool(s[f"correct_{mode}"]))
    return [sum(v) / len(v) for _, v in sorted(sets.items())]


def majority_accuracy(samples: Sequence[dict[str, Any]], mode: str) -> float:
    """maj@n: the share of problems whose most frequent extracted answer is correct.

    Answers are grouped by :func:`micota.grade.normalize.normalize_answer` of ``extracted_<mode>``
    — a canonical surface form, not the robust grader's equivalence: grouping by equivalence
    needs up to n² symbolic comparisons per problem, each with a time limit, and equivalence with
    tolerances is not transitive, so groups would depend on the order of samples. Samples
    without an answer do not vote; a tie goes to the answer seen first (lowest sample index);
    the group's verdict is its first sample's ``correct_<mode>``.

    >>> majority_accuracy([{"id": "a", "sample": 0, "extracted_x": "2", "correct_x": False},
    ...                    {"id": "a", "sample": 1, "extracted_x": "3", "correct_x": True},
    ...                    {"id": "a", "sample": 2, "extracted_x": "$3$", "correct_x": True}], "x")
    1.0
    """
    from micota.grade.normalize import normalize_answer

    problems: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        problems.setdefault(s["id"], []).append(s)
    correct = 0
    for group in problems.values():
        votes: dict[str, list[dict[str, Any]]] = {}
        for s in sorted(group, key=lambda s: s.get("sample", 0)):
            answer = s.get(f"extracted_{mode}")
            if answer is not None:
                votes.setdefault(normalize_answer(str(answer)), []).append(s)
        if votes:
            winner = max(votes.values(), key=len)  # max keeps the first of equal counts: the earliest answer
            correct += bool(winner[0][f"correct_{mode}"])
    return correct / len(problems) if problems else 0.0
