"""Generation: engines behind one interface, and a resumable sharded JSONL writer.

Public API::

    from micota.generate import EngineConfig, GenerationRequest, Completion, load_engine
    from micota.generate import generate_records       # resumable, used by stages
    from micota.generate.run import GenerateConfig, run  # the `generate` stage
"""

from micota.generate.engine import Completion, EngineConfig, GenerationRequest, load_engine
from micota.generate.writer import generate_records

__all__ = ["Completion", "EngineConfig", "GenerationRequest", "load_engine", "generate_records"]
