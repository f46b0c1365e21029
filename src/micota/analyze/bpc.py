"""Bits per character of a model on a CoT dataset (MiCoTA Table 4).

Definition (documented in docs/benchmarks.md)::

    BPC = Σ_samples Σ_{t in response} −log₂ p(t | chat-formatted prompt, earlier response tokens)
          ─────────────────────────────────────────────────────────────────────────────────────
                         Σ_samples (number of Unicode characters of the response)

The prompt is every message before the final assistant turn, put through the model's chat
template with the generation prompt; the response is the final assistant message,
tokenized on its own (no special tokens, no end-of-sequence token). Prompt tokens are
context only: they are never scored. Nats per character and bits per token are reported
beside BPC. Dividing by characters, not tokens, makes models with different tokenizers
comparable. Lower BPC on a dataset means the student already finds that data likely, which
is how the paper explains why small students learn from Mid-CoT data more easily — so
ranking candidate training sets by BPC for a given student is a cheap pre-training check.

Only batched forward passes run (no generation): examples are sorted by length, packed
into batches under ``max_batch_tokens``, right-padded, and the LM head is applied only at
the positions that predict response tokens, in chunks, so full-vocabulary logits for the
whole batch never exist in memory.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Iterator, Sequence

from micota.evaluate.context import chat_prompt_ids

LOG2E = 1.0 / math.log(2.0)
_HEAD_CHUNK = 4096  # response positions per LM-head call: bounds the logits tensor to chunk × vocab


@dataclass(frozen=True)
class EncodedExample:
    """Token ids of one sample: ``prompt_ids`` are context only, ``response_ids`` are scored."""

    prompt_ids: list[int]
    response_ids: list[int]
    n_chars: int


@dataclass
class BpcScore:
    """Totals over a dataset; the ratios are properties so partial sums can be added up."""

    nats: float = 0.0
    chars: int = 0
    tokens: int = 0
    samples: int = 0

    @property
    def bpc(self) -> float:
        return self.nats * LOG2E / self.chars if self.chars else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "bpc": self.bpc, "nats_per_char": self.nats / self.chars if self.chars else float("nan"),
                "bits_per_token": self.nats * LOG2E / self.tokens if self.tokens else float("nan")}


def encode_example(tokenizer: Any, messages: list[dict[str, str]]) -> EncodedExample:
    """Split chat ``messages`` (last one = the assistant response) into prompt and response ids."""
    if not messages or messages[-1].get("role") != "assistant":
        raise ValueError("the last message must be the assistant response")
    response = messages[-1]["content"]
    prompt_ids = chat_prompt_ids(tokenizer, messages[:-1])
    response_ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    return EncodedExample(prompt_ids, response_ids, len(response))


def length_batches(examples: Sequence[EncodedExample], batch_size: int, max_batch_tokens: int) -> Iterator[list[int]]:
    """Indices of ``examples`` grouped longest first, each batch ≤ batch_size rows and ≤ max_batch_tokens padded tokens.

    >>> ex = [EncodedExample([1], [2] * n, n) for n in (3, 9, 5)]
    >>> list(length_batches(ex, batch_size=2, max_batch_tokens=100))
    [[1, 2], [0]]
    """
    order = sorted(range(len(examples)), key=lambda i: -(len(examples[i].prompt_ids) + len(examples[i].response_ids)))
    batch: list[int] = []
    for index in order:
        width = len(examples[batch[0]].prompt_ids) + len(examples[batch[0]].response_ids) if batch else 0
        if batch and (len(batch) == batch_size or width * (len(batch) + 1) > max_batch_tokens):
            yield batch
            batch = []
        batch.append(index)
    if batch:
        yield batch


def padded_batch(examples: Sequence[EncodedExample], pad_id: int) -> tuple[Any, Any, Any]:
    """Right-padded ``input_ids``, ``attention_mask`` and a mask of positions whose *next* token is scored."""
    import torch

    width = max(len(e.prompt_ids) + len(e.response_ids) for e in examples)
    input_ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), width), dtype=torch.long)
    predicts = torch.zeros((len(examples), width), dtype=torch.bool)
    for row, example in enumerate(examples):
        ids = example.prompt_ids + example.response_ids
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        # position p predicts token p+1: the response's tokens are predicted from len(prompt)-1 … len(ids)-2
        predicts[row, len(example.prompt_ids) - 1 : len(ids) - 1] = True
    return input_ids, attention, predicts


def response_nats(model: Any, examples: Sequence[EncodedExample], pad_id: int) -> list[float]:
    """Σ −ln p(response tokens | prompt) for each example of one batch (one forward pass)."""
    import torch

    if any(not e.prompt_ids for e in examples):
        raise ValueError("every example needs at least one prompt token to condition on")
    device = next(model.parameters()).device
    input_ids, attention, predicts = padded_batch(examples, pad_id)
    targets = input_ids[:, 1:][predicts[:, :-1]].to(device)
    rows = predicts.nonzero()[:, 0].to(device)
    with torch.inference_mode():
        hidden = model.base_model(input_ids=input_ids.to(device), attention_mask=attention.to(device),
                                  use_cache=False).last_hidden_state  # no KV cache: one pass, nothing to reuse
        selected = hidden[predicts.to(device)]
        token_nats = torch.cat([_chunk_nats(model, selected[i : i + _HEAD_CHUNK], targets[i : i + _HEAD_CHUNK])
                                for i in range(0, len(targets), _HEAD_CHUNK)]) if len(targets) else targets.float()
        sums = torch.zeros(len(examples), dtype=torch.float64, device=device).index_add_(0, rows, token_nats.double())
    return sums.tolist()


def _chunk_nats(model: Any, hidden: Any, targets: Any) -> Any:
    import torch

    logits = model.get_output_embeddings()(hidden)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 logits lose digits; keep fp64
    cap = getattr(model.config, "final_logit_softcapping", None)  # Gemma-2 style capping happens after the head
    if cap:
        logits = torch.tanh(logits / cap) * cap
    # fused log-softmax + pick (no chunk × vocab log-prob tensor is kept)
    return torch.nn.functional.cross_entropy(logits, targets, reduction="none")


def score_examples(model: Any, examples: Sequence[EncodedExample], pad_id: int, *, batch_size: int = 8,
                   max_batch_tokens: int = 32768, progress: bool = False, desc: str = "bpc") -> BpcScore:
    """BPC totals of ``examples`` under ``model`` (batched forward passes only)."""
    from tqdm.auto import tqdm

    score = BpcScore()
    bar = tqdm(total=len(examples), desc=desc, disable=not progress, unit="sample")
    for batch in length_batches(examples, batch_size, max_batch_tokens):
        chosen = [examples[i] for i in batch]
        score.nats += sum(response_nats(model, chosen, pad_id))
        score.chars += sum(e.n_chars for e in chosen)
        score.tokens += sum(len(e.response_ids) for e in chosen)
        score.samples += len(chosen)
        bar.update(len(chosen))
    bar.close()
    return score
