"""The engine interface and the table of engines.

An engine turns chat requests into completions. Engines are rows of :data:`ENGINES`
(``name -> "module:Class"``), imported lazily so optional stacks are only needed when used.
Rows today: ``hf`` (transformers, CPU or GPU), ``openai`` (any OpenAI-compatible server,
e.g. ``vllm serve``) and ``scripted`` (the micro-lab's teacher); an in-process vLLM engine
would join by adding a class with the same ``generate``. Every engine class takes an :class:`EngineConfig` and implements
``generate(requests) -> Iterator[Completion]``, yielding completions as they finish (any
order); the writer handles ordering, resuming and de-duplication.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Optional, Protocol, Sequence

from pydantic import Field

from micota.config import StrictModel
from micota.errors import MicotaError

FinishReason = Literal["stop", "length"]


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete. ``id`` is unique within a run and stable across re-runs."""

    id: str
    messages: list[dict[str, str]]  # chat messages; the engine applies the model's chat template
    meta: dict[str, Any] = field(default_factory=dict)  # carried into the output record untouched


@dataclass(frozen=True)
class Completion:
    """One finished sample: ``finish_reason`` is "length" when max_new_tokens cut it off."""

    id: str
    text: str
    n_tokens: int
    finish_reason: FinishReason


class Engine(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]: ...


class ScriptedOptions(StrictModel):
    """Options of the micro-lab's scripted teacher (engine: scripted)."""

    style: Literal["direct", "short", "long"] = "long"  # solution style the teacher writes
    error_rate: float = Field(0.0, ge=0.0, le=1.0)  # share of answers made deliberately wrong


class EngineConfig(StrictModel):
    """How to generate: which engine and model, and the sampling settings."""

    engine: Literal["hf", "scripted", "openai"] = "hf"  # rows of ENGINES
    model: str  # HF hub id or local model folder (scripted: a tokenizer folder, for token counts)
    tokenizer: Optional[str] = None  # defaults to `model`
    max_new_tokens: int = Field(16384, ge=1)  # the paper generates up to 16K tokens
    temperature: float = Field(0.0, ge=0.0)  # 0 = greedy (the paper's setting)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    batch_size: int = Field(32, ge=1)  # prompts per forward batch (hf engine)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    device: str = "auto"  # "auto" picks cuda when available, else cpu
    seed: int = 0
    trust_remote_code: bool = False  # never run a model repo's code unless asked
    base_url: Optional[str] = None  # openai engine: the server's /v1 URL (e.g. `vllm serve` at http://localhost:8000/v1)
    api_key_env: str = "OPENAI_API_KEY"  # openai engine: environment variable holding the key (unset = no key)
    request_timeout_s: float = Field(3600.0, gt=0)  # openai engine: one request, 16K tokens included
    max_retries: int = Field(4, ge=0)  # openai engine: retries on connection errors and HTTP 429/5xx
    scripted: Optional[ScriptedOptions] = None


ENGINES: dict[str, str] = {
    "hf": "micota.generate.hf:HFEngine",
    "scripted": "micota.lab.teacher:ScriptedTeacherEngine",
    "openai": "micota.generate.openai:OpenAIEngine",
}


def load_engine(config: EngineConfig) -> Engine:
    """Instantiate the engine named by ``config.engine`` (imported lazily)."""
    target = ENGINES.get(config.engine)
    if target is None:
        raise MicotaError(f"engine {config.engine!r} is unknown. Available: {', '.join(ENGINES)}.")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MicotaError(
            f"engine {config.engine!r} needs a package that is not installed ({exc.name}). "
            f"Install it (e.g. `pip install micota[gpu]` for vllm) or use engine: hf."
        ) from None
    return getattr(module, class_name)(config)
