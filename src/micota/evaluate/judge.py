"""Scoring mode ``judge``: the Mix-Distillation LLM-judge second stage.

Upstream: Small-Model-Gap/Small-Model-Learnability-Gap,
``lm-evaluation-harness/math_metric_llm_eval_general.py`` (the script the README runs after
lm-eval: "For any incorrect result from this matching, use `Qwen2.5-32B-Instruct` to directly
compare the model generated answer in the "boxed{}" with the ground truth final answer"). What
it does, and what micota keeps:

* **Which samples.** ``resp_answer = remove_boxed(last_boxed_only_string(resp))``; a sample is
  sent to the judge when ``resp_answer is not None`` and its rule match failed. micota sends the
  samples whose ``paper`` verdict failed and that have that boxed answer (:func:`needs_judge`):
  ``paper`` mode extracts exactly that, from the response as the harness's stop string left it,
  so the judge compares ``extracted_paper``.
  Upstream's first stage is the script's own ``is_equiv`` against ``doc['answer']`` (no
  leading-zero rule), so a sample ``paper`` accepts (AMC ``27`` vs ``27.0``) went to the judge
  there and counts correct here without asking it. GSM8K is never judged (upstream scores it with
  ``math_metric_gsm8k.py``, flexible-extract only).
* **Gold.** ``doc['final_answer'][0]`` for OlympiadBench, ``doc['answer']`` otherwise, formatted
  by an f-string (AMC's float gold reads ``27.0``): :func:`judge_gold`.
* **Prompt.** ``_data/prompts/mix_distill_judge.txt`` verbatim, as the user turn after the
  system turn "You are Qwen, created by Alibaba Cloud. You are a helpful assistant." (upstream
  writes the Qwen2.5 chat string by hand; the model's chat template renders the same string).
* **Model and decoding.** ``LLM(model="Qwen/Qwen2.5-32B-Instruct", dtype="float16",
  tensor_parallel_size=4)``, ``SamplingParams(max_tokens=20, temperature=0.0, top_p=1.0,
  top_k=1)``: greedy, 20 new tokens — the defaults of :class:`JudgeEngineConfig`.
* **Parsing.** ``"True" in output`` -> correct, elif ``"False" in output`` -> incorrect, else
  None, which counts as incorrect (:func:`parse_verdict`; case-sensitive, True checked first).

Replies are kept in content-addressed shards (``judge/<engine key>/``, one request per distinct
problem, gold and answer), so a killed or extended evaluation never asks the judge twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field

from micota.config import StrictModel
from micota.data.prompts import load_prompt_template
from micota.generate.engine import EngineConfig, GenerationRequest
from micota.evaluate.store import JUDGE, messages_sha, store_dir

JUDGE_PROMPT = "mix_distill_judge"
QWEN_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
UNJUDGED_BENCHMARKS = frozenset({"gsm8k"})  # upstream scores GSM8K by flexible-extract only
_FIELD = re.compile(r"\{(problem|gold|answer)\}")


class JudgeEngineConfig(EngineConfig):
    """The judge's engine; defaults are upstream's judge (Qwen2.5-32B-Instruct, fp16, greedy, 20 tokens)."""

    model: str = "Qwen/Qwen2.5-32B-Instruct"
    max_new_tokens: int = Field(20, ge=1)  # SamplingParams(max_tokens=20)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "float16"  # LLM(dtype="float16")


class JudgeConfig(StrictModel):
    """``judge:`` of an evaluate config: which engine judges, with which prompt."""

    engine: JudgeEngineConfig = Field(default_factory=JudgeEngineConfig)  # any micota engine (vllm, openai, hf, ...)
    prompt: str = JUDGE_PROMPT  # template under micota/_data/prompts/ with {problem}, {gold}, {answer}
    system_prompt: Optional[str] = QWEN_SYSTEM  # upstream's hand-written Qwen2.5 system turn; None: no system turn


@dataclass(frozen=True)
class JudgeCase:
    """One sample the judge decides: the question, the gold and the boxed answer it compares."""

    problem: str
    gold: str
    answer: str


def judge_gold(gold_raw: Any) -> str:
    """The gold as upstream's judge prompt shows it: first list item, Python ``str`` of the rest.

    >>> judge_gold(27.0), judge_gold(["$69$,$84$", "$x$"]), judge_gold("025")
    ('27.0', '$69$,$84$', '025')
    """
    return str(gold_raw[0] if isinstance(gold_raw, list) and gold_raw else gold_raw)


def needs_judge(benchmark: str, paper_correct: bool, answer: Optional[str]) -> bool:
    """Whether a sample goes to the judge: ``paper`` failed, it boxed an answer, the benchmark is judged.

    >>> needs_judge("aime24", False, "25"), needs_judge("aime24", True, "25"), needs_judge("aime24", False, None)
    (True, False, False)
    """
    return benchmark not in UNJUDGED_BENCHMARKS and not paper_correct and answer is not None


def parse_verdict(reply: str) -> Optional[bool]:
    """Upstream's parsing of the judge's reply: True if "True" occurs, else False if "False" does, else None.

    >>> parse_verdict(" True"), parse_verdict("False."), parse_verdict("true"), parse_verdict("False, not True")
    (True, False, None, True)
    """
    if "True" in reply:
        return True
    if "False" in reply:
        return False
    return None


def render_judge_prompt(template: str, case: JudgeCase) -> str:
    """Fill ``{problem}``, ``{gold}``, ``{answer}`` in one pass (a problem that contains ``{gold}`` stays literal)."""
    values = {"problem": case.problem, "gold": case.gold, "answer": case.answer}
    return _FIELD.sub(lambda m: values[m.group(1)], template)


def judge_request(cfg: JudgeConfig, case: JudgeCase) -> GenerationRequest:
    """The chat request of one case; its id is the hash of the messages, so equal cases share one reply."""
    messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    messages.append({"role": "user", "content": render_judge_prompt(load_prompt_template(cfg.prompt), case)})
    return GenerationRequest(id=f"judge@{messages_sha(messages)}", messages=messages)


def judge_replies(cfg: JudgeConfig, engine: EngineConfig, cases: list[JudgeCase], root: Path, *,
                  progress: bool = True) -> dict[JudgeCase, str]:
    """The judge's reply to every case, asking the engine only for cases not already on disk under ``root``."""
    from micota.generate import generate_records

    requests = {case: judge_request(cfg, case) for case in dict.fromkeys(cases)}
    unique = list({r.id: r for r in requests.values()}.values())
    if not unique:
        return {}
    folder = store_dir(root, JUDGE, engine, label=cfg.prompt)
    records = generate_records(engine, unique, folder, desc="judge", progress=progress)
    by_id = {record["id"]: record["response"] for record in records}
    return {case: by_id[request.id] for case, request in requests.items()}
