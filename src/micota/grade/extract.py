"""Find the final answer a response states.

Order: the last ``\\boxed{}``/``\\fbox{}`` (brace-matched, ``\\boxed 5`` too); else the last
"Final Answer: …" / "The final answer is …" / "the answer is …" / ``**Final Answer:**`` / ``#### N``
statement; else a short response that is itself just an answer (bare LaTeX with no ``$`` or box).
Text in an unclosed ``<think>`` block, or a response cut off before any final statement, has no
answer. Only string scanning here: linear time on a 200 KB response.
"""

from __future__ import annotations

import re

from micota.grade.normalize import clean_text

MAX_BOXES = 20  # only the last few boxes are tried, so 10k unclosed boxes stay linear
MAX_ANSWER_CHARS = 2000  # a longer "answer" is a runaway box, never a real final answer
_BOX = re.compile(r"\\(?:boxed|fbox)\b")
_PHRASES = re.compile(
    r"(?:final\s+answer\s*\**\s*(?:is|:|=|\n)|(?<![a-z])answer\s*\**\s*(?:is|:|=)|answer\s+(?:would|should)\s+be|"
    r"####)\s*(?::\s*)?",
    re.IGNORECASE,
)
_FINAL_PHRASE = re.compile(r"final\s+answer\s*\**\s*(?:is\b|:|=)\s*\**\s*(?::\s*)?", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<!\\)\.(?=\s|$)|\n\s*\n|\n(?=[A-Z#*])|,\s+(?=(?:which|since|because|so|as|but|where|with|that|this)\b)"
                           r"|\s+(?=(?:because|since|as we|which is)\b)")
_MATH = r"(?:\$\$.+?\$\$|\$(?:\\\$|[^$])+\$|\\\(.+?\\\)|\\\[.+?\\\])"  # $..$ may hold \$ money
_LEADING_MATH = re.compile(rf"^({_MATH}(?:\s*(?:,|and|or)\s*{_MATH})*)", re.DOTALL)
_LETTER = re.compile(r"^\(?\s*([A-E])\s*\)?(?:\s|$|[.:])")
_NUMBER = re.compile(r"[+-]?\d[\d,]*(?:\.\d+)?")


def _braced(text: str, start: int) -> tuple[str, int] | None:
    """Content of the ``{…}`` group opening at ``text[start]`` and the index after it."""
    depth = 0
    for i in range(start, min(len(text), start + MAX_ANSWER_CHARS + 2)):  # longer is no answer
        ch = text[i]
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            depth += 1
        elif ch == "}" and (i == 0 or text[i - 1] != "\\"):
            depth -= 1
            if depth == 0:
                return text[start + 1 : i], i + 1
    return None


def last_boxed(text: str) -> str | None:
    """Content of the complete ``\\boxed{…}`` / ``\\fbox{…}`` that closes last (or ``\\boxed 5``).

    Closing last means an outer box wins over boxes nested inside it; an unclosed (truncated)
    box is skipped in favour of an earlier complete one.

    >>> last_boxed(r"so \\boxed{\\frac{1}{2}} and finally \\boxed{\\{1, 2\\}}")
    '\\\\{1, 2\\\\}'
    """
    found = _last_box(text)
    return None if found is None else found[1]


def _last_box(text: str) -> tuple[int, str] | None:
    """``(index after the box, content)`` of the box :func:`last_boxed` reads."""
    best: tuple[int, str] | None = None
    for match in reversed(list(_BOX.finditer(text))[-MAX_BOXES:]):
        rest = match.end()
        while rest < len(text) and text[rest] in " \t":
            rest += 1
        if rest < len(text) and text[rest] == "{":
            group = _braced(text, rest)
            if group is not None and (best is None or group[1] > best[0]):
                best = (group[1], group[0])
            continue
        bare = re.match(r"[^\s$\\]+", text[rest:])
        if bare and rest > match.end() and (best is None or rest + bare.end() > best[0]):
            best = (rest + bare.end(), bare.group(0).rstrip(".,"))
    return best


def boxes_on_last_line(response: str) -> list[str]:
    """Every complete box on the line of the last box (``x=\\boxed{2}`` or ``x=\\boxed{3}``)."""
    text = visible_text(clean_text(response)) or ""
    boxes = list(_BOX.finditer(text))
    if len(boxes) < 2:
        return []
    line_start = text.rfind("\n", 0, boxes[-1].start()) + 1
    found = []
    for match in boxes[-MAX_BOXES:]:
        if match.start() >= line_start:
            brace = text.find("{", match.end())
            group = _braced(text, brace) if brace == match.end() else None
            if group and group[0].strip():
                found.append(group[0].strip())
    return found


def _cut_inside_last_box(text: str) -> bool:
    """Whether the text ends inside its last ``\\boxed{`` (a response cut off mid-answer)."""
    start = text.rfind("\\boxed{")
    if start < 0 or len(text) - start > MAX_ANSWER_CHARS:
        return False
    return _braced(text, start + len("\\boxed")) is None


def _phrase_answer(text: str) -> str | None:
    """The statement after the last "final answer is"/"answer:"/"####" phrase."""
    matches = list(_PHRASES.finditer(text))
    for match in reversed(matches):
        tail = text[match.end() : match.end() + MAX_ANSWER_CHARS].strip().lstrip("*").strip()
        math = _LEADING_MATH.match(tail)
        if math:  # "the answer is $5$, which ..." states exactly the math segment
            return math.group(1)
        end = _SENTENCE_END.search(tail)
        answer = (tail[: end.start()] if end else tail).strip().strip("*").strip()
        answer = answer.split("\n")[0].strip()
        if answer:
            return answer
    return None


def _final_statement_after(text: str, box_end: int) -> str | None:
    """A "final answer is $…$" statement after the last box: it overrides a boxed intermediate
    (``$a=\\boxed{2}$ … the final answer is $2x+1$``). Only a math segment or a short bare
    answer counts, so prose after a box ("final answer: it checks out") never replaces it."""
    matches = list(_FINAL_PHRASE.finditer(text, box_end))
    if not matches:
        return None
    tail = text[matches[-1].end() : matches[-1].end() + MAX_ANSWER_CHARS].strip().lstrip("*").strip()
    math = _LEADING_MATH.match(tail)
    if math:
        return math.group(1)
    end = _SENTENCE_END.search(tail)
    return _bare_answer((tail[: end.start()] if end else tail).split("\n")[0].strip().strip("*").strip())


def _bare_answer(text: str) -> str | None:
    """A response that is only an answer (``18``, ``\\frac{1}{2}``, ``$x=3$``): short, one line, few words."""
    text = text.strip()
    if not text or "\n" in text or len(text) > 80:
        return None
    words = re.findall(r"[A-Za-z]{3,}", re.sub(r"\\[A-Za-z]+", "", text))
    if len(words) > 1 or ("=" in text and not re.match(r"^[\s$(\\[]*[a-zA-Z]\s*=", text)):
        return None  # prose or a working line ("so 2+3=5"), not a stated answer
    return text


def visible_text(response: str) -> str | None:
    """The part of the response after reasoning: None when a ``<think>`` block never closes."""
    if "<think>" in response and "</think>" not in response:
        return None
    if "</think>" in response:
        after = response.rsplit("</think>", 1)[1]
        return after if after.strip() else response.rsplit("</think>", 1)[0]
    return response


def extract_answer(response: str, *, benchmark: str | None = None) -> str | None:
    """The final answer stated in ``response`` (raw LaTeX text), or None when it states none.

    >>> extract_answer("Thus the total is 18.\\n\\nFinal Answer: $18$")
    '$18$'
    >>> extract_answer("<think>the answer is 5") is None
    True
    """
    if not isinstance(response, str):
        return None
    text = visible_text(clean_text(response))
    if text is None:
        return None
    if _cut_inside_last_box(text):
        return None  # truncated while writing its final box: it states no final answer
    box = _last_box(text)
    answer = None if box is None else (_final_statement_after(text, box[0]) or box[1])
    if answer is None:
        answer = _phrase_answer(text)
    if answer is None:
        answer = _bare_answer(text)
    if answer is None or not answer.strip() or len(answer) > MAX_ANSWER_CHARS:
        return None
    return _benchmark_answer(answer.strip(), benchmark)


def _benchmark_answer(answer: str, benchmark: str | None) -> str | None:
    """Per-benchmark shape rules: GSM8K states a number; AIME an integer 0-999 (``073`` = 73)."""
    if benchmark == "gsm8k":
        numbers = _NUMBER.findall(answer.replace("\\$", "").replace("$", " "))
        if len(numbers) == 1 and not re.search(r"\\frac|/|\^", answer):
            return numbers[0].rstrip(".")
    if benchmark == "aime24":
        match = re.fullmatch(r"\s*\$?\s*(\d{1,3})\s*\$?\s*", answer)
        if match:
            return str(int(match.group(1)))
    return answer


def choice_letter(text: str) -> str | None:
    """The one multiple-choice letter an answer names (``(B)``, ``\\textbf{(B)}``, ``B``), else None.

    ``(B) and (C)`` names two letters, so it names no single choice.
    """
    stripped = re.sub(r"\\text(?:bf)?\s*\{([^{}]*)\}", r"\1", text).strip().strip("$").strip()
    match = _LETTER.match(stripped + " ")
    if not match or re.search(r"(?:\(\s*[A-E]\s*\)|\b[A-E]\b)", stripped[match.end():]):
        return None
    return match.group(1)
