"""Solutions to lab problems in three styles, right or with one propagated slip.

* ``direct`` - just ``\\boxed{N}`` (what a small "instruct" model answers).
* ``short``  - one line per step, then the box (short CoT; the paper's small-teacher data).
* ``long``   - every step re-checked with an inverse operation ("Wait, let me verify ...",
  "Hmm, let me check ...") and a closing "Hmm, every step checks out" before the box: the
  strong teacher's long CoT with the reflection words the paper counts (Wait, Hmm). It opens exactly
  as ``short`` does, so a model that knows both styles chooses between them after its first
  step, where the choice depends on the problem, not at a fixed first token that every
  problem shares (which makes a pre/post-SFT merge switch all answers at once).

Every style ends in ``\\boxed{N}``.
"""

from __future__ import annotations

import random

from micota.lab.task import MODULUS, Problem, Style, apply_op, intermediate_values, solve

_INVERSE = {"+": "-", "-": "+"}


def write_solution(problem: Problem, style: Style) -> str:
    """The correct solution in ``style``.

    >>> from micota.lab.task import parse_problem
    >>> write_solution(parse_problem("Compute 3+5*2 mod 10, left to right."), "short")
    'Start with 3.\\n3+5=8.\\n8*2=6.\\nThe answer is \\\\boxed{6}.'
    """
    return _render(problem, intermediate_values(problem), style)


def wrong_solution(problem: Problem, style: Style, rng: random.Random) -> str:
    """A solution with one plausible slip (a step off by a few) carried through to a wrong box."""
    values = _slipped_values(problem, rng)
    return _render(problem, values, style)


def _slipped_values(problem: Problem, rng: random.Random) -> list[int]:
    """Running values where one step is wrong and later steps are computed from the wrong value.

    A later ``*0`` (or ``*5``) can absorb a slip; then the slip moves to the last step, so
    the final answer always differs from the true one.
    """
    truth = solve(problem)
    index = rng.randrange(problem.difficulty)
    delta = rng.choice([1, 2, 8, 9])  # off by one or two: the typical human/LLM slip
    values = _values_with_slip(problem, index, delta)
    if values[-1] == truth:
        values = _values_with_slip(problem, problem.difficulty - 1, delta)
    return values


def _values_with_slip(problem: Problem, index: int, delta: int) -> list[int]:
    values, value = [], problem.start
    for i, (op, digit) in enumerate(problem.steps):
        value = apply_op(value, op, digit)
        if i == index:
            value = (value + delta) % MODULUS
        values.append(value)
    return values


def _render(problem: Problem, values: list[int], style: Style) -> str:
    answer = values[-1]
    if style == "direct":
        return f"\\boxed{{{answer}}}"
    lines = [_step(before, op, digit, after) for before, (op, digit), after in _transitions(problem, values)]
    if style == "short":
        # Opening with a fixed phrase (not a digit) keeps greedy decoding of a model trained on a
        # mix of direct and short answers from collapsing onto the direct answer's "\boxed" token.
        return "\n".join([f"Start with {problem.start}."] + lines + [f"The answer is \\boxed{{{answer}}}."])
    if style != "long":
        raise ValueError(f"unknown style {style!r}; use direct, short or long")
    body = [f"Start with {problem.start}."]
    for before, (op, digit), after in _transitions(problem, values):
        body.append(_step(before, op, digit, after) + " " + _verification(before, op, digit, after))
    # No re-run of the whole chain at the end: re-reading every operand from the prompt after
    # ~100 tokens was where every lab model, the TA included, went wrong (docs/benchmarks.md).
    body.append(f"Hmm, every step checks out, I get {answer}.")
    body.append(f"So the answer is \\boxed{{{answer}}}.")
    return "\n".join(body)


def fact_tables(n_documents: int, facts_per_document: int, ops: str, seed: int) -> list[str]:
    """Plain-text pages of arithmetic facts, one ``a op b = c.`` per line in the lab's step format.

    The lab's stand-in for pretraining text: every fact of the world (``ops`` x 10 x 10) appears
    equally often, in a random order per page, so the base models meet each fact at ~6 tokens a
    fact instead of ~25 inside a chat.

    >>> fact_tables(1, 2, "+", seed=0)[0].count(chr(10))
    2
    """
    facts = [_step(a, op, b, apply_op(a, op, b)) for op in ops for a in range(MODULUS) for b in range(MODULUS)]
    rng, pages, pool = random.Random(f"{seed}-facts"), [], []
    for _ in range(n_documents):
        lines = []
        while len(lines) < facts_per_document:
            if not pool:
                pool = facts[:]
                rng.shuffle(pool)
            lines.append(pool.pop())
        pages.append("\n".join(lines) + "\n")
    return pages


def _transitions(problem: Problem, values: list[int]):
    befores = [problem.start] + values[:-1]
    return zip(befores, problem.steps, values)


def _step(before: int, op: str, digit: int, after: int) -> str:
    return f"{before}{op}{digit}={after}."


def _verification(before: int, op: str, digit: int, after: int) -> str:
    """Re-check one step: undo + and - with the inverse; re-multiply * the other way round.

    The check states the value the writer believes (so a slipped step's check repeats the
    slip, as a real model's confirmation bias would), and ends on the running value: the next
    step starts from the last number written, as in short CoT (a check ending on ``before``
    put the wrong number nearest the next step, and every lab model copied it).

    >>> _verification(8, "+", 5, 3)
    'Wait, let me verify: 3-5=8. Yes, 3.'
    """
    if op in _INVERSE:
        return f"Wait, let me verify: {after}{_INVERSE[op]}{digit}={before}. Yes, {after}."
    return f"Hmm, let me check: {digit}*{before}={after}. Yes, {after}."
