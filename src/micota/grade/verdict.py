"""The result of grading one response, shared by every grading mode."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verdict:
    """The grade of one response: whether it is correct, what answer it stated, and why."""

    correct: bool
    extracted: str | None
    reason: str
