"""How the papers' harness reads an answer out of a response (one part of ``paper`` mode).

Rewritten from the lm-eval tasks of Small-Model-Learnability-Gap (the harness MiCoTA's README
names): ``last_boxed_only_string`` / ``remove_boxed`` of ``lm_eval/tasks/{AIME,AMC,Olympiad,
hendrycks_math_500}/utils.py``; the ``flexible-extract`` filter of
``lm_eval/tasks/gsm8k/gsm8k-cot-zeroshot.yaml`` (lm-eval 0.4.5 ``RegexFilter``, ``group_select:
-1``, then ``take_first``); and the ``until`` stop strings vLLM applies during generation. The
quirks are kept on purpose (a ``\\boxed `` with a space anywhere wins over every ``\\boxed{``;
no fallback to an earlier box when the last one is unclosed); tests/grade/test_paper.py quotes
the upstream lines beside each behaviour.
"""

from __future__ import annotations

import re

GSM8K_FALLBACK = "[invalid]"  # RegexFilter's default when nothing matches
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")  # gsm8k-cot-zeroshot.yaml, flexible-extract


class HarnessError(Exception):
    """The papers' harness raises on this response (an ``assert`` in ``remove_boxed``): its lm-eval
    run stops there, so the response has no score; micota grades it incorrect and says why."""


def cut_at_stop(response: str, stops: tuple[str, ...]) -> str:
    """The response as the harness sees it: generation stopped before the first stop string.

    lm-eval passes the task's ``until`` to vLLM as ``stop`` (the stop string is not returned);
    its HF backend cuts with ``text.split(stop)[0]`` for each stop. Both give the text before
    the earliest occurrence, since the tasks' stop strings cannot overlap one another.

    >>> cut_at_stop("so \\\\boxed{4}. Problem: next one \\\\boxed{7}", ("Problem:",))
    'so \\\\boxed{4}. '
    """
    end = len(response)
    for stop in stops:
        at = response.find(stop)
        if 0 <= at < end:
            end = at
    return response[:end]


def last_boxed_only(text: str) -> str | None:
    """``last_boxed_only_string``: the last ``\\boxed…`` group with its command, or None.

    If ``\\boxed `` (with a space) occurs anywhere, the text after its last occurrence up to the
    next ``$`` is the answer, whatever boxes follow. Otherwise the last ``\\boxed`` (else
    ``\\fbox``) is brace-matched from its position; unclosed means no answer.

    >>> last_boxed_only("a \\\\boxed{1} b \\\\boxed{\\\\frac{2}{3}} c")
    '\\\\boxed{\\\\frac{2}{3}}'
    """
    if "\\boxed " in text:
        return "\\boxed " + text.rsplit("\\boxed ", 1)[-1].split("$", 1)[0]
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
                return text[start : i + 1]
    return None


def remove_boxed(boxed: str) -> str:
    """``remove_boxed``: the content of a group returned by :func:`last_boxed_only`.

    A plain ``\\boxed{…}`` loses its first 7 and last character without any check; a group that
    contains ``\\fbox{`` (or ``\\boxed ``) but does not start with it fails the original's
    ``assert`` (raised here as :class:`HarnessError`).
    """
    if "\\fbox{" in boxed:
        if not (boxed.startswith("\\fbox{") and boxed.endswith("}")):
            raise HarnessError("remove_boxed asserts the group starts with '\\fbox{' (it contains one inside)")
        return boxed[len("\\fbox{") : -1]
    if "\\boxed " in boxed:
        if not boxed.startswith("\\boxed "):
            raise HarnessError("remove_boxed asserts the group starts with '\\boxed '")
        return boxed[len("\\boxed ") :]
    return boxed[len("\\boxed{") : -1]


def boxed_answer(response: str) -> str | None:
    """``remove_boxed(last_boxed_only_string(response))``, None when there is no box."""
    boxed = last_boxed_only(response)
    return None if boxed is None else remove_boxed(boxed)


def flexible_extract(response: str) -> str:
    """GSM8K ``flexible-extract``: the last number-like run (``-?[$0-9.,]{2,}`` or ``-?[0-9]+``).

    Returns ``"[invalid]"`` when there is none, as lm-eval's ``RegexFilter`` does.

    >>> flexible_extract("She pays $1,018.00 in total, i.e. 1018 dollars.")
    '1018'
    """
    matches = _FLEXIBLE.findall(response)
    if not matches:
        return GSM8K_FALLBACK
    groups = [group for group in matches[-1] if group]
    return groups[0].strip() if groups else GSM8K_FALLBACK
