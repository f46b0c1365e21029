"""Prompt templates as files under ``micota/_data/prompts/``.

A template holds one ``{problem}`` placeholder. It is filled with ``str.replace`` rather
than ``str.format`` because math prompts are full of literal braces (``\\boxed{}``).
"""

from __future__ import annotations

import difflib
import hashlib
from functools import lru_cache
from importlib import resources

from micota.errors import MicotaError

PLACEHOLDER = "{problem}"


def available_prompts() -> list[str]:
    """Names of the shipped templates (file names without ``.txt``)."""
    folder = resources.files("micota") / "_data" / "prompts"
    return sorted(p.name[: -len(".txt")] for p in folder.iterdir() if p.name.endswith(".txt"))


@lru_cache(maxsize=None)
def load_prompt_template(name: str) -> str:
    """The raw text of template ``name``; unknown names list the available ones."""
    path = resources.files("micota") / "_data" / "prompts" / f"{name}.txt"
    if not path.is_file():
        known = available_prompts()
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise MicotaError(f"prompt template {name!r} not found.{hint} Available: {', '.join(known)}.")
    text = path.read_text(encoding="utf-8")
    if PLACEHOLDER not in text:
        raise MicotaError(f"prompt template {path} has no {PLACEHOLDER} placeholder; add one where the problem goes.")
    return text


def render_prompt(name: str, problem: str) -> str:
    """Fill template ``name`` with ``problem``.

    >>> render_prompt("micota_generation", "What is 1+1?").splitlines()[0]
    'What is 1+1?'
    """
    return load_prompt_template(name).replace(PLACEHOLDER, problem)


def prompt_sha256(name: str) -> str:
    """Hash of a template's text: recorded with every evaluation so a changed prompt is visible."""
    return hashlib.sha256(load_prompt_template(name).encode()).hexdigest()
