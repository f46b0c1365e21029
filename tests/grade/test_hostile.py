"""Hostile inputs: never crash, never hang, never execute (issue 3, "Safety and bounded time").

Timing asserts check the *limit mechanism* (a deliberately slow symbolic job is cut off at the
limit we ask for, in the main thread and in a worker thread), not how fast this machine is.
"""

from __future__ import annotations

import threading
import time

import pytest

from micota.grade import grade, symbolic
from micota.grade.symbolic import symbolic_equal, warm_up

HOSTILE = {
    "200KB response": "word " * 40_000 + "\\boxed{6}",
    "10k unclosed boxes": "\\boxed{" * 10_000,
    "power tower": "\\boxed{10^{10^{10}}}",
    "huge factorial": "\\boxed{(10^{100})!}",
    "100k digits": "\\boxed{" + "9" * 100_000 + "}",
    "10k-deep braces": "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}",
    "unbalanced braces": "\\boxed{" + "}" * 10 + "{" * 1000,
    "lone surrogate": "\\boxed{\ud800 7}",
    "NUL bytes": "\\boxed{\x00 7\x00}",
    "python payload": "\\boxed{__import__('os').system('touch PWNED')}",
    "eval payload": "The answer is eval(\"__import__('os').system('touch PWNED')\")",
    "huge exponent": "\\boxed{2^{99999999}}",
    "huge sci": "\\boxed{1e999999999}",
    "slow expansion": "\\boxed{(x+y+z+1)^{200}}",
    "50k boxes": "\\boxed{1}" * 50_000,
    "unit-word backtracking": "\\boxed{5 " + "m" * 1500 + "x}",
    "unclosed boxes then 200KB": "\\boxed{" * 20 + "x " * 100_000,
    "phrase flood": "the answer is " * 15_000,
    "think never closes": "<think>" + "\\boxed{5}" * 1000,
}


@pytest.fixture(scope="module", autouse=True)
def warm_symbolic_child():
    warm_up()  # the first start of the child (imports) is not charged to a case


@pytest.mark.parametrize("name", sorted(HOSTILE))
@pytest.mark.parametrize("gold", ["5", "x^2+1"])
def test_hostile_input_is_wrong_bounded_and_inert(name, gold, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    start = time.monotonic()
    verdict = grade(gold, HOSTILE[name], time_limit_s=2.0)
    elapsed = time.monotonic() - start
    assert verdict.correct is False and verdict.reason
    assert elapsed < 2.0 + 1.0, f"{name}: {elapsed:.2f}s"  # limit + restart slack on a loaded CI box
    assert not (tmp_path / "PWNED").exists()


def _slow_job(timeout_s: float) -> tuple[float, tuple]:
    start = time.monotonic()
    result = symbolic_equal("(x+y+z+1)^{300}", "(x+y+z+2)^{300}", timeout_s)
    return time.monotonic() - start, result


@pytest.mark.parametrize("limit", [0.3, 1.0])
def test_limit_mechanism_cuts_off_at_the_requested_limit(limit):
    """The child's own alarm stops the work just before the limit; the child stays warm."""
    elapsed, (same, reason) = _slow_job(limit)
    assert same is None and "timed out" in reason
    assert limit - symbolic.ALARM_MARGIN_S - 0.05 <= elapsed < limit + 0.5
    assert symbolic_equal("x+x", "2x", 5.0)[0] is True


def test_hard_kill_when_the_child_ignores_its_alarm(monkeypatch):
    """Work that never yields to signals (C-level big-int loops) is killed at the limit itself."""
    monkeypatch.setattr(symbolic, "ALARM_MARGIN_S", -30.0)  # the child's alarm now comes far too late
    elapsed, (same, reason) = _slow_job(0.5)
    assert same is None and "timed out" in reason
    assert 0.5 <= elapsed < 1.0
    monkeypatch.undo()
    assert symbolic_equal("x+x", "2x", 30.0)[0] is True  # the replacement child answers


def _in_thread(job):
    out = {}
    thread = threading.Thread(target=lambda: out.setdefault("result", job()))
    thread.start()
    thread.join(timeout=120)
    return out["result"]


def test_limit_mechanism_works_in_a_worker_thread():
    def job():
        warm_up()  # this thread's own child; its first start is not part of the measurement
        return _slow_job(0.5)

    elapsed, (same, reason) = _in_thread(job)
    assert same is None and "timed out" in reason
    assert 0.5 - symbolic.ALARM_MARGIN_S - 0.05 <= elapsed < 1.0


def test_grade_in_threads_decides_symbolic_cases():
    results = {}
    def work(key, gold, answer):
        results[key] = grade(gold, f"\\boxed{{{answer}}}", time_limit_s=10)  # threads, not speed: the box may be busy
    threads = [threading.Thread(target=work, args=(k, "(x+1)^2", a)) for k, a in enumerate(["x^2+2x+1", "x^2+1"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert results[0].correct and not results[1].correct, results
