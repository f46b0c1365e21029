"""The ``evaluate`` stage: generate greedily for models × benchmarks, grade twice, summarise.

Layout under ``out_dir``::

    generations/<model>/max_new_<N>/shards/…   resumable raw generations of all benchmarks (micota.generate)
    samples/<model>/<benchmark>.jsonl           one auditable record per problem
    results.json                                {model: {benchmark: metrics}}, rewritten after each pair

Every sample is graded in both modes of :mod:`micota.grade` against the gold as the file
stores it: ``robust`` (normalised, math-verify equivalence) and ``paper`` (the papers' harness; today the classic MATH
grader the published numbers used), so the gap between them is visible per benchmark
(issue 5: AMC and OlympiadBench lose points under ``paper``). The context-length guard runs
for engines that load a local model (hf, vllm); remote and scripted engines skip it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from micota.data import Problem, benchmark_spec, load_benchmark, load_lab_benchmark, render_prompt
from micota.data.benchmarks import benchmark_file
from micota.data.prompts import prompt_sha256
from micota.errors import MicotaError
from micota.evaluate.config import LAB_BENCHMARK, BenchmarkRun, EvaluateConfig
from micota.evaluate.context import guard_requests
from micota.evaluate.metrics import count_reflection_markers, summarize_samples
from micota.generate import GenerationRequest, generate_records
from micota.jsonl import write_json, write_jsonl
from micota.manifest import Manifest
from micota.stage import StageResult, run_stage

RESULTS_NAME = "results.json"
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
    tasks = [resolve_task(b, cfg.data_dir, cfg.benchmark_source) for b in cfg.benchmarks]
    inputs = _input_paths(cfg)
    return run_stage("evaluate", cfg, cfg.out_dir, inputs, lambda out: _evaluate_all(cfg, tasks, out), resumable=True)


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
    inputs = {f"model:{name}": path for name, path in cfg.models.items() if Path(path).exists()}
    for bench in cfg.benchmarks:
        if bench.name != LAB_BENCHMARK and cfg.benchmark_source == "hub":
            continue  # a hub dataset is not a local file to hash
        path = bench.path if bench.name == LAB_BENCHMARK else benchmark_file(bench.name, cfg.data_dir)
        inputs[f"benchmark:{bench.name}"] = str(path)
    return inputs


def _evaluate_all(cfg: EvaluateConfig, tasks: list[BenchmarkTask], out: Path) -> StageResult:
    results: dict[str, dict[str, Any]] = {}
    outputs = {"results": RESULTS_NAME}
    for model_name, model_path in cfg.models.items():
        for task, samples, max_new in evaluate_model(cfg, model_name, model_path, tasks, out):
            rel = f"samples/{model_slug(model_name)}/{task.name}.jsonl"
            write_jsonl(out / rel, samples)
            results.setdefault(model_name, {})[task.name] = {
                **summarize_samples(samples), "samples": rel, "max_new_tokens": max_new,
                "prompt": task.prompt, "benchmark_version": task.version}
            outputs[f"samples:{model_name}:{task.name}"] = rel
            write_json(out / RESULTS_NAME, results)  # results on disk after every pair, not only at the end
    counts = {"models": len(cfg.models), "benchmarks": len(tasks),
              "samples": sum(r["n"] for per in results.values() for r in per.values())}
    return StageResult(outputs=outputs, counts=counts, metrics=results)


def evaluate_model(cfg: EvaluateConfig, model_name: str, model_path: str, tasks: list[BenchmarkTask],
                   out: Path) -> Iterator[tuple[BenchmarkTask, list[dict[str, Any]], int]]:
    """Generate (resumably) and grade one model on every benchmark; yield (task, samples, max_new_tokens).

    All benchmarks go through one engine load (vLLM start-up takes minutes), split only when
    the context guard lowered max_new_tokens for some benchmark.
    """
    requests = {task.name: [_request(cfg, task, problem) for problem in task.problems] for task in tasks}
    limits = {task.name: _checked_max_new_tokens(cfg, model_name, model_path, task.name, requests[task.name])
              for task in tasks}
    records: dict[str, dict[str, Any]] = {}
    for max_new in sorted(set(limits.values()), reverse=True):
        group = [r for task in tasks if limits[task.name] == max_new for r in requests[task.name]]
        gen_dir = out / "generations" / model_slug(model_name) / f"max_new_{max_new}"
        for record in generate_records(cfg.engine_for(model_path, max_new), group, gen_dir,
                                       desc=f"evaluate {model_name}", progress=cfg.progress):
            records[record["id"]] = record
    for task in tasks:
        task_records = [records[r.id] for r in requests[task.name]]
        robust, rule = grade_records(task_records, task.name, workers=cfg.grade_workers)
        yield task, [_sample(cfg, model_name, *graded) for graded in zip(task_records, robust, rule)], limits[task.name]


def _checked_max_new_tokens(cfg: EvaluateConfig, model_name: str, model_path: str, benchmark: str,
                            requests: list[GenerationRequest]) -> int:
    if cfg.engine.engine not in _GUARDED_ENGINES:  # remote/scripted engines have no local context to check
        return cfg.engine.max_new_tokens
    return guard_requests(model_path, cfg.engine.tokenizer, {r.id: r.messages for r in requests},
                          cfg.engine.max_new_tokens, policy=cfg.context_policy,
                          trust_remote_code=cfg.engine.trust_remote_code, where=f"models.{model_name} on {benchmark}")


def grade_records(records: list[dict[str, Any]], benchmark: str, *, workers: int | None = None) -> tuple[list[Any], list[Any]]:
    """Verdicts of every record in ``robust`` and in ``paper`` mode (micota.grade, imported lazily)."""
    from micota.grade import grade_many

    # the raw gold (AMC 27.0, OlympiadBench lists): robust mode normalises it, paper mode shows the published faults
    pairs = [(rec.get("gold_raw", rec["gold"]), rec["response"]) for rec in records]
    return (grade_many(pairs, benchmark=benchmark, mode="robust", workers=workers),
            grade_many(pairs, benchmark=benchmark, mode="paper", workers=workers))


def _request(cfg: EvaluateConfig, task: BenchmarkTask, problem: Problem) -> GenerationRequest:
    messages = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    messages.append({"role": "user", "content": render_prompt(task.prompt, problem.problem)})
    meta = {"benchmark": task.name, "problem_id": problem.id, "gold": problem.answer, "gold_raw": problem.metadata.get("gold_raw", problem.answer),
            "prompt_template": task.prompt,
            "prompt_sha256": prompt_sha256(task.prompt), "benchmark_version": task.version}
    return GenerationRequest(id=f"{task.name}/{problem.id}", messages=messages, meta=meta)


def _sample(cfg: EvaluateConfig, model_name: str, record: dict[str, Any], robust: Any, rule: Any) -> dict[str, Any]:
    reflection = count_reflection_markers(record["response"], cfg.reflection_markers)
    return {
        "id": record["problem_id"], "model": model_name, "benchmark": record["benchmark"],
        "prompt": record["messages"][-2]["content"], "gold": record["gold"], "response": record["response"],
        "extracted": robust.extracted, "extracted_paper": rule.extracted,
        "correct_robust": bool(robust.correct), "correct_paper": bool(rule.correct),
        "reason_robust": robust.reason, "reason_paper": rule.reason,
        "n_tokens": record["n_tokens"], "finish_reason": record["finish_reason"],
        "reflection": reflection, "reflection_total": sum(reflection.values()),
        "prompt_template": record["prompt_template"], "benchmark_version": record["benchmark_version"],
    }
