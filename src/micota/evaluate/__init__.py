"""Evaluation: models × benchmarks under a protocol (greedy, sampled), scored in several modes.

Public API::

    from micota.evaluate import EvaluateConfig, run          # the `evaluate` stage
    from micota.evaluate import placement, preflight         # planner hooks (micota run --dry-run, checks)
    from micota.evaluate import PROTOCOLS, SCORINGS          # the protocol and scoring-mode tables
    from micota.evaluate import count_reflection_markers, summarize_samples
"""

from micota.evaluate.config import BenchmarkRun, EvaluateConfig, ModelEntry
from micota.evaluate.judge import JudgeConfig
from micota.evaluate.metrics import DEFAULT_REFLECTION_MARKERS, count_reflection_markers, summarize_samples
from micota.evaluate.plan import placement, preflight
from micota.evaluate.protocols import PROTOCOLS
from micota.evaluate.run import RESULTS_NAME, run
from micota.evaluate.scoring import SCORINGS

__all__ = ["BenchmarkRun", "EvaluateConfig", "ModelEntry", "JudgeConfig", "run", "placement", "preflight",
           "PROTOCOLS", "SCORINGS", "RESULTS_NAME", "DEFAULT_REFLECTION_MARKERS", "count_reflection_markers",
           "summarize_samples"]
