"""``rule`` mode: the classic MATH grader (Hendrycks et al. 2021, ``strip_string`` + exact match).

This reproduces the scores the MiCoTA and Small-Model-Gap papers published, faults included
(issue 3, "Two modes"): a float gold ``27.0`` never matches ``27`` and a ``$2$`` gold never
matches ``2``. Written from the published description of the normaliser, step by step.
"""

from __future__ import annotations

import re


def _fix_fracs(text: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{72}`` -> ``\\frac{1}{72}``."""
    head, *parts = text.split("\\frac")
    out = head
    for part in parts:
        out += "\\frac"
        if part.startswith("{") or len(part) < 2:
            out += part
            continue
        first, second, rest = part[0], part[1], part[2:]
        out += "{" + first + "}" + (second + rest if second == "{" else "{" + second + "}" + rest)
    return out


def _fix_a_slash_b(text: str) -> str:
    """``3/4`` (two integers only) -> ``\\frac{3}{4}``."""
    match = re.fullmatch(r"(-?\d+)/(-?\d+)", text)
    return f"\\frac{{{int(match.group(1))}}}{{{int(match.group(2))}}}" if match else text


def _fix_sqrt(text: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}`` (one following character gets braces)."""
    return re.sub(r"\\sqrt(?!\{)(\w)", r"\\sqrt{\1}", text)


def _remove_right_units(text: str) -> str:
    """Drop a trailing ``\\text{ units}`` (the classic rule splits on ``"\\text{ "``)."""
    return text.split("\\text{ ")[0] if "\\text{ " in text else text


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
    text = text.replace("\\%", "").replace("%", "")
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
    except Exception:  # noqa: BLE001 - the classic grader compares raw strings when stripping fails
        return gold == answer
