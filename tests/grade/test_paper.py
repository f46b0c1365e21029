"""``paper`` mode against the papers' harness: the lm-eval tasks of Small-Model-Learnability-Gap.

The reference is that repository's ``lm-evaluation-harness/lm_eval/tasks/`` (commit 814cf97):
``AIME/``, ``AMC/``, ``Olympiad/``, ``hendrycks_math_500/`` (``*.yaml`` + ``utils.py``) and
``gsm8k/gsm8k-cot-zeroshot.yaml``, read through lm-eval 0.4.5 (vendored there). Each test quotes
the upstream lines it pins. The counts on the real golds were also checked against the upstream
``utils.py`` files themselves (``benchmarks/grade_bench.py --upstream``; docs/benchmarks.md).
"""

from __future__ import annotations

import pytest

from micota.data import load_benchmark
from micota.grade import grade, grade_many
from micota.grade.paper import PAPER_TASKS, paper_gold
from micota.grade.paper_extract import cut_at_stop, flexible_extract, last_boxed_only
from micota.grade.paper_match import drop_leading_zeros, exact_match, is_equiv
from micota.grade.rule import StripError, strip_string

BENCHMARKS = ("aime24", "amc23", "olympiadbench", "math500", "gsm8k")


def paper(gold, response: str, benchmark: str | None) -> bool:
    return grade(gold, response, benchmark=benchmark, mode="paper").correct


@pytest.fixture(scope="module")
def problems(shared_data):
    return {name: load_benchmark(name, shared_data) for name in BENCHMARKS}


# -- the real golds ---------------------------------------------------------------------------------

EXPECTED_MISSES = {"aime24": 0, "amc23": 0, "olympiadbench": 266, "math500": 0, "gsm8k": 0}


@pytest.mark.parametrize("name", BENCHMARKS)
def test_clean_golds_boxed_as_the_prompt_asks_score_as_the_harness_does(problems, name):
    """Each gold written the way a correct model writes it, in the prompt's format
    ``Final Answer: \\boxed{your_answer}`` (AIME.yaml ``doc_to_text``), graded against the field
    the task reads.

    AMC/utils.py::

        if is_equiv(remove_boxed(boxed_answer), str(doc["answer"])):
        ...
        str1 = str1.lstrip('0')
        if '.' in str1 and str1.split('.')[1].rstrip('0') == '':
            str1 = str1.split('.')[0]

    so AMC's float ``27.0`` matches ``27`` (all 40). Olympiad/utils.py::

        if is_equiv(remove_boxed(boxed_answer), doc["final_answer"][0]):

    and ``strip_string`` removes ``\\$`` but not ``$``: the 266 golds stored as ``$…$`` never
    match a clean answer (the documented misses); every other gold does.
    """
    items = problems[name]
    verdicts = grade_many([(p.metadata["gold_paper"], f"Final Answer: \\boxed{{{p.answer}}}") for p in items],
                          benchmark=name, mode="paper")
    missed = [p for p, v in zip(items, verdicts) if not v.correct]
    assert len(missed) == EXPECTED_MISSES[name]
    assert all("$" in p.metadata["gold_paper"] for p in missed)
    if name == "olympiadbench":
        assert sum("$" in p.metadata["gold_paper"] for p in items) == 266  # every "$" gold is missed


@pytest.mark.parametrize("name", BENCHMARKS)
def test_golds_boxed_exactly_as_the_task_stores_them_all_match(problems, name):
    """The harness matches its own gold: ``$69$,$84$`` boxed verbatim does match Olympiad."""
    def stated(p):  # GSM8K's stored gold is a worked solution; its answer is the text after ####
        return p.metadata["gold_paper"].split("####")[-1].strip() if name == "gsm8k" else p.metadata["gold_paper"]

    items = problems[name]
    assert all(paper(p.metadata["gold_paper"], f"Final Answer: \\boxed{{{stated(p)}}}", name) for p in items)


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_different_gold_of_the_same_benchmark_never_matches(problems, name):
    """Each problem answered with the next problem's (different) gold. The one hit is real:
    MATH-500 golds ``x=5`` and ``5`` are one value, and ``strip_string`` drops ``x=``
    (``if len(string.split("=")[0]) <= 2: string = string.split("=")[1]``)."""
    items = problems[name]
    hits = []
    for i, p in enumerate(items):
        other = next(q for q in items[i + 1:] + items[:i] if q.answer != p.answer)
        if paper(p.metadata["gold_paper"], f"Final Answer: \\boxed{{{other.answer}}}", name):
            hits.append((p.answer, other.answer))
    assert hits == ([("5", "x=5")] if name == "math500" else [])


def test_gold_fields_are_read_as_each_task_reads_them():
    """AIME/utils.py ``doc["answer"]``; AMC/utils.py ``str(doc["answer"])``; Olympiad/utils.py
    ``doc["final_answer"][0]``; hendrycks_math_500/utils.py
    ``boxed_expected_answer = last_boxed_only_string(doc["solution"])``; gsm8k-cot-zeroshot.yaml
    ``doc_to_target: "{{answer}}"``."""
    assert paper_gold("aime24", {"answer": "025"}) == "025"
    assert paper_gold("amc23", {"answer": -1.0}) == "-1.0"
    assert paper_gold("olympiadbench", {"final_answer": ["$69$,$84$", "$x$"]}) == "$69$,$84$"
    assert paper_gold("math500", {"answer": "3", "solution": "So $\\boxed{\\frac{6}{2}}$."}) == "\\frac{6}{2}"
    assert paper_gold("math500", {"answer": "3", "solution": "no box"}) is None
    assert paper_gold("gsm8k", {"answer": "9 * 2 = 18\n#### 18"}) == "9 * 2 = 18\n#### 18"


# -- extraction ----------------------------------------------------------------------------------------

def test_generation_stops_at_problem_so_a_later_box_is_never_read():
    """AIME.yaml ``generation_kwargs: until: - "Problem:"`` (vLLM ``stop``; the stop string itself
    is not returned). A model that starts a new "Problem:" has said all it will say."""
    response = "so \\boxed{4}.\n\nProblem: Find x.\nAnswer: \\boxed{7}"
    assert cut_at_stop(response, PAPER_TASKS["math500"].stop) == "so \\boxed{4}.\n\n"
    assert paper("4", response, "math500") and not paper("7", response, "math500")
    verdict = grade("7", "Problem: restated. Then \\boxed{7}", benchmark="aime24", mode="paper")
    assert not verdict.correct and "stop string 'Problem:'" in verdict.reason


def test_last_box_only_unclosed_box_has_no_answer_and_space_form_wins():
    """utils.py ``last_boxed_only_string``::

        idx = string.rfind("\\boxed")
        if "\\boxed " in string:
            return "\\boxed " + string.split("\\boxed ")[-1].split("$")[0]
        ...
        if right_brace_idx is None:
            retval = None
    """
    assert paper("5", "first \\boxed{5} then \\boxed{6", "math500") is False  # no fallback to the closed one
    assert last_boxed_only("a \\boxed 5$ and later \\boxed{6}") == "\\boxed 5"
    assert paper("5", "a \\boxed 5$ and later \\boxed{6}", "math500")  # the spaced form wins
    assert paper("3", "\\fbox{3}", "aime24") and not paper("3", "the answer is 3", "aime24")


def test_an_fbox_inside_the_last_box_fails_the_harness_assert():
    """utils.py ``remove_boxed``: ``if "\\fbox{" in s: ... assert s[: len(left)] == left`` raises
    for ``\\boxed{\\fbox{3}}`` (the harness run stops); micota grades it incorrect and says so."""
    verdict = grade("3", "Final Answer: \\boxed{\\fbox{3}}", benchmark="aime24", mode="paper")
    assert not verdict.correct and "raises" in verdict.reason


def test_gsm8k_flexible_extract_takes_the_last_number_like_run():
    """gsm8k-cot-zeroshot.yaml::

        - name: "flexible-extract"
          filter:
            - function: "regex"
              group_select: -1
              regex_pattern: "(-?[$0-9.,]{2,})|(-?[0-9]+)"

    then ``exact_match`` with ``regexes_to_ignore: [",", "\\$", "(?s).*#### ", "\\.$"]`` and
    ``ignore_case: true`` on prediction and reference (the whole ``answer`` text) alike."""
    gold = "She makes 9 * 2 = $<<9*2=18>>18.\n#### 1,018"
    assert flexible_extract("so she pays $1,018.") == "$1,018."
    assert paper(gold, "so she pays $1,018.", "gsm8k") and paper(gold, "Final Answer: \\boxed{1018}", "gsm8k")
    assert not paper(gold, "She pays $1,018.00", "gsm8k")  # only a final "." is ignored
    assert not paper(gold, "1018 dollars, after 3 days", "gsm8k")  # the LAST number is read
    assert not paper(gold, "no digits at all", "gsm8k")  # RegexFilter fallback "[invalid]"
    assert paper(gold, "1018\nQ: next question 5", "gsm8k")  # until: "Q:" cuts the rest
    assert exact_match("18", "#### 18") and not exact_match("18", "18 #### 19")


# -- comparison ----------------------------------------------------------------------------------------

def test_leading_zero_rule_applies_to_aime_amc_olympiad_but_not_math500():
    """AIME/AMC/Olympiad ``is_equiv`` start with ``str1 = str1.lstrip('0')``; the copy in
    hendrycks_math_500/utils.py has no such lines."""
    for name in ("aime24", "amc23", "olympiadbench"):
        assert paper("025", "\\boxed{25}", name) and paper("27.0", "\\boxed{27.000}", name)
    assert not paper("025", "\\boxed{25}", "math500") and not paper("27.0", "\\boxed{27}", "math500")
    assert paper("0", "\\boxed{}", "aime24")  # "0".lstrip('0') == "" == "".lstrip('0')
    assert drop_leading_zeros("0.50") == ".50" and drop_leading_zeros("1.0.5") == "1"
    assert is_equiv("0.5", "\\frac12", leading_zeros=True)  # ".5" -> "0.5" -> \frac{1}{2}


def test_strip_string_raises_where_the_original_raises_then_raw_text_is_compared():
    """``is_equiv``: ``try: ss1 = strip_string(str1) ... except Exception: return str1 == str2``.
    ``fix_a_slash_b`` lets ``int()`` raise (its ``except AssertionError`` misses ``ValueError``),
    ``fix_sqrt`` indexes an empty remainder, ``remove_right_units`` asserts one ``\\text{ ``."""
    for text in ("x/2", "2\\sqrt", "\\frac", "1\\text{ m}\\text{ s}"):
        with pytest.raises(StripError):
            strip_string(text)
    assert not is_equiv("x / 2", "x/2", leading_zeros=False)  # raw strings differ by the spaces
    assert is_equiv("\\dfrac{x}{2}", "\\frac{x}{2}", leading_zeros=False)
    assert strip_string("3/4") == "\\frac{3}{4}" and strip_string("03/4") == "03/4"  # int("03") prints "3"


def test_strip_string_normalises_the_classic_forms():
    """The hendrycks_math normaliser: ``\\left``/``\\right``, ``dfrac``, ``\\%``, ``\\$``, ``k = ``."""
    assert strip_string("\\left( 3, \\dfrac12 \\right)") == "(3,\\frac{1}{2})"
    assert strip_string("10\\%") == "10" and strip_string("\\$5") == "5" and strip_string("x = 3") == "3"
    assert strip_string("5\\text{ cm}") == "5" and strip_string("90^\\circ") == "90"


def test_dollar_wrapped_answers_match_only_dollar_wrapped_golds():
    """``strip_string`` has ``string.replace("\\\\$", "")`` (escaped dollars) and nothing for ``$``."""
    assert paper("$2n$", "\\boxed{$2n$}", "olympiadbench") and not paper("$2n$", "\\boxed{2n}", "olympiadbench")
