"""Content-addressed folders for what evaluation costs GPU time to make: generations and judge replies.

Each folder is named by the hash of everything that decides its contents — the model's
content hash (a local folder) or its id (hub id, server model name), and the engine's hashed
fields (engine kind, dtype, sampling, max_new_tokens, seed) — never by display names or
placement. Inside, each request id carries its benchmark, problem, sample index and a hash of
the exact chat messages, so a changed prompt, system prompt or problem text is a new request.
The evaluate stage preserves ``generations/`` and ``judge/`` across config changes
(``run_stage(preserve=...)``): adding or removing a model, or changing ``batch_size``,
regenerates nothing that is done.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from micota.config import hashed_values
from micota.generate.engine import EngineConfig
from micota.manifest import sha256_path

GENERATIONS = "generations"
JUDGE = "judge"
PRESERVED = (GENERATIONS, JUDGE)
KEY_NAME = "key.json"


def model_identity(source: str) -> str:
    """``sha256:<content hash>`` for a local model folder or file, else ``id:<source>`` (hub id, server name)."""
    path = Path(source)
    return f"sha256:{sha256_path(path)}" if path.exists() else f"id:{source}"


def engine_key(engine: EngineConfig) -> dict[str, Any]:
    """What decides an engine's output: model and tokenizer identity plus every hashed engine field."""
    values = hashed_values(engine)
    values.pop("model"), values.pop("tokenizer")
    return {"model": model_identity(engine.model),
            "tokenizer": model_identity(engine.tokenizer) if engine.tokenizer else None, "engine": values}


def store_dir(root: Path, kind: str, engine: EngineConfig, label: str = "") -> Path:
    """The folder of ``kind`` (generations or judge) for this engine; ``key.json`` says what it holds."""
    key = engine_key(engine)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]
    folder = root / kind / digest
    if not (folder / KEY_NAME).is_file():
        folder.mkdir(parents=True, exist_ok=True)
        (folder / KEY_NAME).write_text(json.dumps({**key, "first_made_for": label}, indent=1, sort_keys=True),
                                       encoding="utf-8")
    return folder


def messages_sha(messages: list[dict[str, str]]) -> str:
    """A short hash of chat messages (what the model sees)."""
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode()).hexdigest()[:16]


def request_id(benchmark: str, problem_id: str, sample: int, messages: list[dict[str, str]]) -> str:
    """Stable id of one generation request.

    >>> request_id("math500", "test/x.json", 0, [{"role": "user", "content": "1+1?"}])[:22]
    'math500/test/x.json#0@'
    """
    return f"{benchmark}/{problem_id}#{sample}@{messages_sha(messages)}"
