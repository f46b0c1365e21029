"""Evaluation protocols as rows of a table: how many responses per problem, drawn how.

* ``greedy``: one response per problem at temperature 0 — the MiCoTA and Mix-Distillation
  papers' setting (lm-eval tasks with ``do_sample: false``).
* ``sampled``: ``n`` responses per problem at temperature 0.6, top_p 0.95 — the protocol the
  long-CoT distillation literature reports (DeepSeek-R1 report, §3.1 evaluation setup: "a
  sampling temperature of 0.6 and a top-p value of 0.95 to generate k responses", pass@1 the
  mean correctness over them). Each sample is its own request with its own
  seed, derived from the engine seed and the request, so a resumed or re-ordered run draws the
  same sample for the same request. Reported as pass@1 mean ± std over the ``n`` sample sets and
  ``maj@n`` (see :mod:`micota.evaluate.metrics`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Optional

from micota.generate.engine import EngineConfig


@dataclass(frozen=True)
class Protocol:
    """One protocol row: default responses per problem and the sampling it implies."""

    name: str
    samples: int  # default responses per problem
    temperature: Optional[float]  # default temperature (None: the engine's, which must be 0)
    top_p: Optional[float] = None
    greedy: bool = False  # one response at temperature 0
    doc: str = field(default="", compare=False)

    def sampling_defaults(self) -> dict[str, Any]:
        """Engine fields this protocol sets unless the recipe set them itself."""
        return {k: v for k, v in (("temperature", self.temperature), ("top_p", self.top_p)) if v is not None}

    def check(self, samples: int, engine: EngineConfig) -> None:
        """A ValueError naming the fix when ``samples`` or the engine's temperature contradict the protocol."""
        if self.greedy and samples != 1:
            raise ValueError(f"protocol greedy draws one response per problem, got samples: {samples}; "
                             "use `protocol: sampled` for several")
        if self.greedy and engine.temperature > 0:
            raise ValueError(f"protocol greedy needs temperature 0, got engine.temperature: {engine.temperature}; "
                             "use `protocol: sampled` to sample")


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in (
        Protocol("greedy", samples=1, temperature=None, greedy=True, doc="one response, temperature 0"),
        Protocol("sampled", samples=8, temperature=0.6, top_p=0.95, doc="n responses, temperature 0.6, top_p 0.95"),
    )
}


def sample_seed(engine_seed: int, request_id: str) -> int:
    """The sampling seed of one request: fixed by the engine seed and the request, 31 bits.

    >>> sample_seed(0, "math500/x#1") == sample_seed(0, "math500/x#1") != sample_seed(1, "math500/x#1")
    True
    """
    digest = hashlib.sha256(f"{engine_seed}|{request_id}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF
