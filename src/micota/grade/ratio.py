"""Ratios (``3:4``, ``3 \\colon 4``) compared as ratios, not as sympy reads them.

math-verify parses ``1:3:2`` and ``1:2:3`` as equal and a clock time ``10:30`` as the ratio
``1:3`` (measured on tests/cases/last_mile.jsonl), so ratios are settled here before any
symbolic step: proportional terms, in order; a two-term ratio also equals its quotient.
"""

from __future__ import annotations

import re
from typing import Callable

from micota.grade.numbers import read_number

_TIME = re.compile(r"^\d{1,2}:\d{2}(?::\d{2})?(?:\s*[ap]\.?\s*m\.?)?$", re.IGNORECASE)


def compare_ratio(g: str, a: str, same_term: Callable[[str, str], bool]) -> tuple[bool, str] | None:
    """``3:4`` = ``6:8`` = ``3/4``; ``1:2:3`` = ``2:4:6`` but not ``1:3:2``. None when neither
    side is a ratio. Terms that are not plain numbers must match in order (``same_term``).

    >>> compare_ratio("1:2:3", "2:4:6", str.__eq__), compare_ratio("3:4", "4:3", str.__eq__)
    ((True, 'proportional ratios'), (False, 'ratios not proportional'))
    """
    if _TIME.match(g.strip()) or _TIME.match(a.strip()):  # sympy reads 10:30 as the ratio 1:3
        same = g.replace(" ", "").lower() == a.replace(" ", "").lower()
        return same, "same clock time" if same else "a clock time differs"
    g_parts, a_parts = _ratio_parts(g), _ratio_parts(a)
    if g_parts is None and a_parts is None:
        return None
    if g_parts is None or a_parts is None:  # "3:4" vs "3/4": a two-term ratio is a quotient
        parts, other = (g_parts, a) if a_parts is None else (a_parts, g)
        values, value = [read_number(p) for p in parts], read_number(other)
        if len(parts) != 2 or value is None or None in values or not values[1].value:
            return None if len(parts) == 2 else (False, "a ratio of three or more terms vs one value")
        same = values[0].value / values[1].value == value.value
        return same, "ratio equals the quotient" if same else "ratio differs from the quotient"
    if len(g_parts) != len(a_parts):
        return False, f"ratio of {len(a_parts)} terms, gold has {len(g_parts)}"
    g_values, a_values = [read_number(p) for p in g_parts], [read_number(p) for p in a_parts]
    if None in g_values or None in a_values:  # symbolic terms: the same terms in the same order
        same = all(same_term(x, y) for x, y in zip(g_parts, a_parts))
        return same, "ratio terms " + ("equal" if same else "differ")
    pivot = next((i for i, x in enumerate(g_values) if x.value), None)
    scale = None if pivot is None else a_values[pivot].value / g_values[pivot].value
    same = bool(scale) and all(y.value == scale * x.value for x, y in zip(g_values, a_values))
    return same, "proportional ratios" if same else "ratios not proportional"


def _ratio_parts(text: str) -> list[str] | None:
    if ":" not in text or re.search(r"[=<>]|\\[a-z]*(?:eq|to|mid)\b", text):
        return None
    parts = [part.strip() for part in text.split(":")]
    return parts if all(parts) else None
