"""Accuracy tables in the papers' layouts, written as Markdown, CSV and LaTeX.

Table 2/3 layout (MiCoTA): one block of rows per student (its untrained Instruct model first,
then one row per training set), columns AIME24, AMC23, OlympiadBench, MATH-500, GSM8K, Avg
and Δ (the row's Avg minus its block's untrained model's Avg), cells = accuracy in percent;
within each block the best value of a column is bold and the second underlined. One table per
scoring mode (``robust``, ``paper``, ``judge``: the ``accuracy_<mode>`` keys of
``results.json``). When an evaluation used the sampled protocol, a cell shows mean ± std.
Table 1 layout: rows as differences Δ (percentage points) against a named base model.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from micota.errors import MicotaError

BENCHMARK_ORDER = ("aime24", "amc23", "olympiadbench", "math500", "gsm8k")  # both papers' column order
BENCHMARK_LABELS = {"aime24": "AIME24", "amc23": "AMC23", "olympiadbench": "OlympiadBench",
                    "math500": "MATH-500", "gsm8k": "GSM8K", "lab": "Lab"}
AVERAGE = "Avg"
DELTA = "Δ"
SCORING_MODES = ("robust", "paper", "judge")  # results.json keys accuracy_<mode>; robust is the headline

Results = dict[str, dict[str, dict[str, Any]]]  # model -> benchmark -> metrics (results.json)


@dataclass(frozen=True)
class Block:
    """Rows of one student: ``rows`` pair a row label with a model name of ``results.json``.

    The first row is the untrained model the Δ column subtracts (Table 2/3).
    """

    label: str  # heading row, e.g. "Qwen2.5-3B-Instruct" ("" = no heading)
    rows: tuple[tuple[str, str], ...]


@dataclass
class Table:
    """A numeric table: ``rows`` pair a row label with one value (or None) per column."""

    columns: list[str]
    rows: list[tuple[str, list[Optional[float]]]]
    caption: str
    signed: bool = False  # Δ tables print "+1.2"
    digits: int = 1  # decimals shown (CSV keeps 4)
    mark_best: bool = True  # best of a column bold, second underlined, within each block (accuracy tables)
    blocks: list[tuple[str, int]] = field(default_factory=list)  # (heading, rows) in order; [] = one block
    signed_columns: frozenset[int] = frozenset()  # columns printed with a sign and never marked (Δ)
    spread: dict[tuple[int, int], float] = field(default_factory=dict)  # (row, column) -> std, shown as ± std

    def cell(self, value: Optional[float], column: int = -1) -> str:
        if value is None:
            return "–"
        signed = self.signed or column in self.signed_columns
        return f"{value:+.{self.digits}f}" if signed else f"{value:.{self.digits}f}"

    def row_blocks(self) -> list[tuple[str, range]]:
        """(heading, row indices) of every block; a table without blocks is one unlabelled block."""
        if not self.blocks:
            return [("", range(len(self.rows)))]
        spans, start = [], 0
        for heading, count in self.blocks:
            spans.append((heading, range(start, start + count)))
            start += count
        return spans

    def marks(self) -> dict[tuple[int, int], str]:
        """``{(row, column): "best" | "second"}`` within each block, per column (ties share a mark)."""
        found: dict[tuple[int, int], str] = {}
        if not self.mark_best:
            return found
        for _, indices in self.row_blocks():
            for column in range(len(self.columns)):
                if column in self.signed_columns:
                    continue
                values = sorted({v for i in indices if (v := self.rows[i][1][column]) is not None}, reverse=True)
                for rank, name in zip(values[:2], ("best", "second")):
                    found.update({(i, column): name for i in indices if self.rows[i][1][column] == rank})
        return found


def benchmark_columns(results: Results) -> list[str]:
    """Benchmarks present in ``results``: the papers' five in the papers' order, then any others sorted."""
    present = {bench for per in results.values() for bench in per}
    return [b for b in BENCHMARK_ORDER if b in present] + sorted(present - set(BENCHMARK_ORDER))


def scoring_modes(results: Results) -> list[str]:
    """The scoring modes some model has an ``accuracy_<mode>`` for, in the order robust, paper, judge."""
    present = {key for per in results.values() for metrics in per.values() for key in metrics}
    return [mode for mode in SCORING_MODES if f"accuracy_{mode}" in present]


def metric_table(results: Results, metric: str, caption: str, *, scale: float = 1.0, digits: int = 1,
                 average: bool = True, mark_best: bool = False) -> Table:
    """One ``results.json`` metric per model × benchmark (× ``scale``), plus the mean over benchmarks.

    The average is None when a model lacks a benchmark, so rows are never averaged over different sets.
    """
    benches = benchmark_columns(results)
    rows = []
    for model, per in results.items():
        values = [scale * per[b][metric] if per.get(b, {}).get(metric) is not None else None for b in benches]
        if average:
            values.append(_mean(values))
        rows.append((model, values))
    columns = [BENCHMARK_LABELS.get(b, b) for b in benches] + ([AVERAGE] if average else [])
    return Table(columns, rows, caption, digits=digits, mark_best=mark_best)


def accuracy_table(results: Results, mode: str = "robust", blocks: Optional[Sequence[Block]] = None) -> Table:
    """Accuracy (%) per row × benchmark, the unweighted average and, with ``blocks``, Δ (Table 2/3 layout).

    Without ``blocks`` every model of ``results`` is a row of one block and there is no Δ column.
    Rows whose model has no results show dashes, so a missing run is visible rather than dropped.
    """
    if mode not in SCORING_MODES:
        raise MicotaError(f"scoring mode must be one of {', '.join(SCORING_MODES)}, got {mode!r}.")
    chosen = list(blocks) if blocks else [Block("", tuple((m, m) for m in results))]
    benches = benchmark_columns(results)
    key = f"accuracy_{mode}"
    rows: list[tuple[str, list[Optional[float]]]] = []
    spread: dict[tuple[int, int], float] = {}
    for block in chosen:
        base_avg = None
        for position, (label, model) in enumerate(block.rows):
            per = results.get(model, {})
            values = [_percent(per.get(b, {}).get(key)) for b in benches]
            for column, bench in enumerate(benches):
                std = per.get(bench, {}).get(f"{key}_std")
                if std is not None:
                    spread[(len(rows), column)] = 100.0 * std
            avg = _mean(values)
            base_avg = avg if position == 0 else base_avg
            delta = [None if avg is None or base_avg is None else avg - base_avg] if blocks else []
            rows.append((label, [*values, avg, *delta]))
    columns = [BENCHMARK_LABELS.get(b, b) for b in benches] + [AVERAGE] + ([DELTA] if blocks else [])
    sampled = " Cells of the sampled protocol are pass@1 mean ± std over the sample sets." if spread else ""
    caption = (f"Accuracy (%) with {mode} scoring; {AVERAGE} = unweighted mean over benchmarks"
               + (f"; {DELTA} = {AVERAGE} minus the block's untrained model" if blocks else "")
               + ". Best per block in bold, second underlined." + sampled)
    return Table(columns, rows, caption, blocks=[(b.label, len(b.rows)) for b in chosen] if blocks else [],
                 signed_columns=frozenset({len(columns) - 1}) if blocks else frozenset(), spread=spread)


def delta_table(table: Table, base_model: str) -> Table:
    """Each row minus the ``base_model`` row, in percentage points (Table 1's Δ)."""
    base = dict(table.rows).get(base_model)
    if base is None:
        raise MicotaError(f"base model {base_model!r} has no results. Models with results: {', '.join(r[0] for r in table.rows)}.")
    rows = [(name, [None if v is None or b is None else v - b for v, b in zip(values, base)])
            for name, values in table.rows if name != base_model]
    return Table(table.columns, rows, f"Δ vs {base_model} (percentage points). {table.caption}", signed=True,
                 mark_best=False)


def gain_table(results: Results, blocks: Sequence[Block], mode: str = "robust") -> Table:
    """MiCoTA Table 1 layout: per student block, each trained row's accuracy minus the block's first row.

    Values are percentage points per benchmark and for the average; a block's first row (the
    untrained model) is the reference and is not shown.
    """
    full = accuracy_table(results, mode, blocks)
    rows, counts, start = [], [], 0
    for block in blocks:
        base = full.rows[start][1][:-1]  # without the Δ column
        for label, values in full.rows[start + 1 : start + len(block.rows)]:
            rows.append((label, [None if v is None or b is None else v - b for v, b in zip(values[:-1], base)]))
        counts.append((block.label, len(block.rows) - 1))
        start += len(block.rows)
    return Table(full.columns[:-1], rows, f"Gain over the untrained student (percentage points), {mode} scoring.",
                 signed=True, mark_best=False, blocks=counts)


def _percent(value: Optional[float]) -> Optional[float]:
    return None if value is None else 100.0 * value


def _mean(values: Sequence[Optional[float]]) -> Optional[float]:
    return statistics.fmean(values) if values and None not in values else None  # type: ignore[arg-type]


def to_markdown(table: Table, first: str = "Model") -> str:
    """A GitHub Markdown table (best **bold**, second <u>underlined</u>) with the caption below it."""
    marks = table.marks()
    lines = [f"| {first} | " + " | ".join(table.columns) + " |", "|---|" + "---:|" * len(table.columns)]
    for heading, indices in table.row_blocks():
        if heading:
            lines.append(f"| *{heading}* |" + " |" * len(table.columns))
        for i in indices:
            name, values = table.rows[i]
            cells = [_marked(_shown(table, i, c, v), marks.get((i, c)), "**{}**", "<u>{}</u>") for c, v in enumerate(values)]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + f"\n\n*{table.caption}*\n"


def to_csv(table: Table, first: str = "model") -> str:
    """CSV with full precision (empty cells for missing values); blocks become a leading ``block`` column."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    blocked = bool(table.blocks)
    writer.writerow([*(["block"] if blocked else []), first, *table.columns])
    for heading, indices in table.row_blocks():
        for i in indices:
            name, values = table.rows[i]
            writer.writerow([*([heading] if blocked else []), name, *("" if v is None else round(v, 4) for v in values)])
    return buffer.getvalue()


def to_latex(table: Table, first: str = "Model") -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``): best per block bold, second underlined."""
    marks = table.marks()
    body = []
    for heading, indices in table.row_blocks():
        if heading:
            body += [r"\midrule", rf"\multicolumn{{{len(table.columns) + 1}}}{{l}}{{\textit{{{_latex_escape(heading)}}}}} \\"]
        for i in indices:
            name, values = table.rows[i]
            cells = [_marked(_shown(table, i, c, v).replace("±", r"$\pm$"), marks.get((i, c)), r"\textbf{{{}}}",
                             r"\underline{{{}}}") for c, v in enumerate(values)]
            body.append(" & ".join([_latex_escape(name), *(c.replace("–", "--") for c in cells)]) + r" \\")
    header = " & ".join([first, *map(_latex_escape, table.columns)]) + r" \\"
    head = [f"% {table.caption}", r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule", header]
    return "\n".join([*head, *([] if table.blocks else [r"\midrule"]), *body, r"\bottomrule", r"\end{tabular}"]) + "\n"


def _shown(table: Table, row: int, column: int, value: Optional[float]) -> str:
    text = table.cell(value, column)
    std = table.spread.get((row, column))
    return f"{text} ± {std:.{table.digits}f}" if std is not None and value is not None else text


def _marked(text: str, mark: Optional[str], best: str, second: str) -> str:
    return best.format(text) if mark == "best" else second.format(text) if mark == "second" else text


def length_tables(results: Results) -> dict[str, Table]:
    """Mean response tokens, truncation rate and reflection words per response (Figures 2–4 as numbers).

    "Wait per response" is MiCoTA's Figure 4 (it counts "wait"); the other markers micota counts
    are a separate, labelled extension table.
    """
    tables = {
        "Mean response length": metric_table(results, "mean_tokens", "Mean response length (tokens).", digits=0),
        "Truncation rate": metric_table(results, "truncation_rate", "Truncation rate (% of responses that hit "
                                        "max_new_tokens without finishing).", scale=100.0),
        "Wait per response (Figure 4)": marker_table(results, ["wait"], "\"wait\" per response (MiCoTA Figure 4 counts this word)."),
    }
    others = [m for m in reflection_markers(results) if m != "wait"]
    if others:
        tables["Other reflection markers (micota extension)"] = marker_table(
            results, others, f"Other reflection markers per response, summed ({', '.join(others)}): a micota "
            "extension, not in the papers.")
    return tables


def marker_table(results: Results, markers: Sequence[str], caption: str) -> Table:
    """Mean count per response of ``markers`` (summed) per model × benchmark, from ``reflection_by_marker``."""
    derived = {model: {bench: {"count": sum(metrics.get("reflection_by_marker", {}).get(m, 0.0) for m in markers)}
                       for bench, metrics in per.items() if "reflection_by_marker" in metrics}
               for model, per in results.items()}
    return metric_table({m: per for m, per in derived.items() if per}, "count", caption, digits=2)


def reflection_markers(results: Results) -> list[str]:
    """The reflection markers the evaluation counted (from ``reflection_by_marker``), in first-seen order."""
    found: dict[str, None] = {}
    for per in results.values():
        for metrics in per.values():
            found.update(dict.fromkeys(metrics.get("reflection_by_marker", {})))
    return list(found)


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}", "Δ": r"$\Delta$"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)
