"""Prompt sets (problem + gold answer) and prompt templates stored as files."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from micota.errors import MicotaError
from micota.jsonl import iter_jsonl

_PROBLEM_FIELDS = ("problem", "question")


@dataclass(frozen=True)
class Prompt:
    id: str
    problem: str
    answer: str


def load_prompts(path: str | Path) -> list[Prompt]:
    """Read a JSONL prompt set; ids default to a hash of the problem text (stable across files)."""
    prompts = []
    for number, record in iter_jsonl(path):
        problem = next((record[f] for f in _PROBLEM_FIELDS if f in record), None)
        if not isinstance(problem, str) or "answer" not in record:
            raise MicotaError(
                f"{path}:{number}: a prompt needs a text field `problem` (or `question`) and an `answer`; "
                f"found fields {sorted(record)}."
            )
        pid = str(record.get("id", "")) or hashlib.sha256(problem.encode()).hexdigest()[:16]
        prompts.append(Prompt(id=pid, problem=problem, answer=_answer_text(record["answer"])))
    seen: set[str] = set()
    for p in prompts:
        if p.id in seen:
            raise MicotaError(f"{path}: prompt id {p.id!r} occurs twice; ids must be unique.")
        seen.add(p.id)
    return prompts


def render_prompt(template: str, problem: str) -> str:
    """Fill a template file from micota/_data/prompts/ with the problem text."""
    source = resources.files("micota") / "_data" / "prompts" / f"{template}.txt"
    if not source.is_file():
        raise MicotaError(f"prompt_template: no template named {template!r} in micota/_data/prompts/.")
    return source.read_text(encoding="utf-8").replace("{problem}", problem)


def _answer_text(answer: object) -> str:
    # GSM8K-style answers carry the solution; the gold is after the last '####'.
    text = str(answer)
    return text.rsplit("####", 1)[1].strip() if "####" in text else text
