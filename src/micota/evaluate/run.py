"""The ``evaluate`` stage: generate for models × benchmarks under a protocol, score in each mode, summarise.

Layout under ``out_dir``::

    generations/<key>/shards/…           content-addressed generations (micota.evaluate.store), kept
                                         across config changes: finished work is never thrown away
    judge/<key>/shards/…                 content-addressed judge replies (scoring: judge)
    samples/<model>/<benchmark>.jsonl    one auditable record per problem (× sample)
    results.json                         {model: {benchmark: metrics}}, rewritten after each pair

Every sample is scored in each mode of ``scoring`` (micota.evaluate.scoring): ``robust``
against the gold as the file stores it, ``paper`` as the papers' harness reads it, and
optionally ``judge`` (micota.evaluate.judge), the LLM re-check of ``paper``'s failures, asked
once for all models after every model has been generated. The context-length guard runs for
engines that load a local model (hf, vllm); remote and scripted engines skip it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

from micota.data import Problem, benchmark_spec, load_benchmark, load_lab_benchmark, render_prompt
from micota.data.benchmarks import benchmark_file
from micota.data.prompts import prompt_sha256
from micota.errors import MicotaError
from micota.evaluate.config import LAB_BENCHMARK, BenchmarkRun, EvaluateConfig
from micota.evaluate.context import guard_requests
from micota.evaluate.judge import JudgeCase, judge_gold, judge_replies, needs_judge, parse_verdict
from micota.evaluate.metrics import count_reflection_markers, summarize_samples
from micota.evaluate.plan import check_sources, model_engines, placement, preflight, resolve_engine  # the planner's hooks
from micota.evaluate.protocols import PROTOCOLS, sample_seed
from micota.evaluate.scoring import gold_stored, grade_modes
from micota.evaluate.store import GENERATIONS, PRESERVED, request_id, store_dir
from micota.generate import GenerationRequest, generate_records
from micota.generate.engine import EngineConfig
from micota.jsonl import read_jsonl, write_json, write_jsonl
from micota.manifest import Manifest
from micota.stage import StageResult, run_stage

RESULTS_NAME = "results.json"
__all__ = ["run", "placement", "preflight", "resolve_task", "evaluate_model", "score_samples", "RESULTS_NAME"]
_GUARDED_ENGINES = {"hf", "vllm"}  # engines that run a local model with a fixed context


@dataclass(frozen=True)
class BenchmarkTask:
    """A benchmark resolved to problems, the prompt template and the data version."""

    name: str
    problems: list[Problem]
    prompt: str
    version: int


def model_slug(name: str) -> str:
    """A folder name for a display name ("Strong-Teacher CoT" -> "Strong-Teacher_CoT").

    >>> model_slug("Strong-Teacher CoT")
    'Strong-Teacher_CoT'
    """
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "model"


def run(cfg: EvaluateConfig) -> Manifest:
    """Run (or resume, or skip when done) the evaluation described by ``cfg``."""
    slugs = [model_slug(name) for name in cfg.models]
    if len(set(slugs)) != len(slugs):
        raise MicotaError(f"models: names {list(cfg.models)} map to clashing folder names {slugs}; rename one.")
    check_sources(cfg)
    tasks = [resolve_task(b, cfg.data_dir, cfg.benchmark_source) for b in cfg.benchmarks]
    return run_stage("evaluate", cfg, cfg.out_dir, _input_paths(cfg), lambda out: _evaluate_all(cfg, tasks, out),
                     resumable=True, preserve=PRESERVED)


def resolve_task(run: BenchmarkRun, data_dir: str | None, source: str = "local") -> BenchmarkTask:
    """Load the problems of one benchmark entry (first ``limit`` only) with its prompt and version."""
    if run.name == LAB_BENCHMARK:
        problems, prompt, version = load_lab_benchmark(run.path), "micota_generation", 1
    else:
        spec = benchmark_spec(run.name)
        problems, prompt, version = load_benchmark(run.name, data_dir, source=source), spec.prompt, spec.version
    prompt = run.prompt or prompt
    render_prompt(prompt, "")  # fail now, not after hours of generation, on a bad template name
    return BenchmarkTask(run.name, problems[: run.limit] if run.limit else problems, prompt, version)


def _input_paths(cfg: EvaluateConfig) -> dict[str, str]:
    """Local model folders and benchmark files, hashed into the manifest (hub ids are not files)."""
    inputs = {f"model:{name}": entry.model for name, entry in cfg.models.items() if Path(entry.model).exists()}
    if "judge" in cfg.scoring and cfg.judge is not None and Path(cfg.judge.engine.model).exists():
        inputs["judge:model"] = cfg.judge.engine.model
    for bench in cfg.benchmarks:
        if bench.name != LAB_BENCHMARK and cfg.benchmark_source == "hub":
            continue  # a hub dataset is not a local file to hash
        path = bench.path if bench.name == LAB_BENCHMARK else benchmark_file(bench.name, cfg.data_dir)
        inputs[f"benchmark:{bench.name}"] = str(path)
    return inputs


def _evaluate_all(cfg: EvaluateConfig, tasks: list[BenchmarkTask], out: Path) -> StageResult:
    results: dict[str, dict[str, Any]] = {}
    outputs = {"results": RESULTS_NAME}
    cases: dict[tuple[str, str], list[Optional[JudgeCase]]] = {}
    for model_name, engine in model_engines(cfg).items():
        for task, samples, max_new in evaluate_model(cfg, model_name, engine, tasks, out):
            rel = f"samples/{model_slug(model_name)}/{task.name}.jsonl"
            write_jsonl(out / rel, samples)
            results.setdefault(model_name, {})[task.name] = {
                **_summary(cfg, samples), "samples": rel, "max_new_tokens": max_new,
                "prompt": task.prompt, "benchmark_version": task.version}
            outputs[f"samples:{model_name}:{task.name}"] = rel
            if "judge" in cfg.scoring:
                cases[(model_name, task.name)] = _judge_cases(task, samples)
            write_json(out / RESULTS_NAME, results)  # results on disk after every pair, not only at the end
    if "judge" in cfg.scoring:
        _apply_judge(cfg, cases, results, out)
    counts = {"models": len(cfg.models), "benchmarks": len(tasks),
              "samples": sum(r["n_samples"] for per in results.values() for r in per.values() if r["n"])}
    if "judge" in cfg.scoring:
        counts["judged"] = sum(r.get("judged", 0) for per in results.values() for r in per.values())
    return StageResult(outputs=outputs, counts=counts, metrics=results)


def evaluate_model(cfg: EvaluateConfig, model_name: str, engine: EngineConfig, tasks: list[BenchmarkTask],
                   out: Path) -> Iterator[tuple[BenchmarkTask, list[dict[str, Any]], int]]:
    """Generate (resumably) and score one model on every benchmark; yield (task, samples, max_new_tokens).

    All benchmarks go through one engine load (vLLM start-up takes minutes), split only when
    the context guard lowered max_new_tokens for some benchmark.
    """
    requests = {task.name: [_request(cfg, engine, task, problem, k) for problem in task.problems
                            for k in range(cfg.samples)] for task in tasks}
    limits = _checked_limits(cfg, model_name, engine, requests)
    records: dict[str, dict[str, Any]] = {}
    for max_new in sorted(set(limits.values()), reverse=True):
        group = [r for task in tasks if limits[task.name] == max_new for r in requests[task.name]]
        sized = engine.model_copy(update={"max_new_tokens": max_new})
        folder = store_dir(out, GENERATIONS, sized, label=model_name)
        for record in generate_records(sized, group, folder, desc=f"evaluate {model_name}", progress=cfg.progress):
            records[record["id"]] = record
    for task in tasks:
        task_records = [records.pop(r.id) for r in requests[task.name]]
        problems = [problem for problem in task.problems for _ in range(cfg.samples)]
        yield task, score_samples(cfg, model_name, task, problems, task_records), limits[task.name]


def _checked_limits(cfg: EvaluateConfig, model_name: str, engine: EngineConfig,
                    requests: dict[str, list[GenerationRequest]]) -> dict[str, int]:
    """max_new_tokens per benchmark after the context guard (remote/scripted engines have no local context)."""
    if engine.engine not in _GUARDED_ENGINES:
        return {name: engine.max_new_tokens for name in requests}
    groups = {name: {r.meta["problem_id"]: r.messages for r in reqs if r.meta["sample"] == 0} for name, reqs in requests.items()}
    return guard_requests(engine.model, engine.tokenizer, groups, engine.max_new_tokens, policy=cfg.context_policy,
                          trust_remote_code=engine.trust_remote_code, where=f"models.{model_name}")


def _request(cfg: EvaluateConfig, engine: EngineConfig, task: BenchmarkTask, problem: Problem,
             sample: int) -> GenerationRequest:
    messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    messages.append({"role": "user", "content": render_prompt(task.prompt, problem.problem)})
    rid = request_id(task.name, problem.id, sample, messages)
    seed = None if PROTOCOLS[cfg.protocol].greedy else sample_seed(engine.seed, rid)
    meta = {"benchmark": task.name, "problem_id": problem.id, "sample": sample, "gold": problem.answer,
            "prompt_template": task.prompt, "prompt_sha256": prompt_sha256(task.prompt),
            "benchmark_version": task.version}
    return GenerationRequest(id=rid, messages=messages, meta=meta, seed=seed)


def score_samples(cfg: EvaluateConfig, model_name: str, task: BenchmarkTask, problems: list[Problem],
                  records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The sample records of one model × benchmark, scored in every grader mode of ``cfg.scoring``.

    Golds come from ``problems`` (the benchmark as loaded now), never from the stored generation.
    ``judge`` fields start as the ``paper`` verdict; :func:`_apply_judge` fills in the judge's.
    """
    verdicts = grade_modes(problems, [r["response"] for r in records], task.name, cfg.scoring,
                           workers=cfg.grade_workers)
    samples = []
    for i, (problem, record) in enumerate(zip(problems, records)):
        reflection = count_reflection_markers(record["response"], cfg.reflection_markers)
        sample = {"id": problem.id, "sample": record["sample"], "model": model_name, "benchmark": task.name,
                  "prompt": record["messages"][-2]["content"], "gold": problem.answer, "response": record["response"]}
        for mode, per_mode in verdicts.items():
            sample.update({f"correct_{mode}": bool(per_mode[i].correct), f"extracted_{mode}": per_mode[i].extracted,
                           f"reason_{mode}": per_mode[i].reason})
        if "judge" in cfg.scoring:
            # the judge compares the paper mode's answer: upstream's remove_boxed(last_boxed_only_string(resp))
            sample.update(correct_judge=sample["correct_paper"], extracted_judge=sample["extracted_paper"],
                          reason_judge=None)
        sample.update({
            "n_tokens": record["n_tokens"], "finish_reason": record["finish_reason"],
            "seed": record.get("sampling", {}).get("seed"), "reflection": reflection,
            "reflection_total": sum(reflection.values()), "prompt_template": record["prompt_template"],
            "benchmark_version": record["benchmark_version"]})
        samples.append(sample)
    return samples


def _summary(cfg: EvaluateConfig, samples: list[dict[str, Any]]) -> dict[str, Any]:
    modes = [m for m in cfg.scoring if samples and f"correct_{m}" in samples[0]]
    return summarize_samples(samples, modes, protocol=cfg.protocol, samples_per_problem=cfg.samples or 1)


def _judge_cases(task: BenchmarkTask, samples: list[dict[str, Any]]) -> list[Optional[JudgeCase]]:
    """The judge's case for each sample (None when the sample is not judged): question, gold, boxed answer."""
    problems = {p.id: p for p in task.problems}
    cases: list[Optional[JudgeCase]] = []
    for sample in samples:
        answer = sample["extracted_judge"]
        problem = problems[sample["id"]]
        judged = needs_judge(task.name, sample["correct_paper"], answer)
        cases.append(JudgeCase(problem.problem, judge_gold(gold_stored(problem)), answer) if judged else None)
    return cases


def _apply_judge(cfg: EvaluateConfig, cases: dict[tuple[str, str], list[Optional[JudgeCase]]],
                 results: dict[str, dict[str, Any]], out: Path) -> None:
    """Ask the judge about every selected sample of every model at once, then rewrite samples and results."""
    assert cfg.judge is not None  # the config validator requires it with scoring: judge
    wanted = [case for per_pair in cases.values() for case in per_pair if case is not None]
    replies = judge_replies(cfg.judge, resolve_engine(cfg.judge.engine, cfg.resources), wanted, out,
                            progress=cfg.progress)
    for (model_name, benchmark), per_sample in cases.items():
        entry = results[model_name][benchmark]
        samples = read_jsonl(out / entry["samples"])
        unparsed = 0
        for sample, case in zip(samples, per_sample):
            if case is None:
                continue
            verdict = parse_verdict(replies[case])
            sample.update(correct_judge=verdict is True, reason_judge=replies[case])
            unparsed += verdict is None
        write_jsonl(out / entry["samples"], samples)
        entry.update(_summary(cfg, samples), judged=sum(c is not None for c in per_sample), judge_unparsed=unparsed)
        write_json(out / RESULTS_NAME, results)
