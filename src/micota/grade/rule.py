"""``rule`` mode: the classic MATH grader (Hendrycks et al. 2021, ``strip_string`` + exact match).

This reproduces the scores the MiCoTA and Small-Model-Gap papers published, faults included
(issue 3, "Two modes"): a float gold ``27.0`` never matches ``27`` and a ``$2$`` gold never
matches ``2``. Written from the published description of the normaliser, step by step.
"""

from __future__ import annotations

import re


def _fix_fracs(text: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{72}`` -> ``\\frac{1}{72}``.

    Like the original, an empty remainder after ``\\frac`` raises (the caller then compares raw
    strings) and a one-character remainder leaves the string unchanged.
    """
    head, *parts = text.split("\\frac")
    out = head
    for part in parts:
        out += "\\frac"
        if part[0] == "{":
            out += part
            continue
        if len(part) < 2:
            return text
        first, second, rest = part[0], part[1], part[2:]
        out += "{" + first + "}" + (second + rest if second == "{" else "{" + second + "}" + rest)
    return out


def _fix_a_slash_b(text: str) -> str:
    """``3/4`` (two plain integers, written canonically) -> ``\\frac{3}{4}``."""
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        num, den = int(parts[0]), int(parts[1])
    except ValueError:
        return text
    return f"\\frac{{{num}}}{{{den}}}" if text == f"{num}/{den}" else text


def _fix_sqrt(text: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}``: the one character after ``\\sqrt`` gets braces."""
    head, *parts = text.split("\\sqrt")
    out = head
    for part in parts:
        out += "\\sqrt" + (part if not part or part[0] == "{" else "{" + part[0] + "}" + part[1:])
    return out


def _remove_right_units(text: str) -> str:
    """Drop a trailing ``\\text{ units}`` (the original asserts there is only one)."""
    if "\\text{ " not in text:
        return text
    parts = text.split("\\text{ ")
    if len(parts) != 2:
        raise ValueError("several \\text{ } groups")
    return parts[0]


def last_boxed_classic(text: str) -> str | None:
    """The classic ``last_boxed_only_string`` + ``remove_boxed``: the last ``\\boxed`` (else
    ``\\fbox``) only; if that one is unclosed there is no answer (no fallback)."""
    if "\\boxed " in text:
        return text.split("\\boxed ")[-1].split("$")[0]
    start = text.rfind("\\boxed")
    if start < 0:
        start = text.rfind("\\fbox")
        if start < 0:
            return None
    depth = 0
    for i in range(start, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                boxed = text[start : i + 1]
                return boxed[len("\\boxed{"):-1] if boxed.startswith("\\boxed{") else None
    return None


def strip_string(text: str) -> str:
    """The MATH normaliser: spacing, ``\\left``/``\\right``, units, ``\\$``, ``%``, fractions.

    >>> strip_string("\\\\dfrac12")
    '\\\\frac{1}{2}'
    >>> strip_string("x = 0.5")
    '\\\\frac{1}{2}'
    """
    text = text.replace("\n", "").replace("\\!", "").replace("\\\\", "\\")
    text = text.replace("tfrac", "frac").replace("dfrac", "frac")
    text = text.replace("\\left", "").replace("\\right", "")
    text = text.replace("^{\\circ}", "").replace("^\\circ", "")
    text = text.replace("\\$", "")
    text = _remove_right_units(text)
    text = text.replace("\\%", "")
    text = text.replace(" .", " 0.").replace("{.", "{0.")
    if not text:
        return text
    if text[0] == ".":
        text = "0" + text
    sides = text.split("=")
    if len(sides) == 2 and len(sides[0]) <= 2:
        text = sides[1]
    text = _fix_sqrt(text)
    text = text.replace(" ", "")
    text = _fix_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_a_slash_b(text)


def rule_equal(gold: str, answer: str) -> bool:
    """Exact match of the two strings after :func:`strip_string` (falls back to raw equality)."""
    try:
        return strip_string(gold) == strip_string(answer)
    except (ValueError, IndexError):  # the classic grader compares raw strings when stripping fails
        return gold == answer
