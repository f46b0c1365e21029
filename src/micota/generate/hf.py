"""In-process Hugging Face engine: batched generation with ``model.generate``.

Prompts are chat-templated, sorted by length (so a batch wastes little padding) and
left-padded. The response is cut at the first end-of-sequence token; a response that hit
``max_new_tokens`` without one is reported with ``finish_reason="length"`` so the filter
can drop truncated CoT instead of training on it.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

from micota.generate.engine import Completion, EngineConfig, GenerationRequest
from micota.hub import check_model_source, load_causal_lm, load_tokenizer, resolve_device


class HFEngine:
    """Greedy (temperature 0) or sampled generation with transformers on CPU or one GPU."""

    def __init__(self, config: EngineConfig):
        import torch

        self.config = config
        tokenizer_source = config.tokenizer or config.model
        check_model_source(config.model, field="engine.model", need_tokenizer=config.tokenizer is None)
        self.device = resolve_device(config.device)
        self.tokenizer = load_tokenizer(tokenizer_source, trust_remote_code=config.trust_remote_code, field="engine.tokenizer",
                                        model=config.model)
        self.tokenizer.padding_side = "left"
        self.model = load_causal_lm(
            config.model, dtype=config.dtype, device=self.device, trust_remote_code=config.trust_remote_code, field="engine.model"
        )
        self.stop_ids = stop_token_ids(self.model, self.tokenizer)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]
        torch.manual_seed(config.seed)

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        encoded = [(r.id, self._encode(r.messages)) for r in requests]
        encoded.sort(key=lambda item: (-len(item[1]), item[0]))
        size = self.config.batch_size
        for start in range(0, len(encoded), size):
            yield from self._generate_batch(encoded[start : start + size])

    def _encode(self, messages: list[dict[str, str]]) -> list[int]:
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def _generate_batch(self, batch: list[tuple[str, list[int]]]) -> Iterator[Completion]:
        import torch

        width = max(len(ids) for _, ids in batch)
        input_ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(batch), width), dtype=torch.long)
        for row, (_, ids) in enumerate(batch):
            input_ids[row, width - len(ids) :] = torch.tensor(ids)
            attention[row, width - len(ids) :] = 1
        with torch.inference_mode():
            output = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                **self._sampling_kwargs(),
            )
        for row, (request_id, _) in enumerate(batch):
            yield self._completion(request_id, output[row, width:].tolist())

    def _sampling_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.config.max_new_tokens,
            "eos_token_id": self.stop_ids,
            "pad_token_id": self.pad_id,
        }
        if self.config.temperature > 0:
            kwargs.update(do_sample=True, temperature=self.config.temperature, top_p=self.config.top_p)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def _completion(self, request_id: str, new_ids: list[int]) -> Completion:
        stop_at = next((i for i, t in enumerate(new_ids) if t in self.stop_ids), None)
        if stop_at is None:
            kept, finish, n_tokens = new_ids, "length", len(new_ids)
        else:
            kept, finish, n_tokens = new_ids[:stop_at], "stop", stop_at + 1  # the stop token counts, as in vLLM
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        return Completion(id=request_id, text=text, n_tokens=n_tokens, finish_reason=finish)


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn ids: the generation config's eos (int or list) plus the tokenizer's eos."""
    ids: list[int] = []
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in [eos] if isinstance(eos, int) else list(eos or []):
        if value is not None and value not in ids:
            ids.append(value)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    if not ids:
        raise ValueError("model and tokenizer define no end-of-sequence token; set eos_token_id in generation_config.json")
    return ids
