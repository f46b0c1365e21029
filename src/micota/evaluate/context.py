"""The context-length guard: a prompt is never truncated.

lm-eval silently cuts the prompt to nothing when ``max_gen_toks`` >= the model's context;
here the longest chat-formatted prompt plus ``max_new_tokens`` is checked against the
model's ``max_position_embeddings`` before any generation. The user picks the policy:
``error`` (default) stops with the numbers and the fix, ``lower`` lowers max_new_tokens
for that model × benchmark with a warning (and the lowered value is recorded in results).
"""

from __future__ import annotations

import logging
from typing import Any, Literal, Optional, Sequence

from micota.errors import MicotaError

log = logging.getLogger(__name__)
ContextPolicy = Literal["error", "lower"]


def chat_prompt_ids(tokenizer: Any, messages: list[dict[str, str]]) -> list[int]:
    """Token ids of ``messages`` in the model's chat template, with the generation prompt.

    Without a chat template the user contents are joined by newlines (what a bare LM sees).
    """
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    else:
        text = "\n".join(m["content"] for m in messages)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def model_context_length(model_config: Any) -> Optional[int]:
    """The model's context in tokens (``max_position_embeddings`` or its common aliases)."""
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(model_config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    text_config = getattr(model_config, "text_config", None)
    return model_context_length(text_config) if text_config is not None else None


def checked_max_new_tokens(
    prompt_lengths: Sequence[tuple[str, int]],
    max_new_tokens: int,
    context_length: Optional[int],
    *,
    policy: ContextPolicy = "error",
    where: str = "model",
) -> int:
    """The max_new_tokens that fits every prompt, or a MicotaError; prompts are never cut.

    >>> checked_max_new_tokens([("a", 100)], 50, 1024)
    50
    >>> checked_max_new_tokens([("a", 1000)], 50, 1024, policy="lower")
    24
    """
    if context_length is None or not prompt_lengths:
        return max_new_tokens
    longest_id, longest = max(prompt_lengths, key=lambda item: item[1])
    if longest + max_new_tokens <= context_length:
        return max_new_tokens
    room = context_length - longest
    if room < 1:
        raise MicotaError(
            f"{where}: prompt {longest_id!r} is {longest} tokens, which fills the model's context of {context_length} "
            "tokens (max_position_embeddings in config.json). Prompts are never truncated; use a model with a longer "
            "context or drop that problem (benchmark `limit`).")
    if policy == "lower":
        log.warning("%s: lowering max_new_tokens from %d to %d so prompt %r (%d tokens) fits the %d-token context.",
                    where, max_new_tokens, room, longest_id, longest, context_length)
        return room
    raise MicotaError(
        f"{where}: prompt {longest_id!r} is {longest} tokens; with max_new_tokens={max_new_tokens} that is "
        f"{longest + max_new_tokens} > the model's context of {context_length} tokens (max_position_embeddings). "
        f"Prompts are never truncated. Set `engine.max_new_tokens: {room}` (or less), or `context_policy: lower` "
        "to lower it automatically with a warning.")


def guard_requests(model: str, tokenizer_name: Optional[str], groups: dict[str, dict[str, list[dict[str, str]]]],
                   max_new_tokens: int, *, policy: ContextPolicy, trust_remote_code: bool = False,
                   where: str = "model") -> dict[str, int]:
    """Load ``model``'s tokenizer and config once; return the checked max_new_tokens of each group of prompts.

    ``groups`` maps a name (a benchmark) to its prompts by id; errors say ``<where> on <name>``.
    """
    from transformers import AutoConfig

    from micota.hub import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_name or model, trust_remote_code=trust_remote_code, field=where, model=model)
    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        raise MicotaError(f"{where}: cannot read config.json of {model!r} for the context-length check ({exc}). "
                          "Give a local model folder or a reachable hub id.") from None
    context = model_context_length(config)
    limits = {}
    for name, messages_by_id in groups.items():
        lengths = [(pid, len(chat_prompt_ids(tokenizer, msgs))) for pid, msgs in messages_by_id.items()]
        limits[name] = checked_max_new_tokens(lengths, max_new_tokens, context, policy=policy, where=f"{where} on {name}")
    return limits
