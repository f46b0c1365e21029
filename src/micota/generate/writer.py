"""Resumable, crash-safe generation into sharded JSONL.

Completions are appended to ``<out_dir>/shards/part-NNNNN.jsonl`` as they finish and flushed
to disk in small groups (a chunk of ``batch_size``, or for continuous and data-parallel
engines every ``SYNC_EVERY`` samples or ``SYNC_SECONDS``). On a re-run the shards are read back, a torn last line (the
process was killed mid-write) is cut off, ids already written are skipped, and the rest is
generated into a fresh shard. Nothing is lost and nothing is written twice; the final
``records`` are returned in request order, so an interrupted-then-resumed run yields
exactly the data of an uninterrupted one (for deterministic engines, e.g. greedy).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

from tqdm.auto import tqdm

from micota.errors import MicotaError, is_no_room, no_room_message
from micota.generate.engine import Completion, EngineConfig, GenerationRequest
from micota.generate.parallel import open_engine as load_engine  # data-parallel replicas or the row's engine; tests replace it
from micota.generate.sampling import effective_sampling

SHARD_DIR = "shards"
SYNC_EVERY = 64  # continuous engines: fsync after this many new samples ...
SYNC_SECONDS = 10.0  # ... or this long, whichever comes first (a kill loses at most the unsynced tail)
_RESERVED = {"id", "messages", "response", "n_tokens", "finish_reason", "sampling", "reasoning"}


def completion_record(request: GenerationRequest, completion: Completion, sampling: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSONL record of one sample: chat ``messages`` with the response appended, plus meta.

    ``sampling`` (the engine's effective parameters) and a server's separate ``reasoning``
    text are stored when given.
    """
    clash = _RESERVED & request.meta.keys()
    if clash:
        raise ValueError(f"request meta may not use reserved keys {sorted(clash)}")
    record = {
        "id": request.id,
        **request.meta,
        "messages": [*request.messages, {"role": "assistant", "content": completion.text}],
        "response": completion.text,
        "n_tokens": completion.n_tokens,
        "finish_reason": completion.finish_reason,
    }
    if completion.reasoning is not None:
        record["reasoning"] = completion.reasoning
    if sampling is not None:
        record["sampling"] = {**sampling, **({"seed": request.seed} if request.seed is not None else {})}
    return record


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
        with shard.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                try:
                    record = json.loads(line)
                    records.setdefault(record["id"], record)
                except (ValueError, TypeError, KeyError):
                    raise MicotaError(f"{shard}:{number}: not a complete sample record ({line[:60]!r}); the shard "
                                      "was damaged outside micota. Delete that line (its sample is generated again).") from None
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

    For chunked engines (``hf``), requests are cut into chunks of ``batch_size`` by a fixed
    rule (longest prompts first), and a chunk is sent whole even when a kill left part of it
    on disk: the engine then sees the same batches as an uninterrupted run, so batched greedy
    decoding gives identical text; data-parallel replicas (micota.generate.parallel) get all
    pending chunks at once and still generate each whole. Continuous engines (``vllm``,
    ``openai``) get every pending request at once and schedule them themselves. Records carry
    the effective sampling parameters (micota.generate.sampling).
    """
    ids = [r.id for r in requests]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})[:5]
        raise MicotaError(f"prompt ids must be unique; repeated: {dupes}. Give each prompt its own `id`.")
    done = read_shards(out_dir)
    pending = [chunk for chunk in request_chunks(requests, engine_config.batch_size) if any(r.id not in done for r in chunk)]
    if pending:
        engine = load_engine(engine_config)
        sampling = getattr(engine, "sampling", None) or effective_sampling(engine_config)
        bar = tqdm(total=len(requests), initial=len(done.keys() & set(ids)), desc=desc, disable=not progress, unit="sample")
        try:
            with _open_new_shard(out_dir) as handle:
                for completions, chunk in _completion_streams(engine, pending, done):
                    _write_stream(completions, chunk, done, handle, sampling, bar)
        except OSError as exc:
            if not is_no_room(exc):
                raise
            raise _no_room_error(out_dir, exc) from None
        finally:
            bar.close()
            if hasattr(engine, "close"):
                engine.close()
    missing = [i for i in ids if i not in done]
    if missing:
        raise RuntimeError(f"engine returned no completion for {len(missing)} requests, e.g. {missing[:3]}")
    return [done[i] for i in ids]


def _completion_streams(engine: Any, pending: list[list[GenerationRequest]], done: dict[str, Any]) -> Iterator[tuple[Iterator[Completion], list[GenerationRequest]]]:
    """(completions, their requests) in the order the engine wants the work.

    Continuous engines get every pending request at once; data-parallel engines every pending
    chunk at once (each still generated whole); others one chunk at a time.
    """
    if getattr(engine, "continuous", False):
        flat = [r for chunk in pending for r in chunk if r.id not in done]
        yield engine.generate(flat), flat
    elif hasattr(engine, "generate_chunks"):
        yield engine.generate_chunks(pending), [r for chunk in pending for r in chunk]
    else:
        for chunk in pending:
            yield engine.generate(chunk), chunk


def _write_stream(completions: Iterator[Completion], requests: list[GenerationRequest], done: dict[str, dict[str, Any]],
                  handle: Any, sampling: dict[str, Any], bar: Any) -> None:
    """Append new completions to the open shard, syncing every few samples or seconds."""
    by_id = {r.id: r for r in requests}
    unsynced, last_sync = 0, time.monotonic()
    try:
        for completion in completions:
            if completion.id in done:  # written before a kill tore this chunk
                continue
            record = completion_record(by_id[completion.id], completion, sampling)
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
            done[completion.id] = record
            bar.update(1)
            unsynced += 1
            if unsynced >= SYNC_EVERY or time.monotonic() - last_sync >= SYNC_SECONDS:
                _sync(handle)
                unsynced, last_sync = 0, time.monotonic()
    finally:
        _sync(handle)  # an engine error still leaves every finished sample on disk


def _no_room_error(out_dir: str | Path, exc: OSError) -> MicotaError:
    """The disk filled (or a quota or file-size limit hit) mid-write: cut the shard back to its last whole line.

    A write that ran out of room leaves a prefix of the stream (Python's buffered writer never
    writes later bytes after failed earlier ones, and nothing is written to the shard after the
    error), so cutting the tail leaves only complete records, which the re-run keeps.
    """
    shard_dir = Path(out_dir) / SHARD_DIR
    shard = max(shard_dir.glob("part-*.jsonl"), default=shard_dir)
    kept = len(read_shards(out_dir))  # truncates the torn last line now, not only on resume
    return MicotaError(f"{no_room_message(shard, exc)} The {kept} samples written before are intact in {shard_dir}. "
                       "Free space (or raise the quota/ulimit) and re-run the same command: it resumes from them, "
                       "and none is generated twice.")


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
