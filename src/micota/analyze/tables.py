"""Accuracy tables in the paper's layouts, written as Markdown, CSV and LaTeX (issue 5, item 4).

Table 2/3 layout: rows = models/methods, columns = benchmarks + average, cells = accuracy
in percent, one table per grading mode (``robust``, ``paper``). Table 1 layout: the same
rows as differences Δ (percentage points) against a named base model.
"""

from __future__ import annotations

import csv
import io
import statistics
from dataclasses import dataclass
from typing import Any, Optional

from micota.errors import MicotaError

BENCHMARK_ORDER = ("aime24", "amc23", "olympiadbench", "math500", "gsm8k")  # the paper's column order
BENCHMARK_LABELS = {"aime24": "AIME24", "amc23": "AMC23", "olympiadbench": "OlympiadBench",
                    "math500": "MATH-500", "gsm8k": "GSM8K", "lab": "Lab"}
AVERAGE = "Avg."

Results = dict[str, dict[str, dict[str, Any]]]  # model -> benchmark -> metrics (results.json)


@dataclass
class Table:
    """A numeric table: ``rows`` pair a row label with one value (or None) per column."""

    columns: list[str]
    rows: list[tuple[str, list[Optional[float]]]]
    caption: str
    signed: bool = False  # Δ tables print "+1.2"
    digits: int = 1  # decimals shown (CSV keeps 4)
    bold_best: bool = True  # LaTeX: bold the highest value per column (accuracy tables only)

    def cell(self, value: Optional[float]) -> str:
        if value is None:
            return "–"
        return f"{value:+.{self.digits}f}" if self.signed else f"{value:.{self.digits}f}"


def benchmark_columns(results: Results) -> list[str]:
    """Benchmarks present in ``results``: the paper's five in paper order, then any others sorted."""
    present = {bench for per in results.values() for bench in per}
    return [b for b in BENCHMARK_ORDER if b in present] + sorted(present - set(BENCHMARK_ORDER))


def metric_table(results: Results, metric: str, caption: str, *, scale: float = 1.0, digits: int = 1,
                 average: bool = True, bold_best: bool = False) -> Table:
    """One ``results.json`` metric per model × benchmark (× ``scale``), plus the mean over benchmarks.

    The average is None when a model lacks a benchmark, so rows are never averaged over different sets.
    """
    benches = benchmark_columns(results)
    rows = []
    for model, per in results.items():
        values = [scale * per[b][metric] if per.get(b, {}).get(metric) is not None else None for b in benches]
        if average:
            values.append(statistics.fmean(values) if values and None not in values else None)
        rows.append((model, values))
    columns = [BENCHMARK_LABELS.get(b, b) for b in benches] + ([AVERAGE] if average else [])
    return Table(columns, rows, caption, digits=digits, bold_best=bold_best)


def accuracy_table(results: Results, mode: str = "robust") -> Table:
    """Accuracy (%) per model × benchmark and the unweighted average (Table 2/3 layout)."""
    if mode not in {"robust", "paper"}:
        raise MicotaError(f"mode must be 'robust' or 'rule', got {mode!r}.")
    return metric_table(results, f"accuracy_{mode}", f"Accuracy (%) with {mode} grading; "
                        f"{AVERAGE} = unweighted mean over benchmarks.", scale=100.0, bold_best=True)


def delta_table(table: Table, base_model: str) -> Table:
    """Each row minus the ``base_model`` row, in percentage points (Table 1's Δ)."""
    base = dict(table.rows).get(base_model)
    if base is None:
        raise MicotaError(f"base model {base_model!r} has no results. Models with results: {', '.join(r[0] for r in table.rows)}.")
    rows = [(name, [None if v is None or b is None else v - b for v, b in zip(values, base)])
            for name, values in table.rows if name != base_model]
    return Table(table.columns, rows, f"Δ vs {base_model} (percentage points). {table.caption}", signed=True,
                 bold_best=False)


def to_markdown(table: Table, first: str = "Model") -> str:
    """A GitHub Markdown table with the caption below it."""
    lines = [f"| {first} | " + " | ".join(table.columns) + " |", "|---|" + "---:|" * len(table.columns)]
    lines += [f"| {name} | " + " | ".join(table.cell(v) for v in values) + " |" for name, values in table.rows]
    return "\n".join(lines) + f"\n\n*{table.caption}*\n"


def to_csv(table: Table, first: str = "model") -> str:
    """CSV with full precision (empty cells for missing values)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([first, *table.columns])
    writer.writerows([name, *("" if v is None else round(v, 4) for v in values)] for name, values in table.rows)
    return buffer.getvalue()


def to_latex(table: Table, first: str = "Model") -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``), best value per column in bold."""
    best = [max((v for _, values in table.rows if (v := values[i]) is not None), default=None)
            for i in range(len(table.columns))]
    body = []
    for name, values in table.rows:
        cells = [(f"\\textbf{{{table.cell(v)}}}" if table.bold_best and v is not None and v == best[i] else table.cell(v))
                 for i, v in enumerate(values)]
        body.append(" & ".join([_latex_escape(name), *(c.replace("–", "--") for c in cells)]) + r" \\")
    header = " & ".join([first, *map(_latex_escape, table.columns)]) + r" \\"
    return "\n".join([f"% {table.caption}", r"\begin{tabular}{l" + "r" * len(table.columns) + "}", r"\toprule", header,
                      r"\midrule", *body, r"\bottomrule", r"\end{tabular}"]) + "\n"


def length_tables(results: Results) -> dict[str, Table]:
    """Mean response tokens, truncation rate and reflection words per response (Figures 2–4 as numbers)."""
    return {
        "Mean response length": metric_table(results, "mean_tokens", "Mean response length (tokens).", digits=0),
        "Truncation rate": metric_table(results, "truncation_rate", "Truncation rate (% of responses that hit "
                                   "max_new_tokens without finishing).", scale=100.0),
        "Reflection words": metric_table(results, "reflection_per_response", f"Reflection markers per response "
                                         f"(counted: {', '.join(_markers(results)) or 'none recorded'}).", digits=2),
    }


def _markers(results: Results) -> list[str]:
    """The reflection markers the evaluation counted (from ``reflection_by_marker``)."""
    found: dict[str, None] = {}
    for per in results.values():
        for metrics in per.values():
            found.update(dict.fromkeys(metrics.get("reflection_by_marker", {})))
    return list(found)


_LATEX_SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                   "{": r"\{", "}": r"\}"}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIALS.get(char, char) for char in text)
