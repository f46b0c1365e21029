import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from micota.lab.solutions import write_solution, wrong_solution
from micota.lab.task import (
    STYLES,
    Problem,
    apply_op,
    format_user_turn,
    is_eval,
    make_problems,
    parse_problem,
    problem_record,
    solve,
)

problems = st.builds(
    Problem,
    start=st.integers(0, 9),
    steps=st.lists(st.tuples(st.sampled_from("+-*"), st.integers(0, 9)), min_size=1, max_size=6).map(tuple),
)


def _boxed(text: str) -> str:
    return text.rsplit("\\boxed{", 1)[1].split("}", 1)[0]


def test_solve_known_chain():
    assert solve(parse_problem("Compute 3+5*2-7 mod 10, left to right.")) == 9  # 8, 16->6, -1->9
    assert apply_op(0, "-", 1) == 9


@given(problems)
@settings(max_examples=100, deadline=None)
def test_parse_round_trips_inside_a_prompt(problem):
    embedded = "Some preamble.\n" + format_user_turn(problem.text)
    assert embedded.endswith("put your final answer within \\boxed{}.")
    assert format_user_turn(problem.text, "lab_problem") == problem.text
    assert parse_problem(embedded) == problem


def test_parse_rejects_other_text():
    assert parse_problem("What is 1+1?") is None
    assert parse_problem("Compute 12+3 mod 10, left to right.") is None  # two-digit operands are not lab problems


@given(problems, st.sampled_from(STYLES))
@settings(max_examples=100, deadline=None)
def test_every_style_ends_in_the_right_box(problem, style):
    text = write_solution(problem, style)
    assert text.rstrip(".").endswith(f"\\boxed{{{solve(problem)}}}")


@given(problems, st.sampled_from(STYLES), st.integers(0, 1000))
@settings(max_examples=150, deadline=None)
def test_wrong_solutions_box_a_wrong_answer(problem, style, seed):
    text = wrong_solution(problem, style, random.Random(seed))
    assert _boxed(text) != str(solve(problem))


def test_long_style_reflects_and_is_longest():
    problem = parse_problem("Compute 3+5*2-7 mod 10, left to right.")
    long, short, direct = (write_solution(problem, s) for s in ("long", "short", "direct"))
    for word in ("Wait", "Hmm", "let me check", "let me verify"):
        assert word in long
    assert "Wait" not in short
    assert len(long) > 3 * len(short) > 3 * len(direct)


def test_split_is_disjoint_stable_and_seed_independent():
    train = make_problems(300, seed=0, split="train")
    evals = make_problems(300, seed=1, split="eval")
    assert not {p.text for p in train} & {p.text for p in evals}
    assert all(is_eval(p.text) for p in evals) and not any(is_eval(p.text) for p in train)
    assert [p.text for p in make_problems(300, seed=0, split="train")] == [p.text for p in train]
    assert len({p.text for p in train}) == 300


def test_make_problems_cycles_difficulty_and_excludes():
    first = make_problems(30, seed=0, split="train", min_difficulty=2, max_difficulty=4)
    assert sorted({p.difficulty for p in first}) == [2, 3, 4]
    second = make_problems(30, seed=0, split="train", exclude={p.text for p in first})
    assert not {p.text for p in first} & {p.text for p in second}


def test_make_problems_fails_when_space_is_too_small():
    with pytest.raises(ValueError, match="could not find"):
        make_problems(400, seed=0, split="train", min_difficulty=1, max_difficulty=1, ops="+")


def test_problem_record_fields():
    record = problem_record(parse_problem("Compute 9*9 mod 10, left to right."))
    assert record["answer"] == "1" and record["id"].startswith("lab-") and record["difficulty"] == 1
