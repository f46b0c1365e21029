"""Fast path: read a plain number exactly (``fractions.Fraction``), with no symbolic algebra.

Covers most GSM8K / AIME / AMC answers, fast: integers with separators, decimals,
``a/b`` and ``\\frac{a}{b}``, mixed numbers, percentages, scientific notation. A decimal remembers
how many places it states, so a decimal *gold* can be compared at its own precision while a
rounded decimal *response* never equals an exact fraction (``0.142857`` is not ``1/7``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

MAX_DIGITS = 400  # longer numerals are refused: int() of 100k digits is slow and never a real answer
MAX_EXPONENT = 400  # |e| in 1.2e{e}; 10^{10^{10}} must never be materialised

_INT = r"[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)"
_DEC = rf"{_INT}(?:\.\d*)?|[+-]?\.\d+"
_DECIMAL = re.compile(rf"^({_DEC})$")
_SLASH = re.compile(rf"^({_INT})\s*/\s*({_INT})$")
_FRAC = re.compile(r"^([+-]?)\\frac\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))\s*(?:\{\s*([+-]?\d+)\s*\}|(\d))$")
_MIXED = re.compile(r"^([+-]?)(\d+)\s*(?:\\frac\s*\{(\d+)\}\s*\{(\d+)\}|\\frac(\d)(\d)|\s(\d+)\s*/\s*(\d+))$")
_SCI = re.compile(rf"^({_DEC})\s*(?:[eE]|\\times\s*10\s*\^|\\cdot\s*10\s*\^|\*\s*10\s*\*\*|\\times10\^)\s*"
                  r"\{?\s*([+-]?\d+)\s*\}?$")
_REPEATING = re.compile(r"^([+-]?)(\d*)\.(\d*)\\overline\s*\{\s*(\d{1,20})\s*\}$")
_POW10 = re.compile(r"^10\s*\^\s*\{?\s*([+-]?\d+)\s*\}?$")


@dataclass(frozen=True)
class Number:
    """An exactly-read number; ``places`` is the count of stated decimal places (None = exact)."""

    value: Fraction
    places: int | None = None
    percent: bool = False


def _decimal(text: str) -> Number | None:
    if not _DECIMAL.match(text):
        return None
    body = text.replace(",", "")
    if len(body) > MAX_DIGITS:
        return None
    places = len(body.split(".", 1)[1]) if "." in body else None
    return Number(Fraction(body if body not in {"+.", "-.", "."} else "0"), places or None)


def read_number(text: str) -> Number | None:
    """Parse ``text`` (already normalised) as one plain number, else None.

    >>> read_number("1,234.50").value, read_number("1,234.50").places
    (Fraction(2469, 2), 2)
    >>> read_number("2\\\\frac{1}{3}").value
    Fraction(7, 3)
    """
    text = text.strip()
    if not text or len(text) > MAX_DIGITS + 40:
        return None
    percent = text.endswith("%")
    if percent:
        text = text[:-1].strip()
    number = _plain_number(text)
    if number is None:
        return None
    return Number(number.value, number.places, percent) if percent else number


def _plain_number(text: str) -> Number | None:
    if text.startswith("(") and text.endswith(")") and text.count("(") == 1:
        text = text[1:-1].strip()
    number = _decimal(text)
    if number is not None:
        return number
    if match := _SLASH.match(text):
        num, den = (int(g.replace(",", "")) for g in match.groups())
        return Number(Fraction(num, den)) if den else None
    if match := _FRAC.match(text):
        sign, num = match.group(1), int(match.group(2) or match.group(3))
        den = int(match.group(4) or match.group(5))
        return Number(Fraction(-num if sign == "-" else num, den)) if den else None
    if match := _MIXED.match(text):
        return _mixed(match)
    if match := _SCI.match(text):
        base, exp = _decimal(match.group(1)), int(match.group(2))
        if base is None or abs(exp) > MAX_EXPONENT:
            return None
        places = None if base.places is None else max(base.places - exp, 0) or None
        return Number(base.value * Fraction(10) ** exp, places)
    if match := _REPEATING.match(text):
        return Number(_repeating_value(*match.groups()))
    if match := _POW10.match(text):
        exp = int(match.group(1))
        return Number(Fraction(10) ** exp) if abs(exp) <= MAX_EXPONENT else None
    return None


def _repeating_value(sign: str, whole: str, fixed: str, period: str) -> Fraction:
    """``0.1\\overline{6}`` = 1/6 exactly (math-verify rejects ``\\overline`` decimals)."""
    value = Fraction(int(whole or "0")) + (Fraction(int(fixed), 10 ** len(fixed)) if fixed else 0)
    value += Fraction(int(period), (10 ** len(period) - 1) * 10 ** len(fixed))
    return -value if sign == "-" else value


def _mixed(match: re.Match) -> Number | None:
    sign, whole = match.group(1), int(match.group(2))
    num = match.group(3) or match.group(5) or match.group(7)
    den = match.group(4) or match.group(6) or match.group(8)
    if int(den) == 0 or int(num) >= int(den):  # "2 3/4" is mixed only when the fraction is proper
        return None
    value = whole + Fraction(int(num), int(den))
    return Number(-value if sign == "-" else value)


def numbers_match(gold: Number, answer: Number) -> bool:
    """Exact equality, except a decimal gold is compared at its own stated precision.

    A gold of ``3.14`` accepts ``3.1416`` (it rounds to the gold) but not ``3.1``; an exact gold
    (integer, fraction) needs exact equality, so ``0.33`` never equals ``1/3``. A one-place gold
    (``0.5``, ``2.5``) is usually an exact value, so it needs exact equality too (``0.54`` is wrong). Percent signs are
    optional on either side (``25%`` = ``25``), and ``25%`` also equals ``0.25``.
    """
    candidates = [answer.value]
    if gold.percent != answer.percent:
        candidates.append(answer.value / 100 if answer.percent else answer.value * 100)
    for value in candidates:
        if value == gold.value:
            return True
        if gold.places is not None and gold.places >= 2 and (answer.places or 0) > gold.places:
            if abs(value - gold.value) <= Fraction(1, 2 * 10 ** gold.places):
                return True
    return False
