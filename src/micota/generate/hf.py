"""In-process Hugging Face engine: batched generation with ``model.generate``.

Prompts are chat-templated, sorted by length (so a batch wastes little padding) and
left-padded. The response is cut at the first end-of-sequence token (or stop string); a
response that hit ``max_new_tokens`` without one is reported with ``finish_reason="length"``
so the filter can drop truncated CoT instead of training on it.

Sampling is explicit: ``generate`` gets a ``GenerationConfig`` holding exactly the effective
parameters, and the model's own generation config is replaced by one with only its token ids,
because transformers fills every unset field from it (Qwen2.5-Instruct's says
``repetition_penalty`` 1.05) - unless the recipe sets ``use_generation_config``. Sampled
batches are seeded from their request ids, so a sample does not depend on which worker or
which resumed run drew it.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from micota.generate.engine import Completion, EngineConfig, GenerationRequest
from micota.generate.sampling import effective_sampling, hf_generation_config, neutral_generation_config, request_seed
from micota.hub import check_model_source, load_causal_lm, load_tokenizer, resolve_device


class HFEngine:
    """Greedy (temperature 0) or sampled generation with transformers on CPU, one GPU or (device_map) several."""

    def __init__(self, config: EngineConfig):
        self.config = config
        tokenizer_source = config.tokenizer or config.model
        check_model_source(config.model, field="engine.model", need_tokenizer=config.tokenizer is None)
        self.device = resolve_device(config.device)
        self.tokenizer = load_tokenizer(tokenizer_source, trust_remote_code=config.trust_remote_code, field="engine.tokenizer",
                                        model=config.model)
        self.tokenizer.padding_side = "left"
        # device_map loads the weights straight onto the GPU(s) instead of through a host-RAM copy
        device_map = config.device_map or (self.device if self.device != "cpu" else None)
        self.model = load_causal_lm(config.model, dtype=config.dtype, device=self.device, device_map=device_map,
                                    trust_remote_code=config.trust_remote_code, field="engine.model")
        self.stop_ids = stop_token_ids(getattr(self.model.generation_config, "eos_token_id", None), self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]
        model_defaults = self.model.generation_config.to_diff_dict()
        if not config.use_generation_config:
            self.model.generation_config = neutral_generation_config(self.model.generation_config)
        self.sampling = effective_sampling(config, model_defaults)
        self.generation_config = hf_generation_config(self.sampling, eos_token_ids=self.stop_ids, pad_token_id=self.pad_id)

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        encoded = [(r, self._encode(r.messages)) for r in requests]
        encoded.sort(key=lambda item: (-len(item[1]), item[0].id))
        size = self.config.batch_size
        for start in range(0, len(encoded), size):
            yield from self._generate_batch(encoded[start : start + size])

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        return chat_token_ids(self.tokenizer, messages)

    def _generate_batch(self, batch: list[tuple[GenerationRequest, list[int]]]) -> Iterator[Completion]:
        import torch

        width = max(len(ids) for _, ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, ids) in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        if self.sampling["temperature"] > 0:
            torch.manual_seed(_batch_seed(self.config.seed, [r for r, _ in batch]))
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(self.model.device),
                attention_mask=attention.to(self.model.device),
                generation_config=self.generation_config,
                **({"tokenizer": self.tokenizer} if self.sampling["stop"] else {}),
            )
        for row, (request, _) in enumerate(batch):
            yield self._completion(request.id, output[row, width:].tolist())

    def _completion(self, request_id: str, new_ids: list[int]) -> Completion:
        stop_at = next((i for i, t in enumerate(new_ids) if t in self.stop_ids), None)
        if stop_at is None:
            kept, finish, n_tokens = new_ids, "length", len(new_ids)
        else:
            kept, finish, n_tokens = new_ids[:stop_at], "stop", stop_at + 1  # the stop token counts, as in vLLM
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        cut = first_stop_string(text, self.sampling["stop"])
        if cut is not None:  # the stop text is not kept; count tokens up to the one that completed it, as vLLM does
            n_tokens = _tokens_until(self.tokenizer, kept, self.sampling["stop"])
            text, finish = text[:cut], "stop"
        return Completion(id=request_id, text=text, n_tokens=n_tokens, finish_reason=finish)


def chat_token_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Prompt token ids: the tokenizer's chat template with the generation prompt (no extra BOS)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def stop_token_ids(generation_eos: Any, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the generation config's eos (int or list) plus the tokenizer's eos."""
    ids: list[int] = []
    for value in [generation_eos] if isinstance(generation_eos, int) else list(generation_eos or []):
        if value is not None and value not in ids:
            ids.append(value)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("model and tokenizer define no end-of-sequence token; set eos_token_id in generation_config.json")
    return ids


def _batch_seed(base_seed: int, requests: list[GenerationRequest]) -> int:
    """One seed per batch, from its requests' ids and own seeds (a batch is fixed by the writer)."""
    key = "\0".join(f"{r.id}:{'' if r.seed is None else r.seed}" for r in requests)
    return request_seed(base_seed, key, None)


def first_stop_string(text: str, stops: list[str]) -> int | None:
    """Where the first stop string starts in ``text`` (None: none occurs)."""
    hits = [text.find(s) for s in stops if s and s in text]
    return min(hits) if hits else None


def _tokens_until(tokenizer: Any, ids: list[int], stops: list[str]) -> int:
    """The fewest leading tokens whose text contains a stop string (binary search: containment only grows)."""
    low, high = 1, len(ids)
    while low < high:
        mid = (low + high) // 2
        if first_stop_string(tokenizer.decode(ids[:mid], skip_special_tokens=True), stops) is None:
            low = mid + 1
        else:
            high = mid
    return high
