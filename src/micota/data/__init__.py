"""Benchmarks and prompt sets as versioned data, and prompt templates as files.

Public API::

    from micota.data import load_benchmark, load_prompt_set, load_lab_benchmark, render_prompt
    from micota.data import BENCHMARKS, Problem
"""

from micota.data.benchmarks import BENCHMARKS, BenchmarkSpec, Problem, benchmark_spec, load_benchmark
from micota.data.prompt_sets import load_lab_benchmark, load_prompt_set
from micota.data.prompts import available_prompts, prompt_sha256, render_prompt

__all__ = [
    "BENCHMARKS", "BenchmarkSpec", "Problem", "benchmark_spec", "load_benchmark",
    "load_lab_benchmark", "load_prompt_set", "available_prompts", "prompt_sha256", "render_prompt",
]
