"""Reflection-marker counts and per-benchmark summaries."""

from __future__ import annotations

import pytest

from micota.evaluate.metrics import count_reflection_markers, summarize_samples


def test_markers_count_words_not_substrings_and_span_whitespace():
    text = "Wait, that is wrong. Let me\ncheck: awaiting... WAIT. Alternatively, hmm."
    counts = count_reflection_markers(text, ["wait", "let me check", "alternatively", "hmm"])
    assert counts == {"wait": 2, "let me check": 1, "alternatively": 1, "hmm": 1}


def _sample(correct_robust, correct_paper, n_tokens, finish, wait, pid=None):
    return {"id": pid or f"p{n_tokens}", "correct_robust": correct_robust, "correct_paper": correct_paper, "n_tokens": n_tokens,
            "finish_reason": finish, "reflection": {"wait": wait}, "reflection_total": wait}


def test_summary_has_both_modes_lengths_truncation_and_reflection():
    samples = [_sample(True, True, 10, "stop", 0), _sample(True, False, 30, "length", 4),
               _sample(False, False, 20, "stop", 2), _sample(True, False, 40, "stop", 0)]
    summary = summarize_samples(samples)
    assert summary["n"] == 4
    assert summary["accuracy_robust"] == pytest.approx(0.75)
    assert summary["accuracy_paper"] == pytest.approx(0.25)
    assert summary["mean_tokens"] == pytest.approx(25.0) and summary["median_tokens"] == 25
    assert summary["truncation_rate"] == pytest.approx(0.25)
    assert summary["reflection_per_response"] == pytest.approx(1.5)
    assert summary["reflection_by_marker"] == {"wait": 1.5}
