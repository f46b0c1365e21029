"""The micro-lab's scripted teacher: an engine that writes lab solutions instead of sampling a model.

It is the lab's strong teacher (``style: long``, the paper's DeepSeek-R1-Distill-Qwen-32B)
and its small / short-CoT teacher (``style: short``, for Mix-Large and Mix-Long). It is wrong
on a configurable share of problems, decided from (seed, problem) alone, so re-runs and
resumed runs produce identical data and the correctness filter has real work.
"""

from __future__ import annotations

import hashlib
import random
from typing import Iterator, Sequence

from micota.generate.engine import Completion, EngineConfig, GenerationRequest, ScriptedOptions
from micota.lab.solutions import write_solution, wrong_solution
from micota.lab.task import parse_problem

# What the teacher says to a prompt that is not a lab problem: no box, so it grades wrong.
CANNOT_SOLVE = "I do not know how to solve this problem."


class ScriptedTeacherEngine:
    """Engine ``scripted``: ``config.model`` is a tokenizer folder used to count (and cut) tokens."""

    def __init__(self, config: EngineConfig):
        from micota.hub import load_tokenizer

        self.config = config
        self.options = config.scripted or ScriptedOptions()
        self.tokenizer = load_tokenizer(config.tokenizer or config.model, field="engine.model")

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        for request in requests:
            yield self._complete(request.id, _last_user_message(request.messages))

    def is_wrong(self, problem_text: str) -> bool:
        """Whether this teacher answers ``problem_text`` wrongly (a deterministic coin per seed and problem)."""
        return _unit_interval(f"{self.config.seed}|wrong|{problem_text}") < self.options.error_rate

    def solution_text(self, prompt: str) -> str:
        """The full (untruncated) answer the teacher writes for a user prompt."""
        problem = parse_problem(prompt)
        if problem is None:
            return CANNOT_SOLVE
        if self.is_wrong(problem.text):
            rng = random.Random(f"{self.config.seed}|slip|{problem.text}")
            return wrong_solution(problem, self.options.style, rng)
        return write_solution(problem, self.options.style)

    def _complete(self, request_id: str, prompt: str) -> Completion:
        text = self.solution_text(prompt)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        limit = self.config.max_new_tokens
        if len(ids) + 1 <= limit:  # +1: the end-of-turn token counts, as in the HF engine and vLLM
            return Completion(id=request_id, text=text, n_tokens=len(ids) + 1, finish_reason="stop")
        return Completion(id=request_id, text=self.tokenizer.decode(ids[:limit]), n_tokens=limit, finish_reason="length")


def _last_user_message(messages: list[dict[str, str]]) -> str:
    users = [m.get("content", "") for m in messages if m.get("role") == "user"]
    return users[-1] if users else ""


def _unit_interval(key: str) -> float:
    """A number in [0, 1) fixed by ``key``: stable across processes, unlike ``hash()``."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:12], 16) / 16**12
