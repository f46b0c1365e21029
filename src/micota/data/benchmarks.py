"""The five evaluation benchmarks of the MiCoTA paper as versioned data.

Each benchmark is a row of :data:`BENCHMARKS`: where to load it (a local
``<data_dir>/<name>/test.jsonl`` or a hub dataset id + split), how to read the problem and
the gold answer, which prompt template evaluates it, and a ``version`` that must be bumped
whenever any of those change, so scores from different versions are never compared.

Gold readers fix known defects of public harnesses: AMC23 golds are floats
(``27.0`` -> ``27``), OlympiadBench golds are lists of ``$…$``-wrapped strings (unwrapped and
joined; the raw list and the unit stay in ``metadata``), GSM8K golds follow ``####``.
"""

from __future__ import annotations

import difflib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from micota.errors import MicotaError
from micota.jsonl import iter_jsonl

DATA_DIR_ENV = "MICOTA_DATA_DIR"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Problem:
    """One problem: ``answer`` is the gold as a clean string (what a correct model writes).

    ``metadata["gold_raw"]`` keeps the gold as the file stores it (AMC ``27.0``, OlympiadBench's
    list of ``$…$`` strings); ``metadata["gold_paper"]`` is the value the papers' lm-eval task
    compares with (MATH-500: the last box of ``solution``, not ``answer``; GSM8K: the whole
    ``answer`` text), the gold for ``grade(..., mode="paper")``.
    """

    id: str
    problem: str
    answer: str
    metadata: dict[str, Any] = field(default_factory=dict)


def require_field(record: dict[str, Any], names: tuple[str, ...], *, where: str) -> Any:
    """The value of the first of ``names`` present in ``record``; a clear error when none is."""
    for name in names:
        if record.get(name) is not None:
            return record[name]
    wanted = " or ".join(f"`{n}`" for n in names)
    raise MicotaError(f"{where}: missing field {wanted}; the line has {sorted(record) or 'no fields'}.")


def gold_plain(value: Any) -> str:
    """A string gold as is (MATH-500)."""
    return str(value).strip()


def gold_integer(value: Any) -> str:
    """Integer answers stored as floats or zero-padded strings (AMC23 ``27.0``, AIME ``025``).

    >>> gold_integer(27.0), gold_integer("025")
    ('27', '25')
    """
    number = float(value)
    return str(int(number)) if number.is_integer() else str(value).strip()


def gold_olympiad(value: Any) -> str:
    """OlympiadBench ``final_answer``: a list of ``$…$``-wrapped strings, unwrapped and joined.

    >>> gold_olympiad(["$69$,$84$"]), gold_olympiad(["$x^2$", "$3$"])
    ('69,84', 'x^2, 3')
    """
    items = value if isinstance(value, list) else [value]
    return ", ".join(str(item).replace("$", "").strip() for item in items)


def gold_after_hashes(value: Any) -> str:
    """GSM8K: the number after ``####``, without thousands separators.

    >>> gold_after_hashes("She makes 9 * 2 = $18.\\n#### 1,018")
    '1018'
    """
    text = str(value)
    if "####" not in text:
        raise ValueError("no '####' marker")
    return text.rsplit("####", 1)[1].strip().replace(",", "")


@dataclass(frozen=True)
class BenchmarkSpec:
    """One benchmark row. Bump ``version`` when the data, gold reader or prompt changes."""

    name: str
    hub_id: str  # dataset id for users online
    hub_split: str
    problem_fields: tuple[str, ...]  # first present field is the problem text
    gold_field: str
    read_gold: Callable[[Any], str]
    prompt: str  # template name under micota/_data/prompts/
    expected_count: int  # rows in the reference copy; a mismatch is reported, not fatal
    id_field: Optional[str] = None  # None: the row index
    hub_config: Optional[str] = None
    context_field: Optional[str] = None  # OlympiadBench: optional context prepended to the question
    metadata_fields: tuple[str, ...] = ()
    raw_gold_is_answer: bool = True  # False: the raw field is a worked solution (GSM8K), not an answer
    version: int = 1


BENCHMARKS: dict[str, BenchmarkSpec] = {
    spec.name: spec
    for spec in (
        BenchmarkSpec("aime24", "math-ai/aime24", "test", ("problem", "question"), "answer", gold_integer,
                      "small_model_gap_eval", 30, id_field="id", metadata_fields=("url",)),
        BenchmarkSpec("amc23", "math-ai/amc23", "test", ("problem", "question"), "answer", gold_integer,
                      "small_model_gap_eval", 40, id_field="id", metadata_fields=("url",)),
        BenchmarkSpec("olympiadbench", "Hothan/OlympiadBench", "train", ("question",), "final_answer", gold_olympiad,
                      "small_model_gap_eval", 675, id_field="id", hub_config="OE_TO_maths_en_COMP",
                      context_field="context",
                      metadata_fields=("final_answer", "unit", "is_multiple_answer", "answer_type", "subfield")),
        BenchmarkSpec("math500", "HuggingFaceH4/MATH-500", "test", ("problem",), "answer", gold_plain,
                      "small_model_gap_eval", 500, id_field="unique_id", metadata_fields=("subject", "level")),
        BenchmarkSpec("gsm8k", "openai/gsm8k", "test", ("question",), "answer", gold_after_hashes,
                      "gsm8k_zero_shot", 1319, hub_config="main", raw_gold_is_answer=False),
    )
}


def benchmark_spec(name: str) -> BenchmarkSpec:
    """The row for ``name``; an unknown name suggests the closest one."""
    spec = BENCHMARKS.get(name)
    if spec is None:
        close = difflib.get_close_matches(name, list(BENCHMARKS), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise MicotaError(f"benchmark {name!r} is unknown.{hint} Available: {', '.join(BENCHMARKS)} "
                          "(or `lab` with a `path` to a JSONL of id/problem/answer).")
    return spec


def benchmark_file(name: str, data_dir: str | Path | None = None) -> Path:
    """The local ``test.jsonl`` of benchmark ``name`` under ``data_dir`` (or ``$MICOTA_DATA_DIR``).

    Both ``<data_dir>/<name>/test.jsonl`` and ``<data_dir>/benchmarks/<name>/test.jsonl`` work,
    so the data folder itself or its ``benchmarks/`` subfolder may be given.
    """
    benchmark_spec(name)
    root = data_dir if data_dir is not None else (os.environ.get(DATA_DIR_ENV) or None)
    if root is None:
        raise MicotaError(
            f"benchmark {name!r}: no data folder given. Pass data_dir=... (CLI/YAML: `data_dir:`) or set "
            f"{DATA_DIR_ENV}=/path/to/data holding {name}/test.jsonl; online, `benchmark_source: hub` (Python: "
            f"source='hub') loads {BENCHMARKS[name].hub_id} instead.")
    candidates = [Path(root) / name / "test.jsonl", Path(root) / "benchmarks" / name / "test.jsonl"]
    for path in candidates:
        if path.is_file():
            return path
    raise MicotaError(f"benchmark {name!r}: none of {', '.join(map(str, candidates))} exists. "
                      f"Point data_dir (or {DATA_DIR_ENV}) at the folder holding {name}/test.jsonl.")


def load_benchmark(name: str, data_dir: str | Path | None = None, *, source: str = "local") -> list[Problem]:
    """All problems of benchmark ``name``, from the local file (default) or the hub (``source="hub"``)."""
    spec = benchmark_spec(name)
    if source == "hub":
        rows = _hub_rows(spec)
        where = f"{spec.hub_id}[{spec.hub_split}]"
    elif source == "local":
        path = benchmark_file(name, data_dir)
        rows = list(iter_jsonl(path))
        where = str(path)
    else:
        raise MicotaError(f"source must be 'local' or 'hub', got {source!r}.")
    problems = [problem_from_row(spec, row, index, where=f"{where}:{number}") for index, (number, row) in enumerate(rows)]
    if len(problems) != spec.expected_count:  # another copy of the benchmark: scores are not comparable to the paper's
        log.warning("%s: %d problems, the reference copy of %s has %d; scores will not match published ones.",
                    where, len(problems), name, spec.expected_count)
    return problems


def problem_from_row(spec: BenchmarkSpec, row: dict[str, Any], index: int, *, where: str) -> Problem:
    """Map one raw row to a :class:`Problem` using the spec's fields and gold reader."""
    text = str(require_field(row, spec.problem_fields, where=where))
    if spec.context_field and row.get(spec.context_field):
        text = f"{row[spec.context_field]}\n{text}"
    raw_gold = require_field(row, (spec.gold_field,), where=where)
    try:
        gold = spec.read_gold(raw_gold)
    except (ValueError, TypeError) as exc:
        raise MicotaError(f"{where}: cannot read gold `{spec.gold_field}`={raw_gold!r} ({exc}).") from None
    row_id = row.get(spec.id_field) if spec.id_field else None
    metadata = {key: row.get(key) for key in spec.metadata_fields if key in row}
    metadata.update(benchmark=spec.name, benchmark_version=spec.version,
                    gold_raw=raw_gold if spec.raw_gold_is_answer else gold,
                    gold_paper=paper_gold_of_row(spec.name, row, where=where))
    return Problem(id=str(row_id if row_id is not None else index), problem=text, answer=gold, metadata=metadata)


def paper_gold_of_row(name: str, row: dict[str, Any], *, where: str) -> Any:
    """The gold the papers' lm-eval task compares with (``grade(..., mode="paper")`` takes it).

    AIME24 ``answer`` as stored (``025``), AMC23 ``str(answer)`` (``27.0``), OlympiadBench
    ``final_answer[0]`` as stored (``$…$`` kept), MATH-500 the last ``\\boxed{}`` of ``solution``
    (None when it has none), GSM8K the whole ``answer`` text: see :data:`micota.grade.paper.PAPER_TASKS`.
    """
    from micota.grade.paper import paper_gold
    from micota.grade.paper_extract import HarnessError

    try:
        return paper_gold(name, row)
    except (KeyError, IndexError, TypeError) as exc:
        raise MicotaError(f"{where}: the papers' harness reads a field this line lacks or holds "
                          f"differently ({type(exc).__name__}: {exc}); the line has {sorted(row)}.") from None
    except HarnessError:
        return None  # the harness itself fails on this gold: no response can match it


def _hub_rows(spec: BenchmarkSpec) -> list[tuple[int, dict[str, Any]]]:
    """Rows from the hub (needs network); kept beside the local path for users online."""
    import datasets

    data = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split)
    return [(i + 1, dict(row)) for i, row in enumerate(data)]


