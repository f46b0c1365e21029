"""Grading many pairs at once: ``grade_many`` across processes, and ``micota grade FILE.jsonl``."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from multiprocessing import get_context
from pathlib import Path
from typing import Sequence

from micota.errors import MicotaError
from micota.jsonl import iter_jsonl, write_jsonl
from micota.grade.grader import DEFAULT_TIME_LIMIT_S, Gold, Verdict, grade, quick_verdict

SERIAL_BELOW = 256  # smaller batches are graded in-process: starting workers costs more
CHUNK = 64
WORKER_START_S = 60.0  # a spawned worker may import sympy for its symbolic child


def _grade_chunk(pairs: list[tuple[Gold, str]], benchmark: str | None, mode: str,
                 time_limit_s: float) -> list[Verdict]:
    return [grade(gold, response, benchmark=benchmark, mode=mode, time_limit_s=time_limit_s)
            for gold, response in pairs]


def grade_many(pairs: Sequence[tuple[Gold, str]], *, benchmark: str | None = None, mode: str = "robust",
               workers: int | None = None, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> list[Verdict]:
    """Grade ``(gold, response)`` pairs in parallel worker processes; the order is preserved.

    Each case keeps its hard time limit inside the workers (the symbolic step runs in a child
    with a deadline); as a second guard, a chunk that overruns its whole budget is answered
    ``correct=False, reason="timed out"`` instead of blocking the batch.
    """
    pairs = list(pairs)
    workers = workers or min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(pairs) < SERIAL_BELOW or mode == "paper":  # paper mode is string work only
        return _grade_chunk(pairs, benchmark, mode, time_limit_s)
    settled: list[Verdict | None] = [None] * len(pairs)
    if mode == "robust":  # integers and missing answers cost microseconds: never ship them to workers
        settled = [_quick_or_none(gold, response, benchmark) for gold, response in pairs]
    todo = [i for i, verdict in enumerate(settled) if verdict is None]
    for i, verdict in zip(todo, _grade_parallel([pairs[i] for i in todo], benchmark, mode, workers, time_limit_s)):
        settled[i] = verdict
    return settled  # type: ignore[return-value]


def _quick_or_none(gold: Gold, response: str, benchmark: str | None) -> Verdict | None:
    try:
        return quick_verdict(gold, response, benchmark=benchmark)
    except (RecursionError, MemoryError, ValueError, OverflowError):
        return None  # the full grader reports it with a reason


def _grade_parallel(pairs: list[tuple[Gold, str]], benchmark: str | None, mode: str, workers: int,
                    time_limit_s: float) -> list[Verdict]:
    if len(pairs) < SERIAL_BELOW:
        return _grade_chunk(pairs, benchmark, mode, time_limit_s)
    chunks = [pairs[i : i + CHUNK] for i in range(0, len(pairs), CHUNK)]
    verdicts: list[Verdict] = []
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn"))
    overran = False
    try:
        futures = [pool.submit(_grade_chunk, chunk, benchmark, mode, time_limit_s) for chunk in chunks]
        for chunk, future in zip(chunks, futures):
            budget = WORKER_START_S + len(chunk) * (time_limit_s + 0.5) * len(chunks) / workers
            try:
                verdicts.extend(future.result(timeout=budget))
            except FutureTimeout:
                overran = True
                verdicts.extend(Verdict(False, None, "timed out (worker overran its budget)") for _ in chunk)
    finally:
        if overran:  # a stuck worker must not block shutdown: stop it (no public API for this)
            for process in list(getattr(pool, "_processes", {}).values()):
                process.terminate()
        pool.shutdown(wait=not overran, cancel_futures=overran)
    return verdicts


def _read_pairs(path: Path, gold_field: str, response_field: str) -> tuple[list[dict], list[tuple[Gold, str]]]:
    if not path.is_file():
        raise MicotaError(f"{path}: file not found. Pass a JSONL file with `{gold_field}` and `{response_field}` fields.")
    rows, pairs = [], []
    for number, row in iter_jsonl(path, errors="replace"):  # bad bytes in model text: grade, don't crash
        for field in (gold_field, response_field):
            if field not in row:
                raise MicotaError(f"{path}:{number}: missing field `{field}` (has {sorted(row)}). "
                                  f"Name the right one with --gold-field / --response-field.")
        rows.append(row)
        pairs.append((row[gold_field], str(row[response_field])))
    return rows, pairs


def grade_file(path: str | Path, out: str | Path | None = None, *, gold_field: str = "gold",
               response_field: str = "response", benchmark: str | None = None, mode: str = "robust",
               workers: int | None = None) -> tuple[int, int, Path]:
    """Grade every row of a JSONL file; write rows + ``correct``/``extracted``/``reason`` to ``out``.

    Returns ``(correct, total, out_path)``. ``out`` defaults to ``<file>.graded.jsonl``.
    """
    path = Path(path)
    rows, pairs = _read_pairs(path, gold_field, response_field)
    verdicts = grade_many(pairs, benchmark=benchmark, mode=mode, workers=workers)
    out_path = Path(out) if out else path.with_name(path.stem + ".graded.jsonl")
    write_jsonl(out_path, ({**row, "correct": v.correct, "extracted": v.extracted, "reason": v.reason} for row, v in zip(rows, verdicts)))
    return sum(v.correct for v in verdicts), len(verdicts), out_path
