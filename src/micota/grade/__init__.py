"""Answer grading: extract a response's final answer and decide whether it equals the gold.

Two modes: ``robust`` (micota's grader, the headline score) and ``paper`` (the papers' lm-eval
harness task by task, :mod:`micota.grade.paper`).

>>> from micota.grade import grade
>>> grade("27.0", "The answer is $\\\\boxed{27}$").correct
True

Importing this package is cheap (no sympy); symbolic comparison starts a child process on demand.
"""

from micota.grade.batch import grade_many
from micota.grade.extract import extract_answer
from micota.grade.grader import MODES, gold_text, grade
from micota.grade.verdict import Verdict

__all__ = ["MODES", "Verdict", "extract_answer", "gold_text", "grade", "grade_many"]
