"""Robust equivalence of a gold answer and an extracted answer.

Layers, cheapest first: identical after normalisation; multiple-choice letters; structure
(unordered lists/sets of solutions, ordered tuples, intervals whose open/closed ends must match);
per item: exact numbers (:mod:`micota.grade.numbers`), base-n numerals, words, and only then
math-verify in a time-limited child process (:mod:`micota.grade.symbolic`). Inputs that would
make sympy explode (huge exponents, factorials of big numbers, very deep nesting) are refused
before they reach it.
"""

from __future__ import annotations

import functools
import re
import time

from micota.grade.extract import choice_letter
from micota.grade.normalize import assigned_name, drop_assignment, last_side, normalize_answer
from micota.grade.numbers import numbers_match, read_number
from micota.grade.ratio import compare_ratio

MAX_ITEMS = 32  # a list answer with more items is compared item by item only on the fast path
MAX_SYMBOLIC_CHARS = 400
MAX_DEPTH = 40
_BASE = re.compile(r"^([0-9A-Za-z]+)\s*_\s*\{?\s*(\d+|\\text\s*\{\s*\w+\s*\}|[a-z]+)\s*\}?$")
_WORD = re.compile(r"^[A-Za-z][A-Za-z .'-]*$")
_ONE_GROUP = re.compile(r"[+-]?\d{1,3},\d{3}")
_OPEN, _CLOSE = "([{", ")]}"
_COSTLY = re.compile(
    r"\d{401,}"  # 100k-digit numbers
    r"|\^\s*\{?\s*[-+]?\d{5,}"  # 2^{100000}
    r"|\^\s*\{[^{}]*\^|\^\s*\d+\s*\^|\^\s*\{\s*\d+\s*\^"  # power towers 10^{10^{10}}
    r"|\d\s*[eE]\s*[-+]?\d{4,}"  # 1e999999999
    r"|\([^()]*(?:\^|\d{4,})[^()]*\)\s*!|\}\s*!|\d{4,}\s*!|"  # (10^{100})!, 100000!
    r"\\(?:exec|eval|import|input|system)\b|__|(?<!\\)lambda|\bos\.|\bimport\b"
)


@functools.lru_cache(maxsize=65536)
def prepare(text: str) -> str:
    """Normalised form of an answer; cached because the same gold is graded many times."""
    return normalize_answer(text)


def _depth(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        depth += (ch in _OPEN) - (ch in _CLOSE)
        deepest = max(deepest, depth)
    return deepest


def split_top_level(text: str) -> list[str]:
    """Split on commas (and ``or``/``and`` / ``;``) that are outside all brackets."""
    text = re.sub(r"\s+(?:or|and)\s+|;", ",", text) if re.search(r"\d|\\", text) else text
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(text[start:i].strip())
            start = i + 1
    items.append(text[start:].strip())
    return [item for item in items if item]


def _shape(text: str) -> tuple[str, list[str]]:
    """``("set"|"(]"|"()"|"[]"|…|"list"|"one", items)`` for a normalised answer."""
    text = text.strip()
    if text.startswith("\\{") and text.endswith("\\}") and _depth(text[2:-2]) >= 0:
        return "set", split_top_level(text[2:-2])
    top = split_top_level(text)
    if len(top) > 1:
        return "list", top
    if len(text) > 1 and text[0] in "([" and text[-1] in ")]" and _depth(text[1:-1]) >= 0:
        inner = split_top_level(text[1:-1])
        if len(inner) > 1 and _wraps_all(text):
            return text[0] + text[-1], inner
    return "one", [text]


def _wraps_all(text: str) -> bool:
    """Whether the first bracket closes at the very end (``(1,2)`` yes, ``(1)+(2)`` no)."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in _OPEN) - (ch in _CLOSE)
        if depth == 0 and i < len(text) - 1:
            return False
    return True


def _balanced(text: str) -> bool:
    """Whether every bracket closes in order (unbalanced input is malformed, never parsed)."""
    stack = []  # ( and [ close with either ) or ]: half-open intervals are balanced
    for ch in text:
        if ch in _OPEN:
            stack.append("{" if ch == "{" else "(")
        elif ch in _CLOSE:
            if not stack or stack.pop() != ("{" if ch == "}" else "("):
                return False
    return not stack


class Deadline:
    """Seconds left of a case's time limit."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        return self.end - time.monotonic()


def is_equivalent(gold: str, answer: str, deadline: Deadline) -> tuple[bool, str]:
    """``(correct, reason)`` for raw gold and raw extracted answer texts."""
    g, a = prepare(gold), prepare(answer)
    if g == a:
        return True, "identical after normalisation"
    if not a:
        return False, "answer is empty after normalisation"
    letter = choice_letter(g)
    if letter and len(g) <= 12:
        other = choice_letter(a)
        return other == letter, f"choice {other} vs gold {letter}"
    return _compare(g, a, deadline, depth=0)


def _merge_thousands(text: str, other: str) -> str:
    """``18,360`` is one number unless the other side is a list too (``1,000`` vs gold ``1, 0``)."""
    if _ONE_GROUP.fullmatch(text) and len(split_top_level(other)) == 1:
        return text.replace(",", "")
    return text


def _compare(g: str, a: str, deadline: Deadline, depth: int) -> tuple[bool, str]:
    g, a = _merge_thousands(g, a), _merge_thousands(a, g)
    g_name, a_name = assigned_name(g), assigned_name(a)
    if g_name and a_name and g_name != a_name:  # "a=4, b=3" does not answer "a=3, b=4"
        return False, f"assigns {a_name}, gold assigns {g_name}"
    g_shape, g_items = _expand_pm_items(*_shape(_expand_pm(drop_assignment(_as_interval(g)))))
    a_shape, a_items = _expand_pm_items(*_shape(_expand_pm(drop_assignment(_as_interval(a)))))
    if g_shape == "one" and a_shape == "one":
        return _compare_item(g_items[0], a_items[0], deadline)
    if len(g_items) != len(a_items):
        return False, f"{len(a_items)} item(s) given, gold has {len(g_items)}"
    if depth > 2 or len(g_items) > MAX_ITEMS:
        return False, "answer structure too large to compare"
    if g_shape == "list" and _named_differently(g_items) and not _named_differently(a_items):
        g_shape = "()"  # "x=1, y=2" is the ordered pair (1, 2) when the answer gives no names
    unordered = g_shape in {"set", "list"}
    if not unordered and a_shape != g_shape and not (g_shape == "()" and a_shape == "list"):
        return False, f"brackets {a_shape} differ from gold {g_shape} (open/closed ends or tuple)"
    if g_shape == "set" and len(g_items) == 1 and a_shape == "one":
        return _compare_item(g_items[0], a_items[0], deadline)
    if unordered and a_shape not in {"set", "list", "()", "[]"}:
        return False, f"gold is a collection, answer is {a_shape}"
    match = (lambda x, y: _compare(x, y, deadline, depth + 1)[0])
    if unordered:
        ok = _match_unordered(g_items, a_items, match)
        return ok, "same items in any order" if ok else "items differ"
    for x, y in zip(g_items, a_items):
        if not match(x, y):
            return False, f"ordered item {y!r} differs from {x!r}"
    return True, "ordered items equal"


def _named_differently(items: list[str]) -> bool:
    """Whether every item assigns a variable and no two assign the same one (``x=1, y=2``)."""
    names = [assigned_name(item) for item in items]
    return all(names) and len(set(names)) == len(names)


def _match_unordered(gold: list[str], answer: list[str], match) -> bool:
    """Greedy one-to-one matching (answers are lists of distinct solutions, so greedy suffices).

    Items written identically pair first, so symbolic work (about 0.1-0.5 s a call on this box)
    is spent only on the items that differ in form."""
    left, rest = list(answer), []
    for item in gold:
        same = next((k for k, other in enumerate(left) if other.replace(" ", "") == item.replace(" ", "")), None)
        if same is None:
            rest.append(item)
        else:
            left.pop(same)
    for item in rest:
        hit = next((k for k, other in enumerate(left) if match(item, other)), None)
        if hit is None:
            return False
        left.pop(hit)
    return True


_REL = {"<": "<", ">": ">", "\\lt": "<", "\\gt": ">", "\\leq": "<=", "\\le": "<=", "\\geq": ">=",
        "\\ge": ">=", "<=": "<=", ">=": ">="}
_REL_RE = r"(<=|>=|<|>|\\leq|\\geq|\\le|\\ge|\\lt|\\gt)(?![a-zA-Z])"
_ONE_SIDED = re.compile(rf"^[a-zA-Z]\s*{_REL_RE}\s*([^<>=]+)$")
_BOUND_FIRST = re.compile(rf"^([^<>=]+?)\s*{_REL_RE}\s*[a-zA-Z]$")
_TWO_SIDED = re.compile(rf"^([^<>=]+?)\s*{_REL_RE}\s*[a-zA-Z]\s*{_REL_RE}\s*([^<>=]+)$")


def _as_interval(text: str) -> str:
    """``x \\geq 2`` -> ``[2, \\infty)``; ``-1 < x \\le 3`` -> ``(-1, 3]`` (one variable only)."""
    if match := _ONE_SIDED.match(text.strip()):
        rel, bound = _REL[match.group(1)], match.group(2).strip()
        if rel.startswith(">"):
            return ("[" if rel == ">=" else "(") + bound + ", \\infty)"
        return "(-\\infty, " + bound + ("]" if rel == "<=" else ")")
    if match := _BOUND_FIRST.match(text.strip()):  # "2 < x" reads as "x > 2"
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}[_REL[match.group(2)]]
        return _as_interval(f"x {flipped} {match.group(1).strip()}")
    if match := _TWO_SIDED.match(text.strip()):
        low, rel_low, rel_high, high = match.groups()
        if _REL[rel_low].startswith("<") and _REL[rel_high].startswith("<"):
            return (("[" if _REL[rel_low] == "<=" else "(") + low.strip() + ", " + high.strip()
                    + ("]" if _REL[rel_high] == "<=" else ")"))
    return text


def _expand_pm(text: str) -> str:
    """``1 \\pm \\sqrt{2}`` -> ``1 + \\sqrt{2}, 1 - \\sqrt{2}``; ``(\\pm 1, 0)`` -> ``(+ 1, 0), (- 1, 0)``
    (one ± in a single item or tuple; sets and lists expand item by item in :func:`_expand_pm_items`)."""
    if text.count("\\pm") == 1 and not text.startswith("\\{") and len(split_top_level(text)) == 1:
        return text.replace("\\pm", "+") + ", " + text.replace("\\pm", "-")
    return text


def _expand_pm_items(shape: str, items: list[str]) -> tuple[str, list[str]]:
    """``\\{1\\pm\\sqrt{5}, -2\\}`` is the set of three roots: each item with one ± becomes two."""
    if shape not in {"set", "list"} or not any(item.count("\\pm") == 1 for item in items):
        return shape, items
    expanded = []
    for item in items:
        expanded += [item.replace("\\pm", "+"), item.replace("\\pm", "-")] if item.count("\\pm") == 1 else [item]
    return shape, expanded


def _compare_item(g: str, a: str, deadline: Deadline) -> tuple[bool, str]:
    g, a = drop_assignment(g), drop_assignment(a)
    if "=" not in g and "=" in a:
        a = last_side(a)
    if g == a or g.replace(" ", "") == a.replace(" ", ""):
        return True, "identical after normalisation"
    ratio = compare_ratio(g, a, lambda x, y: _compare_item(x, y, deadline)[0])
    if ratio is not None:
        return ratio
    g_num, a_num = read_number(g), read_number(a)
    if g_num is not None and a_num is not None:
        same = numbers_match(g_num, a_num)
        return same, "numerically equal" if same else "numbers differ"
    if g_num is not None and a_num is None and _is_letter_choice_with_value(a):
        return _compare_item(g, re.sub(r"^\(?[A-E]\)\s*", "", a), deadline)
    if g_num is not None and a_num is None and (stated := _number_in_words(a)) is not None:
        same = numbers_match(g_num, stated)
        return same, "number stated in words " + ("matches" if same else "differs")
    base = _compare_base(g, a)
    if base is not None:
        return base, "base-n numeral " + ("matches" if base else "differs")
    if _WORD.match(g) and not re.search(r"\\|\d", a) and len(g.split()) <= 4 and len(g) > 1:
        same = _without_article(g) == _without_article(a)  # "an ellipse" names the ellipse
        return same, "same word" if same else "different word"
    if a_num is not None and a_num.places is not None and g_num is None:
        return False, "decimal approximation of an exact gold"
    return _compare_symbolic(g, a, deadline)


def _without_article(text: str) -> str:
    return re.sub(r"^(?:an?|the)\s+(?=\S)", "", text.lower().strip())


def _number_in_words(text: str):
    """``there are 5 ways`` -> 5: one numeral token, every other token a plain word (no math)."""
    tokens = text.rstrip(".!").split()
    if len(tokens) > 30:
        return None
    if any(t.lower().strip(",") in _MAGNITUDES for t in tokens):
        return None  # "2 thousand" is 2000, "5 million dollars" is not 5
    numerals = [t for t in tokens if re.fullmatch(r"\d+(?:\.\d+)?", t)]
    words = [t for t in tokens if re.fullmatch(r"[A-Za-z']{1,15},?", t)]
    if len(numerals) != 1 or len(numerals) + len(words) != len(tokens) or not words:
        return None
    return read_number(numerals[0])


def _is_letter_choice_with_value(text: str) -> bool:
    return bool(re.match(r"^\(?[A-E]\)\s*\S", text))


def _compare_base(g: str, a: str) -> bool | None:
    """``1011_2`` vs ``1011_3``: digits must match, and the bases when both state one."""
    g_match, a_match = _BASE.match(g), _BASE.match(a)
    if not g_match and not a_match:
        return None
    g_digits, g_base = (g_match.group(1), g_match.group(2)) if g_match else (g, None)
    a_digits, a_base = (a_match.group(1), a_match.group(2)) if a_match else (a, None)
    if not re.fullmatch(r"[0-9A-Za-z]+", g_digits) or not re.fullmatch(r"[0-9A-Za-z]+", a_digits):
        return None
    if g_base and a_base and _base_value(g_base) != _base_value(a_base):
        return False
    return g_digits.lower() == a_digits.lower()


_MAGNITUDES = {"hundred", "hundreds", "thousand", "thousands", "million", "millions", "billion", "billions",
               "trillion", "dozen", "dozens", "half", "halves", "quarter", "quarters", "third", "thirds", "fifths",
               "tenths", "hundredths", "thousandths", "squared", "cubed", "twice"}
_BASE_WORDS = {"two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
               "nine": "9", "ten": "10", "twelve": "12", "sixteen": "16"}


def _base_value(base: str) -> str:
    word = re.sub(r"\\text\s*\{\s*(\w+)\s*\}", r"\1", base).strip()
    return _BASE_WORDS.get(word.lower(), word)


def _compare_symbolic(g: str, a: str, deadline: Deadline) -> tuple[bool, str]:
    for text, who in ((g, "gold"), (a, "answer")):
        if len(text) > MAX_SYMBOLIC_CHARS or _depth(text) > MAX_DEPTH or not _balanced(text):
            return False, f"{who} too long or too deeply nested for symbolic comparison"
        if _COSTLY.search(text):
            return False, f"{who} refused: would be too costly or unsafe to evaluate"
    budget = deadline.left() - 0.3  # leaves time to kill the child and answer inside the limit
    if budget <= 0.05:
        return False, "timed out before symbolic comparison"
    from micota.grade.symbolic import symbolic_equal

    same, detail = symbolic_equal(g, a, budget)
    return bool(same), detail
