"""Resumable, crash-safe generation into sharded JSONL.

Completions are appended to ``<out_dir>/shards/part-NNNNN.jsonl`` as they finish and flushed
to disk in small groups. On a re-run the shards are read back, a torn last line (the
process was killed mid-write) is cut off, ids already written are skipped, and the rest is
generated into a fresh shard. Nothing is lost and nothing is written twice; the final
``records`` are returned in request order, so an interrupted-then-resumed run yields
exactly the data of an uninterrupted one (for deterministic engines, e.g. greedy).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from tqdm.auto import tqdm

from micota.errors import MicotaError
from micota.generate.engine import Completion, EngineConfig, GenerationRequest, load_engine

SHARD_DIR = "shards"
_RESERVED = {"id", "messages", "response", "n_tokens", "finish_reason"}


def completion_record(request: GenerationRequest, completion: Completion) -> dict[str, Any]:
    """The JSONL record of one sample: chat ``messages`` with the response appended, plus meta."""
    clash = _RESERVED & request.meta.keys()
    if clash:
        raise ValueError(f"request meta may not use reserved keys {sorted(clash)}")
    return {
        "id": request.id,
        **request.meta,
        "messages": [*request.messages, {"role": "assistant", "content": completion.text}],
        "response": completion.text,
        "n_tokens": completion.n_tokens,
        "finish_reason": completion.finish_reason,
    }


def read_shards(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """All complete records already written under ``out_dir/shards`` (first copy of each id wins).

    A final line without its newline was torn by a kill; it is truncated away so the next
    append starts clean.
    """
    records: dict[str, dict[str, Any]] = {}
    shard_dir = Path(out_dir) / SHARD_DIR
    if not shard_dir.is_dir():
        return records
    for shard in sorted(shard_dir.glob("part-*.jsonl")):
        _truncate_torn_tail(shard)
        with shard.open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                records.setdefault(record["id"], record)
    return records


def generate_records(
    engine_config: EngineConfig,
    requests: Sequence[GenerationRequest],
    out_dir: str | Path,
    *,
    desc: str = "generate",
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Generate every request not yet on disk under ``out_dir``; return all records in request order.

    Requests are cut into chunks of ``batch_size`` by a fixed rule (longest prompts first), and
    a chunk is sent whole even when a kill left part of it on disk: an engine then sees the
    same batches as an uninterrupted run, so batched greedy decoding gives identical text.
    """
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise MicotaError(f"prompt ids must be unique; repeated: {dupes}. Give each prompt its own `id`.")
    done = read_shards(out_dir)
    pending = [chunk for chunk in request_chunks(requests, engine_config.batch_size) if any(r.id not in done for r in chunk)]
    if pending:
        engine = load_engine(engine_config)
        bar = tqdm(total=len(requests), initial=len(done.keys() & set(ids)), desc=desc, disable=not progress, unit="sample")
        with _open_new_shard(out_dir) as handle:
            for chunk in pending:
                by_id = {r.id: r for r in chunk}
                for completion in engine.generate(chunk):
                    if completion.id in done:  # written before a kill tore this chunk
                        continue
                    record = completion_record(by_id[completion.id], completion)
                    handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                    done[completion.id] = record
                    bar.update(1)
                _sync(handle)
        bar.close()
    missing = [i for i in ids if i not in done]
    if missing:
        raise RuntimeError(f"engine returned no completion for {len(missing)} requests, e.g. {missing[:3]}")
    return [done[i] for i in ids]


def request_chunks(requests: Sequence[GenerationRequest], size: int) -> list[list[GenerationRequest]]:
    """Deterministic batches: sorted by prompt length (longest first, then id), ``size`` each."""
    ordered = sorted(requests, key=lambda r: (-sum(len(m["content"]) for m in r.messages), r.id))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def _open_new_shard(out_dir: str | Path):
    shard_dir = Path(out_dir) / SHARD_DIR
    shard_dir.mkdir(parents=True, exist_ok=True)
    index = len(list(shard_dir.glob("part-*.jsonl")))
    return (shard_dir / f"part-{index:05d}.jsonl").open("a", encoding="utf-8")


def _sync(handle) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _truncate_torn_tail(path: Path) -> None:
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        with path.open("r+b") as handle:
            handle.truncate(cut)
