"""SFT data: chat-format JSONL -> TRL prompt/completion rows, with over-long samples dropped.

TRL masks the prompt of a conversational prompt/completion row and keeps the assistant
turn's end token (``<|im_end|>`` for Qwen) in the labels, so the model learns to stop
(prompt masked, EOS kept in the labels, as the paper trains). We never truncate: a sample longer
than ``max_length`` tokens is dropped and counted, because a cut-off CoT teaches the
model to ramble without ever answering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from micota.errors import MicotaError
from micota.jsonl import iter_jsonl
from micota.manifest import made_by


@dataclass
class SFTRows:
    rows: list[dict[str, Any]] = field(default_factory=list)  # {"prompt": [...], "completion": [...]}
    dropped_too_long: list[str] = field(default_factory=list)  # ids (or file:line) of dropped samples
    tokens: int = 0  # tokens of the kept samples (prompt + completion)


def load_sft_rows(paths: list[Path], tokenizer: Any, max_length: int) -> SFTRows:
    """Read every file's ``messages``; keep samples of at most ``max_length`` tokens."""
    result = SFTRows()
    for path in paths:
        for number, record in iter_jsonl(path):
            messages = _checked_messages(record, f"{path}:{number}")
            length = count_chat_tokens(tokenizer, messages)
            if length > max_length:
                result.dropped_too_long.append(str(record.get("id", f"{path}:{number}")))
                continue
            result.tokens += length
            result.rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return result


def check_data_files(paths: list[Path], *, field: str = "sft.data") -> None:
    """A MicotaError naming each file and the stage that made it when the files hold no sample at all.

    Reads only up to the first non-blank line of each file, so it is cheap before training; a
    missing file is left to the stage runner, which names it.
    """
    paths = [Path(p) for p in paths]
    if not all(p.is_file() for p in paths) or any(_has_a_line(p) for p in paths):
        return
    files = "; ".join(f"{p} is empty ({made_by(p)})" for p in paths)
    raise MicotaError(f"{field}: no training samples: {files}. If a filter stage made it, its dropped.jsonl says why "
                      "each sample was dropped; fix that stage's settings and re-run it, or point `data` at another file.")


def _has_a_line(path: Path) -> bool:
    with path.open("rb") as handle:
        return any(line.strip() for line in handle)


def count_chat_tokens(tokenizer: Any, messages: list[dict[str, str]]) -> int:
    """Tokens of the chat-templated conversation, as the trainer will see it."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def _checked_messages(record: dict[str, Any], where: str) -> list[dict[str, str]]:
    messages = record.get("messages")
    if not isinstance(messages, list) or len(messages) < 2:
        raise MicotaError(f"{where}: an SFT sample needs `messages`: a list of at least a user and an assistant turn.")
    for turn in messages:
        if not isinstance(turn, dict) or not isinstance(turn.get("role"), str) or not isinstance(turn.get("content"), str):
            raise MicotaError(f"{where}: every message needs string `role` and `content`, got {turn!r:.80}.")
    if messages[-1]["role"] != "assistant":
        raise MicotaError(f"{where}: the last message must be the assistant's (the target), got role {messages[-1]['role']!r}.")
    return [{"role": t["role"], "content": t["content"]} for t in messages]
