"""``strip_string``: the MATH answer normaliser of Hendrycks et al. (2021), one part of ``paper`` mode.

The papers' lm-eval tasks (Small-Model-Learnability-Gap, ``lm_eval/tasks/{AIME,AMC,Olympiad,
hendrycks_math_500}/utils.py``) each carry a copy of lm-eval's ``hendrycks_math`` normaliser.
This module is that normaliser rewritten step by step from those files, including the inputs
on which it raises: the tasks' ``is_equiv`` catches any exception and then compares the raw
strings, so *where* it raises changes scores (``x/2`` raises in ``fix_a_slash_b``; a string
ending in ``\\sqrt`` raises in ``fix_sqrt``; two ``\\text{ `` groups fail an assert).

On its own this is not the papers' score: the boxed extraction, the gold fields, the
leading-zero rule and GSM8K's regex filter live in :mod:`micota.grade.paper` and its parts.

>>> strip_string("\\\\dfrac12")
'\\\\frac{1}{2}'
>>> strip_string("x = 0.5")
'\\\\frac{1}{2}'
"""

from __future__ import annotations


class StripError(ValueError):
    """``strip_string`` raised on this input in the original (its caller then compares raw text)."""


def _fix_fracs(text: str) -> str:
    """``\\frac12`` -> ``\\frac{1}{2}``, ``\\frac1{72}`` -> ``\\frac{1}{72}``.

    As in the original: a ``\\frac`` with nothing after it raises, and a one-character remainder
    returns the whole input unchanged (earlier fixes in the same string are dropped too).
    """
    head, *parts = text.split("\\frac")
    out = head
    for part in parts:
        out += "\\frac"
        if not part:
            raise StripError("\\frac at the end of the answer (fix_fracs indexes an empty string)")
        if part[0] == "{":
            out += part
            continue
        if len(part) < 2:
            return text
        first, second, rest = part[0], part[1], part[2:]
        out += "{" + first + "}" + (second + rest if second == "{" else "{" + second + "}" + rest)
    return out


def _fix_a_slash_b(text: str) -> str:
    """``3/4`` -> ``\\frac{3}{4}`` when both sides read as ``int`` and print back the same.

    One ``/`` with a side that ``int()`` rejects (``x/2``, ``/4``) raises, as in the original,
    whose ``except AssertionError`` does not catch ``int()``'s ``ValueError``.
    """
    parts = text.split("/")
    if len(parts) != 2:
        return text
    try:
        num, den = int(parts[0]), int(parts[1])
    except ValueError:
        raise StripError("a/b with a non-integer side (fix_a_slash_b lets int() raise)") from None
    return f"\\frac{{{num}}}{{{den}}}" if text == f"{num}/{den}" else text


def _fix_sqrt(text: str) -> str:
    """``\\sqrt3`` -> ``\\sqrt{3}``; a ``\\sqrt`` with nothing after it raises (as the original)."""
    if "\\sqrt" not in text:
        return text
    head, *parts = text.split("\\sqrt")
    out = head
    for part in parts:
        if not part:
            raise StripError("\\sqrt with nothing after it (fix_sqrt indexes an empty string)")
        out += "\\sqrt" + (part if part[0] == "{" else "{" + part[0] + "}" + part[1:])
    return out


def _remove_right_units(text: str) -> str:
    """Drop a trailing ``\\text{ units}``; two such groups fail the original's assert."""
    if "\\text{ " not in text:
        return text
    parts = text.split("\\text{ ")
    if len(parts) != 2:
        raise StripError("several '\\text{ ' groups (remove_right_units asserts one)")
    return parts[0]


def strip_string(text: str) -> str:
    """The MATH normaliser: spacing, ``\\left``/``\\right``, units, ``\\$``, ``%``, fractions.

    Raises :class:`StripError` exactly where the original raises.
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
    if len(sides) == 2 and len(sides[0]) <= 2:  # "k = 3" -> "3"
        text = sides[1]
    text = _fix_sqrt(text)
    text = text.replace(" ", "")
    text = _fix_fracs(text)
    if text == "0.5":
        text = "\\frac{1}{2}"
    return _fix_a_slash_b(text)
