"""The engine interface and the table of engines.

An engine turns chat requests into completions. Engines are rows of :data:`ENGINES`
(``name -> "module:Class"``), imported lazily so optional stacks are only needed when used.
Rows: ``hf`` (transformers, CPU or GPU), ``vllm`` (vLLM in-process), ``openai`` (any
OpenAI-compatible server, e.g. ``vllm serve``) and ``scripted`` (the micro-lab's teacher).
Every engine class takes an :class:`EngineConfig` and implements
``generate(requests) -> Iterator[Completion]``, yielding completions as they finish (any
order); the writer handles ordering, resuming and de-duplication. An engine class whose
``continuous`` attribute is true is handed every pending request at once (it keeps them all
in flight and schedules them itself); the others get fixed-size chunks of ``batch_size``.

Sampling is explicit in every engine: the parameters of :meth:`EngineConfig.sampling_params`
are sent as they are (``repetition_penalty`` 1.0 unless a recipe sets it), and a model's own
``generation_config.json`` defaults are ignored unless ``use_generation_config`` is set.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal, Optional, Protocol, Sequence, Union

from pydantic import Field

from micota.config import NOT_HASHED, StrictModel
from micota.errors import MicotaError

FinishReason = Literal["stop", "length"]
THINK_TEMPLATE = "<think>\n{reasoning}\n</think>\n\n{content}"  # an assistant turn with reasoning, as Qwen3's chat template renders it


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete. ``id`` is unique within a run and stable across re-runs."""

    id: str
    messages: list[dict[str, str]]  # chat messages; the engine applies the model's chat template
    meta: dict[str, Any] = field(default_factory=dict)  # carried into the output record untouched
    seed: Optional[int] = None  # per-request sampling seed (sampled protocols); None = the engine's seed


@dataclass(frozen=True)
class Completion:
    """One finished sample: ``finish_reason`` is "length" when max_new_tokens cut it off.

    ``reasoning`` holds a server's separate reasoning text (vLLM's ``reasoning_content``) when
    it sent one; ``text`` is then the response as the writer stores it (see the openai engine).
    """

    id: str
    text: str
    n_tokens: int
    finish_reason: FinishReason
    reasoning: Optional[str] = None


class Engine(Protocol):
    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]: ...


class ScriptedOptions(StrictModel):
    """Options of the micro-lab's scripted teacher (engine: scripted)."""

    style: Literal["direct", "short", "long"] = "long"  # solution style the teacher writes
    error_rate: float = Field(0.0, ge=0.0, le=1.0)  # share of answers made deliberately wrong


def _placement(default: Any, **kw: Any) -> Any:
    """A field that decides where or how fast generation runs, not what it writes: not hashed."""
    return Field(default, json_schema_extra=NOT_HASHED, **kw)


class EngineConfig(StrictModel):
    """How to generate: which engine and model, the sampling settings, and where it runs.

    Sampling fields enter the stage's config hash; placement and transport fields (batch size,
    parallelism, device, server address, timeouts) do not, so changing them after a kill
    resumes the finished samples instead of discarding them.
    """

    engine: Literal["hf", "vllm", "openai", "scripted"] = "hf"  # rows of ENGINES
    model: str  # HF hub id or local model folder (scripted: a tokenizer folder, for token counts)
    tokenizer: Optional[str] = None  # defaults to `model`
    # --- sampling (hashed): sent explicitly to every engine
    max_new_tokens: int = Field(16384, ge=1)  # the paper generates up to 16K tokens
    temperature: float = Field(0.0, ge=0.0)  # 0 = greedy (the paper's setting)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(-1, ge=-1)  # -1 = off (vLLM's convention); 0 is treated as off too
    repetition_penalty: float = Field(1.0, gt=0.0)  # 1.0 = off; Qwen2.5-Instruct's generation_config says 1.05-1.1
    stop: list[str] = Field(default_factory=list)  # extra stop strings (the stop text is not kept)
    seed: int = 0
    use_generation_config: bool = False  # apply the model's generation_config.json defaults (off: explicit parameters only)
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    trust_remote_code: bool = False  # never run a model repo's code unless asked
    # --- placement (not hashed)
    batch_size: int = _placement(32, ge=1)  # hf: prompts per forward batch; openai: requests in flight
    device: str = _placement("auto")  # hf: "auto" picks cuda when available, else cpu
    device_map: Optional[Literal["auto"]] = _placement(None)  # hf: spread one model over all visible GPUs
    data_parallel_size: Union[int, Literal["auto"]] = _placement(1)  # hf/vllm: model replicas; auto = GPUs // TP (CPU: 1)
    tensor_parallel_size: int = _placement(1, ge=1)  # vllm: GPUs per replica
    pipeline_parallel_size: int = _placement(1, ge=1)  # vllm: pipeline stages per replica
    max_model_len: Optional[int] = _placement(None, ge=16)  # vllm: context length (None: the model's)
    gpu_memory_utilization: float = _placement(0.9, gt=0.0, le=1.0)  # vllm: share of each GPU's memory
    enforce_eager: bool = _placement(False)  # vllm: skip CUDA-graph capture (fast start, slower decode)
    kv_cache_memory_gb: Optional[float] = _placement(None, gt=0)  # vllm on CPU: KV-cache size (VLLM_CPU_KVCACHE_SPACE)
    # --- transport (openai engine; not hashed)
    base_url: Optional[str] = _placement(None)  # the server's /v1 URL (e.g. `vllm serve` at http://localhost:8000/v1)
    api_key_env: str = _placement("OPENAI_API_KEY")  # environment variable holding the key (unset = no key)
    request_timeout_s: float = _placement(3600.0, gt=0)  # one request, 16K tokens included
    retry_total_s: float = _placement(900.0, ge=0)  # keep retrying a failing server this long (a vLLM restart takes minutes)
    max_retries: Optional[int] = _placement(None, ge=0)  # cap on tries per request (None: only retry_total_s limits)
    reasoning: Literal["join", "field", "drop"] = "join"  # server reasoning_content: join into the response as
    # the chat template writes it (<think>...</think>), keep only in the record's `reasoning` field, or drop
    reasoning_template: str = THINK_TEMPLATE  # how `join` writes reasoning and answer (Qwen3/QwQ/R1-distill markup)
    scripted: Optional[ScriptedOptions] = None

    def sampling_params(self) -> dict[str, Any]:
        """The effective sampling parameters, as every engine sends them and every record stores them."""
        return {
            "max_new_tokens": self.max_new_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p if self.temperature > 0 else 1.0,
            "top_k": self.top_k if self.temperature > 0 and self.top_k > 0 else -1,
            "repetition_penalty": self.repetition_penalty,
            "stop": list(self.stop),
            "seed": self.seed,
        }


ENGINES: dict[str, str] = {
    "hf": "micota.generate.hf:HFEngine",
    "vllm": "micota.generate.vllm:VLLMEngine",
    "scripted": "micota.lab.teacher:ScriptedTeacherEngine",
    "openai": "micota.generate.openai:OpenAIEngine",
}


def engine_class(name: str) -> type:
    """The class of the engine row ``name`` (its module imported lazily; heavy stacks load on use)."""
    target = ENGINES.get(name)
    if target is None:
        raise MicotaError(f"engine {name!r} is unknown. Available: {', '.join(ENGINES)}.")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MicotaError(
            f"engine {name!r} needs a package that is not installed ({exc.name}). "
            f"Install it (vLLM: see the README's GPU section; CPU: scripts/vllm_cpu_env.sh) or use engine: hf."
        ) from None
    return getattr(module, class_name)


def load_engine(config: EngineConfig) -> Engine:
    """Instantiate the engine named by ``config.engine`` (imported lazily)."""
    return engine_class(config.engine)(config)
