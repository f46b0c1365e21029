"""``grade(gold, response)``: the one function the filter stage and evaluation call (issue 3).

Light to import (no sympy) and fast for plain numbers; symbolic work happens only when the
cheap layers cannot decide, in a child process with a hard deadline.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Sequence, Union

from micota.grade.equivalence import Deadline, is_equivalent, prepare, split_top_level
from micota.grade.extract import boxes_on_last_line, extract_answer
from micota.grade.rule import last_boxed_classic, rule_equal
from micota.grade.symbolic import prestart

Gold = Union[str, float, int, Sequence[str]]
MODES = ("robust", "paper")
# Bump when a change to extraction or equivalence can change a verdict: every manifest records it
# (micota.manifest.package_versions), so two scores are comparable only under the same number.
GRADER_VERSION = 1
DEFAULT_TIME_LIMIT_S = 2.0
KNOWN_BENCHMARKS = ("aime24", "amc23", "olympiadbench", "math500", "gsm8k", "lab")
_PLAIN_INT = re.compile(r"[+-]?\d{1,30}")


@dataclass(frozen=True)
class Verdict:
    """The grade of one response: whether it is correct, what answer it stated, and why."""

    correct: bool
    extracted: str | None
    reason: str


def gold_text(gold: Gold, mode: str = "robust") -> str:
    """A gold as a string: AMC floats ``27.0`` -> ``27``; OlympiadBench ``["$a$", "$b$"]`` -> ``a, b``.

    In ``paper`` mode the float keeps its classic ``str()`` form, as the published graders saw it.

    >>> gold_text(27.0), gold_text(["$\\\\frac{1}{2}$"]), gold_text(27.0, "paper")
    ('27', '\\\\frac{1}{2}', '27.0')
    """
    if isinstance(gold, bool):
        return str(gold)
    if isinstance(gold, float):
        if mode == "robust" and math.isfinite(gold) and gold == int(gold):
            return str(int(gold))
        return repr(gold) if mode == "robust" else str(gold)
    if isinstance(gold, int):
        return str(gold)
    if isinstance(gold, (list, tuple)):
        parts = [gold_text(part, mode) for part in gold]
        if mode == "paper":
            return parts[0] if len(parts) == 1 else ", ".join(parts)
        return ", ".join(re.sub(r"(?<!\\)\$", "", part).strip() for part in parts)  # "$a$,$b$" -> "a,b"
    return "" if gold is None else str(gold)


def grade(gold: Gold, response: str, *, benchmark: str | None = None, mode: str = "robust",
          time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> Verdict:
    """Whether ``response`` states ``gold`` as its final answer.

    ``mode="robust"`` (default) applies every equivalence rule of issue 3; ``mode="paper"`` is the
    classic MATH grader (last box, ``strip_string``, exact match) for paper-comparable scores.
    Never raises on model text: bad input gives ``correct=False`` with a reason.

    >>> grade("1/2", "So the answer is $\\\\boxed{0.5}$.").correct
    True
    >>> grade("1/7", "\\\\boxed{0.142857}").correct
    False
    """
    if mode not in MODES:
        raise ValueError(f"grade(mode={mode!r}) is not a grading mode; use one of {MODES}.")
    benchmark = benchmark if benchmark in KNOWN_BENCHMARKS else None
    if not isinstance(response, str):
        return Verdict(False, None, f"response is {type(response).__name__}, not text")
    try:
        if mode == "paper":
            return _grade_rule(gold_text(gold, "paper"), response)
        return _grade_robust(gold_text(gold), response, benchmark, time_limit_s)
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:
        return Verdict(False, None, f"could not grade: {type(exc).__name__}")


def _grade_rule(gold: str, response: str) -> Verdict:
    answer = last_boxed_classic(response)
    if answer is None:
        return Verdict(False, None, "no \\boxed{} answer found (paper mode)")
    same = rule_equal(gold, answer)
    return Verdict(same, answer, "exact match after strip_string" if same else "no exact match after strip_string")


def quick_verdict(gold: Gold, response: str, *, benchmark: str | None = None) -> Verdict | None:
    """The robust verdict when no symbolic work is needed (no answer, or two plain integers), else None.

    ``grade_many`` uses it to settle the common cases in-process before starting any workers.
    """
    if not isinstance(response, str):
        return None
    gold_str = gold_text(gold)
    answer = extract_answer(response, benchmark=benchmark if benchmark in KNOWN_BENCHMARKS else None)
    if answer is None:
        return Verdict(False, None, "no final answer found")
    if _PLAIN_INT.fullmatch(gold_str) and _PLAIN_INT.fullmatch(answer):  # the common case: no parsing at all
        same = int(gold_str) == int(answer)
        return Verdict(same, answer, "integers equal" if same else "integers differ")
    return None


def _grade_robust(gold: str, response: str, benchmark: str | None, time_limit_s: float) -> Verdict:
    deadline = Deadline(time_limit_s)
    quick = quick_verdict(gold, response, benchmark=benchmark)
    if quick is not None:
        return quick
    answer = extract_answer(response, benchmark=benchmark)
    if not gold.strip():
        return Verdict(False, answer, "gold answer is empty")
    prestart()  # the symbolic child warms in the background while the cheap layers run
    same, reason = is_equivalent(gold, answer, deadline)
    if not same and split_top_level(prepare(gold))[1:] and not split_top_level(prepare(answer))[1:]:
        boxes = boxes_on_last_line(response)  # several answers boxed one by one on the final line
        if len(boxes) > 1:
            joined = ", ".join(boxes)
            same, reason = is_equivalent(gold, joined, deadline)
            answer = joined if same else answer
    return Verdict(same, answer, reason)
