"""``paper`` mode: the papers' rule-based score, task by task, as their lm-eval harness computes it.

MiCoTA (arXiv 2507.01887) reports exact match from the lm-eval tasks of Small-Model-Learnability-
Gap ("Small Models Struggle to Learn from Strong Reasoners"); its README runs ``--tasks
gsm8k_zero,AMC,AIME,Olympiad,hendrycks_math_500``. Each task is a row of :data:`PAPER_TASKS`:
the gold field ``process_results`` reads, the ``until`` stop strings generation obeyed, how the
answer is extracted, and how it is compared. The rows follow the files under
``lm-evaluation-harness/lm_eval/tasks/`` of that repository (upstream paths in ``source``).

Not a better grader: it is the papers' one, faults included, so micota's numbers can be set
beside theirs. ``robust`` mode is the headline; docs/benchmarks.md ("Grading") counts where the
two disagree and why.

>>> grade_paper("27.0", "Final Answer: \\\\boxed{27}", "amc23").correct
True
>>> grade_paper("$\\\\frac{1}{2}$", "Final Answer: \\\\boxed{\\\\frac{1}{2}}", "olympiadbench").correct
False
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

from micota.grade.paper_extract import (GSM8K_FALLBACK, HarnessError, boxed_answer, cut_at_stop,
                                        flexible_extract)
from micota.grade.paper_match import exact_match, is_equiv
from micota.grade.verdict import Verdict

UPSTREAM = "Small-Model-Gap/Small-Model-Learnability-Gap, lm-evaluation-harness/lm_eval/tasks/"
MATH_STOP = ("Problem:",)  # AIME/AMC/Olympiad/hendrycks_math_500 .yaml: generation_kwargs.until
GSM8K_STOP = ("Q:", "</s>", "<|im_end|>", "<|eot_id|>", "<|start_header_id|>user<|end_header_id|>")


def _solution_box(row: dict[str, Any]) -> str | None:
    """MATH-500's gold: the last box of ``solution`` (None when it has none: nothing can match)."""
    return boxed_answer(row["solution"])


@dataclass(frozen=True)
class PaperTask:
    """One lm-eval task of the papers' harness."""

    task: str  # lm-eval task name
    source: str  # file under UPSTREAM holding process_results / the filter
    gold: Callable[[dict[str, Any]], Any]  # benchmark row -> the value process_results compares with
    stop: tuple[str, ...]  # generation stopped before the first of these
    extract: Callable[[str], str | None]  # response -> answer (may raise HarnessError)
    equal: Callable[[str, str], bool]  # (answer, gold) -> correct
    compares: str  # what `equal` does, for the verdict's reason


_ZEROS = partial(is_equiv, leading_zeros=True)
_PLAIN = partial(is_equiv, leading_zeros=False)
_ZEROS_TEXT = "is_equiv: lstrip('0'), all-zero decimals dropped, strip_string, exact match"
_PLAIN_TEXT = "is_equiv: strip_string, exact match"

PAPER_TASKS: dict[str, PaperTask] = {
    "aime24": PaperTask("AIME", "AIME/utils.py", lambda row: row["answer"], MATH_STOP, boxed_answer, _ZEROS,
                        _ZEROS_TEXT),
    "amc23": PaperTask("AMC", "AMC/utils.py", lambda row: str(row["answer"]), MATH_STOP, boxed_answer, _ZEROS,
                       _ZEROS_TEXT),  # str(27.0) == "27.0": a float gold read as text
    "olympiadbench": PaperTask("Olympiad", "Olympiad/utils.py", lambda row: row["final_answer"][0], MATH_STOP,
                               boxed_answer, _ZEROS, _ZEROS_TEXT),  # "$69$,$84$" kept as stored
    "math500": PaperTask("hendrycks_math_500", "hendrycks_math_500/utils.py", _solution_box, MATH_STOP,
                         boxed_answer, _PLAIN, _PLAIN_TEXT),
    "gsm8k": PaperTask("gsm8k_cot_zeroshot", "gsm8k/gsm8k-cot-zeroshot.yaml", lambda row: row["answer"],
                       GSM8K_STOP, flexible_extract, exact_match,
                       "flexible-extract, exact_match ignoring ',', '$', '.*#### ', a final '.', case"),
}
# Any other benchmark (the lab task, a user's file): the classic MATH rule, with no stop string.
CLASSIC = PaperTask("hendrycks_math", "hendrycks_math/utils.py", lambda row: row["answer"], (), boxed_answer,
                    _PLAIN, _PLAIN_TEXT)


def paper_task(benchmark: str | None) -> PaperTask:
    """The row that scores ``benchmark`` (:data:`CLASSIC` for any benchmark the papers did not use)."""
    return PAPER_TASKS.get(benchmark or "", CLASSIC)


def paper_gold(benchmark: str, row: dict[str, Any]) -> Any:
    """The gold the papers' harness compares with, read from a benchmark row as stored.

    >>> paper_gold("amc23", {"answer": 27.0}), paper_gold("olympiadbench", {"final_answer": ["$5$"]})
    ('27.0', '$5$')
    """
    return paper_task(benchmark).gold(row)


def grade_paper(gold: str | None, response: str, benchmark: str | None) -> Verdict:
    """The papers' verdict on ``response`` for a gold read by :func:`paper_gold`.

    A response on which the harness itself raises (an ``assert`` in ``remove_boxed``; its run
    would stop) is graded incorrect with that reason.
    """
    task = paper_task(benchmark)
    text = cut_at_stop(response, task.stop)
    try:
        answer = task.extract(text)
    except HarnessError as exc:
        return Verdict(False, None, f"{task.task}: the papers' harness raises here ({exc})")
    if answer is None or (task.extract is flexible_extract and answer == GSM8K_FALLBACK):
        return Verdict(False, None, _no_answer_reason(task, text, response))
    if gold is None:
        return Verdict(False, answer, f"{task.task}: the gold field holds no answer (e.g. a solution without a box)")
    same = task.equal(answer, gold)
    return Verdict(same, answer, f"{task.task} {'match' if same else 'no match'} ({task.compares})")


def _no_answer_reason(task: PaperTask, text: str, response: str) -> str:
    what = "no number" if task.extract is flexible_extract else "no \\boxed{} answer"
    if len(text) < len(response):
        stop = next(s for s in task.stop if response.startswith(s, len(text)))
        return f"{task.task}: {what} before the stop string {stop!r} (generation ends there)"
    return f"{task.task}: {what} in the response"
