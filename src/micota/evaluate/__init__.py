"""Evaluation: models × benchmarks, graded in two modes, with per-sample records.

Public API::

    from micota.evaluate import EvaluateConfig, run          # the `evaluate` stage
    from micota.evaluate import count_reflection_markers, summarize_samples
"""

from micota.evaluate.config import BenchmarkRun, EvaluateConfig
from micota.evaluate.metrics import DEFAULT_REFLECTION_MARKERS, count_reflection_markers, summarize_samples
from micota.evaluate.run import RESULTS_NAME, run

__all__ = ["BenchmarkRun", "EvaluateConfig", "run", "RESULTS_NAME", "DEFAULT_REFLECTION_MARKERS",
           "count_reflection_markers", "summarize_samples"]
