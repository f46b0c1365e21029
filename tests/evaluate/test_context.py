"""The context-length guard: prompts are never truncated; the user picks error or lower."""

from __future__ import annotations

import json

import pytest

from micota.errors import MicotaError
from micota.evaluate.context import checked_max_new_tokens, guard_requests


def test_fitting_prompts_keep_max_new_tokens():
    assert checked_max_new_tokens([("a", 10), ("b", 20)], 100, 120) == 100


def test_overflow_fails_with_numbers_and_fix():
    with pytest.raises(MicotaError, match=r"prompt 'b' is 30 tokens.*max_new_tokens=100.*130 > .*120.*max_new_tokens: 90"):
        checked_max_new_tokens([("a", 10), ("b", 30)], 100, 120)


def test_lower_policy_lowers_to_the_room_left():
    assert checked_max_new_tokens([("a", 10), ("b", 30)], 100, 120, policy="lower") == 90


def test_prompt_that_fills_the_context_fails_even_when_lowering():
    with pytest.raises(MicotaError, match="fills the model's context"):
        checked_max_new_tokens([("a", 120)], 10, 120, policy="lower")


def test_guard_reads_the_models_context_and_chat_template(tiny_model):
    config = json.loads((tiny_model / "config.json").read_text())
    messages = {"q": [{"role": "user", "content": "What is 3 + 4?"}]}
    longer = {"q2": [{"role": "user", "content": "What is 3 + 4? " * 20}]}
    with pytest.raises(MicotaError, match=f"tiny on b: .*context of {config['max_position_embeddings']} tokens"):
        guard_requests(str(tiny_model), None, {"b": messages}, 16384, policy="error", where="tiny")
    lowered = guard_requests(str(tiny_model), None, {"a": messages, "b": longer}, 16384, policy="lower")
    assert 0 < lowered["b"] < lowered["a"] < config["max_position_embeddings"] - 5  # the chat template adds tokens too
    assert guard_requests(str(tiny_model), None, {"a": messages}, 8, policy="error") == {"a": 8}
