"""Answer grading: extract a response's final answer and decide whether it equals the gold (issue 3).

>>> from micota.grade import grade
>>> grade("27.0", "The answer is $\\\\boxed{27}$").correct
True

Importing this package is cheap (no sympy); symbolic comparison starts a child process on demand.
"""

from micota.grade.batch import grade_many
from micota.grade.extract import extract_answer
from micota.grade.grader import Verdict, gold_text, grade

__all__ = ["Verdict", "extract_answer", "gold_text", "grade", "grade_many"]
