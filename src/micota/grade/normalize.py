"""Text clean-up of answers before comparison (robust mode).

Everything here is plain string work (no sympy), so it is cheap and cannot run code. It fixes the
surface forms math-verify misreads: ``\\$`` money, thin-space / brace thousands separators
(``18\\,360``, ``18{,}360``), unicode (½ √ ° ∞ π −), ``\\text{}`` units, ``$…$`` wrappers and
``x = 3`` style answers.
"""

from __future__ import annotations

import re

# Unicode forms models print instead of LaTeX.
_UNICODE = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "\\times ", "\u22c5": "\\cdot ", "\u00b7": "\\cdot ",
    "\u00f7": "\\div ", "\u221e": "\\infty ", "\u03c0": "\\pi ", "\u00b0": "^\\circ", "\u2264": "\\le ",
    "\u2265": "\\ge ", "\u2260": "\\ne ", "\u222a": "\\cup ", "\u2229": "\\cap ", "\u2208": "\\in ",
    "\u00bd": "(1/2)", "\u2153": "(1/3)", "\u2154": "(2/3)", "\u00bc": "(1/4)", "\u00be": "(3/4)",
    "\u2155": "(1/5)", "\u2159": "(1/6)", "\u215b": "(1/8)", "\u2032": "'", "\u00a0": " ", "\u2009": " ",
    "\u202f": " ", "\u2007": " ", "\u200b": "", "\ufeff": "", "\u2217": "*", "\u00b2": "^2", "\u00b3": "^3",
    "\u221a": "\\sqrt", "\u20ac": "", "\u00a3": "", "\uff0c": ",", "\u3001": ",", "\u201c": "", "\u201d": "", "\u2018": "", "\u2019": "",
}
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))
_BAD_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
_SQRT_BARE = re.compile(r"\\sqrt\s*(\d+|[a-zA-Z])")

# Words that are units or filler after a number ("18 dollars", "5 cm", "30 degrees").
UNIT_WORDS = (
    "dollars?|cents?|units?|square|sq|cubic|feet|foot|ft|inch(?:es)?|in|yards?|yd|miles?|mi|meters?|metres?|"
    "m|cm|mm|km|kilometers?|centimeters?|millimeters?|grams?|g|kg|kilograms?|pounds?|lbs?|ounces?|oz|"
    "liters?|litres?|l|ml|gallons?|hours?|hrs?|h|minutes?|mins?|seconds?|secs?|s|days?|weeks?|months?|years?|"
    "degrees?|deg|radians?|rad|percent|mph|km/h|people|persons?|students?|apples?|cookies?|marbles?|books?|"
    "usd|eur|am|pm|times|ways|points?|items?|pieces?|boxes|eggs?|pages?|cars?|balls?|coins?|bags?|tickets?|trees?|"
    "visits?|steps?|sheep|cows?|dogs?|cats?|children|kids|men|women|games?|questions?|problems?|"
    "rows?|columns?|squares?|triangles?|numbers?|integers?|digits?|pairs?|values?|solutions?|units"
)
_UNIT_TAIL = re.compile(rf"(?:(?<=[\d}}.)])|(?<=\\pi))\s*(?:(?:{UNIT_WORDS})\b(?:\s*\^\s*\{{?[23]\}}?)?\.?\s*)+$",
                        re.IGNORECASE)
_TEXT_CMD = re.compile(r"\\(?:boxed|fbox|text|textbf|textit|textrm|mathrm|mathbf|mathit|mbox|operatorname|mathsf|rm|bf)\s*\{")
_LHS = re.compile(r"^\s*(?:[a-zA-Z](?:_\{?\w+\}?)?|[a-zA-Z]\s*\(\s*[a-zA-Z]\s*\)|\\[a-zA-Z]+|"
                  r"\(\s*[a-zA-Z](?:\s*,\s*[a-zA-Z])+\s*\))\s*(?:=(?![=<>])|\\in\b)\s*")
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(?:,\d{3}){2,}(?:\.\d+)?|[+-]?\d{1,3},\d{3}\.\d+")
_SPACES = re.compile(r"(?<!\\)\\[,;:! ]|\\quad|\\qquad|~|\\enspace|\\thinspace")


_NUMBER_WORDS = {word: str(n) for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())}


_VECTOR = re.compile(r"\\begin\{[pbv]?matrix\}(.*?)\\end\{[pbv]?matrix\}", re.DOTALL)
# \left[\begin{array}{cc} … \end{array}\right] is a matrix too (\left/\right are gone by now)
_ARRAY = re.compile(r"(\[|\()?\s*\\begin\{array\}\s*\{[^{}]*\}(.*?)\\end\{array\}\s*(\]|\))?", re.DOTALL)
_SCALAR = r"-|[+-]?(?:\d+(?:\.\d+)?|\\frac\s*\{[^{}]+\}\s*\{[^{}]+\}|\d*\s*\\sqrt\s*\{[^{}]+\})"
_SCALED_VECTOR = re.compile(rf"^({_SCALAR})\s*(?:\\cdot|\\times)?\s*\\begin\{{([pbv]?matrix)\}}(.*?)\\end\{{\2\}}$",
                            re.DOTALL)


def _array_as_matrix(match: re.Match) -> str:
    opening, body, closing = match.groups()
    if (opening or "") + (closing or "") not in {"", "[]", "()"}:
        return match.group(0)  # "(\begin{array}…]" is not one bracketed matrix
    return "\\begin{pmatrix}" + body + "\\end{pmatrix}"


def _matrix_cells(body: str) -> tuple[list[str], bool]:
    """The cells of a matrix body and whether it is a vector (one row or one column)."""
    rows = [row.strip() for row in body.split("\\\\") if row.strip()]
    cells = [cell.strip() for row in rows for cell in row.split("&")]
    return cells, len(rows) == 1 or all("&" not in row for row in rows)


def _vector_as_tuple(match: re.Match) -> str:
    """A one-column or one-row matrix is a vector: ``(2, -1)`` (matrices vs tuples)."""
    cells, vector = _matrix_cells(match.group(1))
    return "(" + ", ".join(cells) + ")" if vector else match.group(0)


def _scaled_vector_as_tuple(text: str) -> str:
    """``\\frac{1}{3}\\begin{pmatrix} -1 \\\\ 2 \\end{pmatrix}`` -> ``(-1/3, 2/3)``: a scalar factored
    out of a vector is multiplied back in (exactly when both are plain numbers)."""
    match = _SCALED_VECTOR.match(text.strip())
    if not match:
        return text
    cells, vector = _matrix_cells(match.group(3))
    if not vector:
        return text  # a scaled 2-D matrix is left to the symbolic layer, which reads it
    scalar = "-1" if match.group(1) == "-" else match.group(1)
    return "(" + ", ".join(_times(scalar, cell) for cell in cells) + ")"


def _times(scalar: str, cell: str) -> str:
    from micota.grade.numbers import read_number

    left, right = read_number(scalar.replace(" ", "")), read_number(cell.replace(" ", ""))
    if right is not None and right.value in (1, -1) and not right.places:  # 1 times the scalar needs no algebra
        return scalar if right.value == 1 else (scalar[1:] if scalar.startswith("-") else f"-{scalar}")
    if left is None or right is None or left.places or right.places:
        return f"{scalar} \\cdot ({cell})"
    value = left.value * right.value
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def clean_text(text: str) -> str:
    """Drop NUL / control / lone-surrogate characters and map unicode math to LaTeX.

    >>> clean_text("½ + √2")
    '(1/2) + \\\\sqrt2'
    """
    text = _BAD_CHARS.sub("", text)
    return _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], text)


def strip_wrappers(text: str) -> str:
    """Remove ``$…$``, ``\\(…\\)``, ``\\[…\\]``, a whole-answer ``\\boxed{}`` and trailing punctuation."""
    text = text.strip()
    for _ in range(4):
        before = text
        text = re.sub(r"(?:(?<!\\)[.;]|\\\\)+\s*$", "", text.strip()).strip()
        if text.startswith("$$") and text.endswith("$$") and len(text) > 4:
            text = text[2:-2]
        elif text.startswith("$") and text.endswith("$") and len(text) > 2 and "$" not in text[1:-1]:
            text = text[1:-1]
        elif text.startswith("\\(") and text.endswith("\\)"):
            text = text[2:-2]
        elif text.startswith("\\[") and text.endswith("\\]"):
            text = text[2:-2]
        elif re.match(r"^\\(?:boxed|fbox)\s*\{", text) and text.endswith("}"):
            inner = text[text.index("{") + 1 : -1]
            if _balanced(inner):
                text = inner
        if text == before:
            break
    return text.strip()


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            return False
    return depth == 0


def unwrap_text_commands(text: str) -> str:
    """``\\text{ cm}`` -> `` cm`` (keep the content, drop the command); brace-matched."""
    for _ in range(20):
        match = _TEXT_CMD.search(text)
        if not match:
            break
        start, depth, i = match.end(), 1, match.end()
        while i < len(text) and depth:
            depth += (text[i] == "{") - (text[i] == "}")
            i += 1
        if depth:
            break
        text = text[: match.start()] + " " + text[start : i - 1] + " " + text[i:]
    return text


def normalize_answer(text: str) -> str:
    """Canonical surface form of one answer (no algebra): the input to all comparisons.

    >>> normalize_answer("$\\\\$18{,}360.00$ dollars")
    '18360.00'
    """
    text = strip_wrappers(clean_text(text))
    text = text.replace("\\cfrac", "\\frac").replace("\\langle", "(").replace("\\rangle", ")")
    text = re.sub(r"\\colon|\\mathbin\s*\{\s*:\s*\}|\\!:\\!", ":", text)  # 3 \colon 4 is the ratio 3:4
    text = re.sub(r"^\\approx\s*|^[a-zA-Z]\s*\\approx\s*", "", text.strip())
    text = text.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\displaystyle", "")
    text = text.replace("\\left", "").replace("\\right", "").replace("\\big", "").replace("\\Big", "")
    text = re.sub(r"\\(?:\$|dollar)", "", text).replace("$", " ")
    text = re.sub(r"(\d),\s*\\!\s*(?=\d{3})", r"\1,", text)  # MATH golds write 32,\!348
    text = re.sub(r"(\d)\{,\}(?=\d{3})", r"\1", text)
    text = re.sub(r"(\d)\\[,!: ](?=\d{3})", r"\1", text)
    if _THOUSANDS.fullmatch(text.strip()):
        text = text.replace(",", "")
    text = _scaled_vector_as_tuple(_ARRAY.sub(_array_as_matrix, text))
    text = _VECTOR.sub(_vector_as_tuple, text)
    text = unwrap_text_commands(text)
    text = _SPACES.sub(" ", text).replace("\\varnothing", "\\emptyset").replace("\\{\\}", "\\emptyset")
    text = text.replace("\\%", "%").replace("percent", "%").replace("\\le ", "\\leq ").replace("\\ge ", "\\geq ")
    text = text.replace("\\geqslant", "\\geq").replace("\\leqslant", "\\leq")
    if re.search(r"\\(?:sin|cos|tan|cot|sec|csc)", text):  # sin 60° is sin(pi/3), not sin(60)
        text = re.sub(r"(\d+(?:\.\d+)?)\s*\^\s*\{?\s*\\circ\s*\}?", r"(\1\\pi/180)", text)
    text = re.sub(r"\^\s*\{?\s*\\circ\s*\}?|\\circ|\bdegrees?\b", "", text)
    text = re.sub(r"\\sqrt\s*\(([^()]{1,40})\)", r"\\sqrt{\1}", text)  # unicode √(2) arrives as \sqrt(2)
    text = _SQRT_BARE.sub(r"\\sqrt{\1}", text)
    text = _UNIT_TAIL.sub("", text.strip())
    text = re.sub(r"\s+", " ", text).strip().rstrip(".").strip()
    text = _NUMBER_WORDS.get(text.lower(), text)
    return strip_wrappers(text)


def drop_assignment(text: str) -> str:
    """``x = 3`` -> ``3``; ``f(x)=1/x`` -> ``1/x`` (only a single variable/function on the left)."""
    match = _LHS.match(text)
    if match and "=" not in text[match.end():]:
        return text[match.end():].strip()
    return text


def assigned_name(text: str) -> str | None:
    """The variable an ``x = 3`` style answer assigns (spaces removed), else None."""
    match = _LHS.match(text)
    if match and "=" not in text[match.end():]:
        return re.sub(r"\s+|=|\\in\b", "", match.group(0))
    return None


def last_side(text: str) -> str:
    """``\\frac{6}{4} = \\frac{3}{2}`` -> ``\\frac{3}{2}``: a chain of equalities states its last side."""
    sides = re.split(r"(?<![<>!\\])=(?![=<>])", text)
    return sides[-1].strip() if len(sides) > 1 and sides[-1].strip() else text
