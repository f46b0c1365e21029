"""``grade(gold, response)``: the one function the filter stage and evaluation call.

Grading modes are rows of :data:`MODES`: ``robust`` (micota's grader) and ``paper`` (the papers'
lm-eval harness, :mod:`micota.grade.paper`). Light to import (no sympy) and fast for plain
numbers; symbolic work happens only when the cheap layers cannot decide, in a child process with
a hard deadline.
"""

from __future__ import annotations

import math
import re
from typing import Sequence, Union

from micota.grade.equivalence import Deadline, is_equivalent, prepare, split_top_level
from micota.grade.extract import boxes_on_last_line, extract_answer
from micota.grade.paper import grade_paper
from micota.grade.symbolic import prestart
from micota.grade.verdict import Verdict

Gold = Union[str, float, int, Sequence[str]]
MODES = ("robust", "paper")
# Bump when a change to extraction or equivalence can change a verdict: every manifest records it
# (micota.manifest.package_versions), so two scores are comparable only under the same number.
GRADER_VERSION = 1
DEFAULT_TIME_LIMIT_S = 2.0
KNOWN_BENCHMARKS = ("aime24", "amc23", "olympiadbench", "math500", "gsm8k", "lab")
_PLAIN_INT = re.compile(r"[+-]?\d{1,30}")


def gold_text(gold: Gold, mode: str = "robust") -> str:
    """A gold as a string: AMC floats ``27.0`` -> ``27``; OlympiadBench ``["$a$", "$b$"]`` -> ``a, b``.

    In ``paper`` mode a gold is read as the papers' harness reads it: a float by ``str()``
    (``27.0``) and a list by its first item as stored (OlympiadBench ``final_answer[0]``).

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
        if mode == "paper":
            return gold_text(gold[0], mode) if gold else ""
        parts = [gold_text(part, mode) for part in gold]
        return ", ".join(re.sub(r"(?<!\\)\$", "", part).strip() for part in parts)  # "$a$,$b$" -> "a,b"
    return "" if gold is None else str(gold)


def grade(gold: Gold, response: str, *, benchmark: str | None = None, mode: str = "robust",
          time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> Verdict:
    """Whether ``response`` states ``gold`` as its final answer.

    ``mode="robust"`` (default) applies micota's equivalence rules. ``mode="paper"`` scores as the
    papers' lm-eval tasks do for ``benchmark`` (:mod:`micota.grade.paper`); pass it the gold
    those tasks read (``Problem.metadata["gold_paper"]``). Never raises on model text: bad input
    gives ``correct=False`` with a reason.

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
            return grade_paper(None if gold is None else gold_text(gold, "paper"), response, benchmark)
        return _grade_robust(gold_text(gold), response, benchmark, time_limit_s)
    except (RecursionError, MemoryError, ValueError, OverflowError) as exc:
        return Verdict(False, None, f"could not grade: {type(exc).__name__}")


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
