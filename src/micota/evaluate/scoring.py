"""Scoring modes as rows of a table: which grader decides a sample, against which gold.

* ``robust`` — micota's grader (:mod:`micota.grade`, mode ``robust``) against the gold as the
  file stores it (it normalises AMC's ``27.0`` and OlympiadBench's ``$…$`` lists itself). The headline.
* ``paper`` — the papers' harness (mode ``paper``) against the gold as the papers' lm-eval tasks
  read it (``Problem.metadata["gold_paper"]`` when the benchmark row provides it: MATH-500's
  last ``\\boxed{}`` of ``solution``, OlympiadBench's ``final_answer[0]``; else the stored gold).
* ``judge`` — the Mix-Distillation LLM-judge second stage over ``paper``'s failures
  (:mod:`micota.evaluate.judge`); it has no grader of its own here.

Each mode writes ``correct_<mode>``, ``extracted_<mode>`` and ``reason_<mode>`` per sample and
``accuracy_<mode>`` per model × benchmark.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from micota.data import Problem


def gold_stored(problem: Problem) -> Any:
    """The gold as the benchmark file stores it (AMC ``27.0``, OlympiadBench's list)."""
    return problem.metadata.get("gold_raw", problem.answer)


def gold_paper(problem: Problem) -> Any:
    """The gold as the papers' harness reads it, falling back to the stored gold."""
    return problem.metadata.get("gold_paper", gold_stored(problem))


@dataclass(frozen=True)
class Scoring:
    """One scoring mode: the micota.grade mode it runs (None: a second stage) and its gold."""

    name: str
    grade_mode: Optional[str]
    gold: Callable[[Problem], Any]
    doc: str


SCORINGS: dict[str, Scoring] = {
    s.name: s
    for s in (
        Scoring("robust", "robust", gold_stored, "micota's grader: normalisation + math-verify equivalence"),
        Scoring("paper", "paper", gold_paper, "the papers' lm-eval harness rules, bit for bit"),
        Scoring("judge", None, gold_stored, "Mix-Distillation LLM judge over paper failures with a boxed answer"),
    )
}


def grade_modes(problems: Sequence[Problem], responses: Sequence[str], benchmark: str, modes: Sequence[str],
                *, workers: Optional[int] = None) -> dict[str, list[Any]]:
    """The :class:`micota.grade.Verdict` of every response in each grader mode among ``modes``.

    ``problems[i]`` is the problem ``responses[i]`` answers (a problem repeats once per sample).
    """
    from micota.grade import grade_many

    verdicts: dict[str, list[Any]] = {}
    for name in modes:
        row = SCORINGS[name]
        if row.grade_mode is None:
            continue
        pairs = [(row.gold(problem), response) for problem, response in zip(problems, responses)]
        verdicts[name] = grade_many(pairs, benchmark=benchmark, mode=row.grade_mode, workers=workers)
    return verdicts
