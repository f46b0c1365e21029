"""How the papers' harness compares an extracted answer with the gold (one part of ``paper`` mode).

Two comparisons, each rewritten from the Small-Model-Learnability-Gap lm-eval tasks:

* ``is_equiv`` of ``lm_eval/tasks/*/utils.py``: :func:`~micota.grade.rule.strip_string` on both
  sides and exact string equality; if stripping raises, the raw strings are compared. The AIME,
  AMC and Olympiad copies first strip leading zeros and an all-zero fractional part
  (``str.lstrip('0')``; ``27.0`` -> ``27``); the ``hendrycks_math_500`` copy does not.
* lm-eval 0.4.5's ``exact_match`` (``lm_eval/api/metrics.py``, ``exact_match_hf_evaluate``) with
  GSM8K's ``regexes_to_ignore`` and ``ignore_case: true`` (``gsm8k-cot-zeroshot.yaml``).
"""

from __future__ import annotations

import re

from micota.grade.rule import StripError, strip_string

# gsm8k-cot-zeroshot.yaml metric_list: applied in this order to prediction and reference alike
GSM8K_REGEXES_TO_IGNORE = (",", r"\$", r"(?s).*#### ", r"\.$")


def drop_leading_zeros(text: str) -> str:
    """``025`` -> ``25``, ``27.0`` -> ``27``, ``0`` -> ``''`` (AIME/AMC/Olympiad ``is_equiv``).

    Literally ``lstrip('0')``, then: if the piece after the first ``.`` is all zeros, keep only
    the piece before it (so ``0.50`` -> ``.50`` stays, ``1.0.5`` -> ``1``).

    >>> drop_leading_zeros("025"), drop_leading_zeros("27.0"), drop_leading_zeros("-1.0")
    ('25', '27', '-1')
    """
    text = text.lstrip("0")
    if "." in text and text.split(".")[1].rstrip("0") == "":
        text = text.split(".")[0]
    return text


def is_equiv(answer: str | None, gold: str | None, *, leading_zeros: bool) -> bool:
    """The tasks' ``is_equiv``: equal after ``strip_string`` (raw equality if stripping raises).

    ``leading_zeros=True`` first applies :func:`drop_leading_zeros` to both sides (AIME, AMC,
    Olympiad). Two missing answers are equal, one missing answer is not.

    >>> is_equiv("27", "27.0", leading_zeros=True), is_equiv("27", "27.0", leading_zeros=False)
    (True, False)
    """
    if answer is None or gold is None:
        return answer is None and gold is None
    if leading_zeros:
        answer, gold = drop_leading_zeros(answer), drop_leading_zeros(gold)
    try:
        return strip_string(answer) == strip_string(gold)
    except StripError:
        return answer == gold


def exact_match(prediction: str, reference: str, *,
                regexes_to_ignore: tuple[str, ...] = GSM8K_REGEXES_TO_IGNORE, ignore_case: bool = True) -> bool:
    """lm-eval's ``exact_match``: delete each regex from both strings (in order), lowercase, compare.

    >>> exact_match("$1,018.", "She earns 9 * 2 = $18.\\n#### 1,018")
    True
    """
    for pattern in regexes_to_ignore:
        prediction, reference = re.sub(pattern, "", prediction), re.sub(pattern, "", reference)
    if ignore_case:
        prediction, reference = prediction.lower(), reference.lower()
    return prediction == reference
