"""The micro-lab's synthetic task: short chains of single-digit arithmetic modulo 10.

A problem reads ``Compute 3+5*2-7 mod 10, left to right.``: start at the first digit and
apply each operation in turn, reducing modulo 10 after every step. The answer is one digit,
unique and checkable. Difficulty is the chain length (number of operations).

Why this task: a probe found 0.3-3M-parameter models learn the CoT
*format* in ~100 steps but learn arithmetic facts slowly. Here the whole world has at most
300 facts (10 x 10 digits x 3 ops), so tiny models learn the facts in a minute, while a
*direct* answer to a chain still needs several facts composed in one forward pass - so
chain-of-thought genuinely helps, as in the paper.

Solutions come in three styles (``direct``, ``short``, ``long``); ``long`` re-checks each
step with an inverse operation and the whole chain at the end, using the reflection words
the paper counts ("Wait", "Hmm", "Let me check"). :func:`wrong_solution` makes one
plausible slip that propagates, so the correctness filter has real work.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Literal

Style = Literal["direct", "short", "long"]
STYLES: tuple[Style, ...] = ("direct", "short", "long")
MODULUS = 10
OPS = "+-*"
# The user turn everywhere in micota (the MiCoTA generation prompt).

_PROBLEM_RE = re.compile(r"Compute (\d(?:[+\-*]\d)+) mod 10, left to right\.")


@dataclass(frozen=True)
class Problem:
    """One chain: a start digit and ``(op, digit)`` steps. ``difficulty`` = number of steps."""

    start: int
    steps: tuple[tuple[str, int], ...]

    @property
    def text(self) -> str:
        chain = str(self.start) + "".join(f"{op}{d}" for op, d in self.steps)
        return f"Compute {chain} mod 10, left to right."

    @property
    def difficulty(self) -> int:
        return len(self.steps)

    @property
    def id(self) -> str:
        return "lab-" + problem_hash(self.text)[:12]


def problem_hash(text: str) -> str:
    """sha256 hex of the problem text: the basis of ids and of the train/eval split."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_eval(text: str, eval_percent: int = 20) -> bool:
    """True when the problem belongs to the held-out split (stable across runs and seeds).

    >>> is_eval("Compute 1+1 mod 10, left to right.", 0)
    False
    """
    return int(problem_hash(text)[:8], 16) % 100 < eval_percent


def apply_op(value: int, op: str, digit: int) -> int:
    """One step modulo 10.

    >>> apply_op(6, "-", 7)
    9
    """
    if op == "+":
        return (value + digit) % MODULUS
    if op == "-":
        return (value - digit) % MODULUS
    if op == "*":
        return (value * digit) % MODULUS
    raise ValueError(f"unknown operation {op!r}; use one of {OPS}")


def intermediate_values(problem: Problem) -> list[int]:
    """The running value after each step (last item is the answer)."""
    values, value = [], problem.start
    for op, digit in problem.steps:
        value = apply_op(value, op, digit)
        values.append(value)
    return values


def solve(problem: Problem) -> int:
    """The unique answer.

    >>> solve(parse_problem("Compute 3+5*2-7 mod 10, left to right."))
    9
    """
    return intermediate_values(problem)[-1]


def parse_problem(text: str) -> Problem | None:
    """Find a lab problem in ``text`` (which may be a longer prompt); None if there is none."""
    match = _PROBLEM_RE.search(text)
    if match is None:
        return None
    chain = match.group(1)
    steps = tuple((chain[i], int(chain[i + 1])) for i in range(1, len(chain), 2))
    return Problem(start=int(chain[0]), steps=steps)


def random_problem(rng: random.Random, difficulty: int, ops: str = OPS) -> Problem:
    """A uniformly random chain with ``difficulty`` steps drawn from ``ops``."""
    steps = tuple((rng.choice(ops), rng.randrange(MODULUS)) for _ in range(difficulty))
    return Problem(start=rng.randrange(MODULUS), steps=steps)


def make_problems(
    n: int,
    *,
    seed: int,
    split: Literal["train", "eval"],
    min_difficulty: int = 2,
    max_difficulty: int = 4,
    ops: str = OPS,
    eval_percent: int = 20,
    exclude: set[str] | frozenset[str] = frozenset(),
) -> list[Problem]:
    """``n`` distinct problems of the split, difficulties cycling evenly over the range.

    A difficulty whose problems run out (e.g. the 200 one-step ``+-`` chains) leaves the
    rotation, so the rest is filled with longer chains. Problems whose text is in
    ``exclude`` are skipped (so two sets can be made disjoint).
    """
    if not 0 < eval_percent < 100:
        raise ValueError(f"eval_percent must be in 1..99, got {eval_percent}")
    rng = random.Random(f"{seed}-{split}")
    want_eval = split == "eval"
    seen: set[str] = set(exclude)
    problems: list[Problem] = []
    levels = list(range(min_difficulty, max_difficulty + 1))
    misses = dict.fromkeys(levels, 0)  # consecutive failed draws per difficulty
    while len(problems) < n:
        if not levels:
            raise ValueError(f"could not find {n} distinct {split} problems with difficulty "
                             f"{min_difficulty}..{max_difficulty} and ops {ops!r} (found {len(problems)})")
        level = levels[len(problems) % len(levels)]
        problem = random_problem(rng, level, ops)
        if problem.text in seen or is_eval(problem.text, eval_percent) != want_eval:
            misses[level] += 1
            if misses[level] > 2000:  # this difficulty is (practically) exhausted
                levels.remove(level)
            continue
        misses[level] = 0
        seen.add(problem.text)
        problems.append(problem)
    return problems


def format_user_turn(problem_text: str, template: str = "micota_generation") -> str:
    """The user turn for a problem: a prompt template from micota/_data/prompts/ filled with it."""
    from micota.data import render_prompt

    return render_prompt(template, problem_text)


def problem_record(problem: Problem) -> dict[str, object]:
    """The JSONL row of a prompt set / benchmark (``answer`` is a string, as in MATH)."""
    return {"id": problem.id, "problem": problem.text, "answer": str(solve(problem)), "difficulty": problem.difficulty}
