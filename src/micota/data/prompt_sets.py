"""Prompt sets for generation (``math12k``-style, GSM8K train) and the micro-lab benchmark.

A prompt set row has the problem under ``problem`` or ``question`` and the gold under
``answer``; a GSM8K-style answer (worked solution ending ``#### N``) is reduced to ``N``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Optional

from micota.data.benchmarks import Problem, gold_after_hashes, require_field
from micota.errors import MicotaError
from micota.jsonl import iter_jsonl

PROBLEM_FIELDS = ("problem", "question")
log = logging.getLogger(__name__)


def load_prompt_set(
    path_or_hub_id: str | Path,
    *,
    split: str = "train",
    hub_config: Optional[str] = None,
    limit: Optional[int] = None,
) -> list[Problem]:
    """Problems from a local JSONL file, or from a hub dataset id when no such file exists.

    Ids are the row's ``id`` when present, else ``<file stem>-<row index>``.
    """
    path = Path(path_or_hub_id)
    if path.is_file():
        rows: Iterable[tuple[int, dict[str, Any]]] = iter_jsonl(path)
        where, stem = str(path), path.stem
    elif path.suffix in {".jsonl", ".json"} or path.exists():
        raise MicotaError(f"{path}: prompt file not found (or not a file). Check the path (cwd is {Path.cwd()}).")
    else:
        rows, where, stem = _hub_rows(str(path_or_hub_id), split, hub_config), f"{path_or_hub_id}[{split}]", "row"
    problems, lines = [], []
    for index, (number, row) in enumerate(rows):
        if limit is not None and index >= limit:
            break
        problems.append(_prompt_problem(row, index, stem, where=f"{where}:{number}"))
        lines.append(number)
    if not problems:
        raise MicotaError(f"{where}: the prompt set is empty (no non-blank line). Give a file with one JSON prompt per line.")
    _check_unique_ids([p.id for p in problems], lines, where)
    _warn_repeated_problems([p.problem for p in problems], lines, where)
    return problems


def _check_unique_ids(ids: list[str], lines: list[int], where: str) -> None:
    """Ids key the generated samples (and resuming); a repeated id would silently reuse one sample for both rows."""
    seen: dict[str, list[int]] = {}
    for problem_id, line in zip(ids, lines):
        seen.setdefault(problem_id, []).append(line)
    repeated = {pid: at for pid, at in seen.items() if len(at) > 1}
    if repeated:
        shown = "; ".join(f"{pid!r} on lines {', '.join(map(str, at))}" for pid, at in list(repeated.items())[:5])
        more = f" (and {len(repeated) - 5} more)" if len(repeated) > 5 else ""
        raise MicotaError(f"{where}: prompt ids must be unique, {len(repeated)} repeat: {shown}{more}. Give each row its "
                          "own `id`, or remove the `id` fields to number rows by position.")


def _warn_repeated_problems(texts: list[str], lines: list[int], where: str) -> None:
    """Warn (not fail) when one problem text appears under several ids.

    Real prompt sets hold such rows: MATH train has the same problem on lines 926 and 960 of
    ../shared/data/train/math/train.jsonl, differing only in spacing. Both are generated, and both
    may reach training, so the user is told where they are.
    """
    first: dict[str, int] = {}
    pairs = []
    for text, line in zip(texts, lines):
        key = " ".join(text.split())
        if key in first:
            pairs.append(f"line {line} repeats line {first[key]}")
        else:
            first[key] = line
    if pairs:
        log.warning("%s: %d problem(s) appear again under another id (same text up to whitespace): %s. Each copy is "
                    "generated and may reach training; remove the copies if that is not intended.",
                    where, len(pairs), "; ".join(pairs[:5]) + ("; ..." if len(pairs) > 5 else ""))


def load_lab_benchmark(path: str | Path) -> list[Problem]:
    """The micro-lab benchmark: a JSONL with ``id``, ``problem`` and ``answer`` on every line."""
    problems = []
    seen: set[str] = set()
    for number, row in iter_jsonl(path):
        where = f"{path}:{number}"
        problem_id = str(require_field(row, ("id",), where=where))
        if problem_id in seen:
            raise MicotaError(f"{where}: id {problem_id!r} repeats an earlier line; ids must be unique.")
        seen.add(problem_id)
        problem = str(require_field(row, ("problem",), where=where))
        answer = str(require_field(row, ("answer",), where=where)).strip()
        extra = {k: v for k, v in row.items() if k not in {"id", "problem", "answer"}}
        problems.append(Problem(id=problem_id, problem=problem, answer=answer, metadata={**extra, "benchmark": "lab"}))
    if not problems:
        raise MicotaError(f"{path}: the lab benchmark file is empty.")
    return problems


def _prompt_problem(row: dict[str, Any], index: int, stem: str, *, where: str) -> Problem:
    text = str(require_field(row, PROBLEM_FIELDS, where=where))
    raw = require_field(row, ("answer",), where=where)
    answer = gold_after_hashes(raw) if isinstance(raw, str) and "####" in raw else str(raw).strip()
    problem_id = str(row["id"]) if row.get("id") is not None else f"{stem}-{index}"
    return Problem(id=problem_id, problem=text, answer=answer, metadata={"source": where.rsplit(":", 1)[0]})


def _hub_rows(hub_id: str, split: str, hub_config: Optional[str]) -> list[tuple[int, dict[str, Any]]]:
    import datasets

    try:
        data = datasets.load_dataset(hub_id, hub_config, split=split)
    except Exception as exc:  # the hub raises many types; the user needs the id and the cause
        raise MicotaError(f"{hub_id!r} is not a local file and could not be loaded from the hub ({exc}). "
                          "Give a path to a JSONL file, or check the dataset id and your network.") from None
    return [(i + 1, dict(row)) for i, row in enumerate(data)]
