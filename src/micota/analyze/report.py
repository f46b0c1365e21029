"""``micota report``: gather stage manifests and results into one ``report.md`` with plots.

The report reads files only (``manifest.json``, ``results.json``, per-sample JSONL,
``bpc.json``), never another stage's Python objects, so it works on any finished run
folder, copied or not. Tables go to ``tables/`` as CSV, Markdown and LaTeX; plots to
``plots/`` as PNG; ``report.md`` links both.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from micota.analyze import plots
from micota.analyze.tables import (Block, Results, Table, accuracy_table, delta_table, length_tables, metric_table,
                                   scoring_modes, to_csv, to_latex, to_markdown)
from micota.errors import MicotaError
from micota.jsonl import iter_jsonl
from micota.manifest import MANIFEST_NAME, Manifest, read_manifest

REPORT_NAME = "report.md"


@dataclass
class RunData:
    """Everything the report needs, gathered from run folders."""

    stages: list[tuple[str, Manifest]] = field(default_factory=list)  # (run folder name / stage path, manifest)
    results: Results = field(default_factory=dict)
    lengths: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # model -> benchmark -> tokens
    bpc: dict[str, dict[str, Any]] = field(default_factory=dict)  # model -> dataset -> scores
    bpc_datasets: list[str] = field(default_factory=list)  # Table 4 rows, in the bpc stage's order
    ranking: dict[str, list[str]] = field(default_factory=dict)


def gather_runs(run_dirs: Sequence[Path]) -> RunData:
    """Read every finished stage under ``run_dirs`` (later folders win when a model repeats)."""
    data = RunData()
    for run_dir in map(Path, run_dirs):
        if not run_dir.exists():
            raise MicotaError(f"report: run folder {run_dir} does not exist.")
        for manifest_path in sorted(run_dir.rglob(MANIFEST_NAME)):
            stage_dir = manifest_path.parent
            manifest = read_manifest(stage_dir)
            data.stages.append(((Path(run_dir.name) / stage_dir.relative_to(run_dir)).as_posix(), manifest))
            if (stage_dir / "results.json").is_file() and manifest.stage == "evaluate":
                _add_evaluation(data, stage_dir)
            if (stage_dir / "bpc.json").is_file():
                _add_bpc(data, json.loads((stage_dir / "bpc.json").read_text(encoding="utf-8")))
    data.ranking = {m: sorted(per, key=lambda d: per[d]["bpc"]) for m, per in data.bpc.items()}
    if not data.stages:
        raise MicotaError(f"report: no finished stage (no {MANIFEST_NAME}) under {', '.join(map(str, run_dirs))}.")
    return data


def _add_bpc(data: RunData, bpc: dict[str, Any]) -> None:
    for model in bpc.get("models", list(bpc["scores"])):  # the stage's column order (older files: score order)
        data.bpc.setdefault(model, {}).update(bpc["scores"].get(model, {}))
    order = bpc.get("datasets") or sorted({d for per in bpc["scores"].values() for d in per})
    data.bpc_datasets += [d for d in order if d not in data.bpc_datasets]


def _add_evaluation(data: RunData, stage_dir: Path) -> None:
    results = json.loads((stage_dir / "results.json").read_text(encoding="utf-8"))
    for model, per in results.items():
        data.results.setdefault(model, {}).update(per)
        for bench, metrics in per.items():
            sample_file = stage_dir / metrics.get("samples", "")
            if metrics.get("samples") and sample_file.is_file():
                data.lengths.setdefault(model, {})[bench] = [rec["n_tokens"] for _, rec in iter_jsonl(sample_file)]


def write_report(run_dirs: Sequence[Path], out: Path, *, base_model: Optional[str] = None,
                 extra_sections: Sequence[str] = (), summary_sections: Sequence[str] = (),
                 title: str = "micota report", length_groups: Optional[Mapping[str, Sequence[str]]] = None,
                 blocks: Optional[Sequence[Block]] = None) -> Path:
    """Write ``out/report.md`` (+ ``out/tables``, ``out/plots``) and return its path.

    ``summary_sections`` are Markdown blocks placed right after the title, ``extra_sections``
    appended at the end (the pipeline puts its MiCoTA summary first). ``blocks`` lays the
    accuracy tables out as the papers' Table 2/3 (one block per student, Δ vs its untrained
    model); without them every evaluated model is a row. ``length_groups`` adds one
    length-distribution figure per named group of models, e.g. ``{"Teacher assistant
    (Figure 2)": ["TA pre-SFT", "TA post-SFT", "TA merged"]}``.
    """
    out = Path(out)
    data = gather_runs(run_dirs)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"# {title}\n\nGenerated {time.strftime('%Y-%m-%d %H:%M:%S %Z')} from "
             + ", ".join(f"`{d}`" for d in run_dirs) + ".\n", *summary_sections, _stages_section(data)]
    if data.results:
        parts.append(_accuracy_section(data, out, base_model, blocks))
        parts.append(_length_section(data, out, length_groups or {}))
    if data.bpc:
        parts.append(_bpc_section(data, out))
    parts.extend(extra_sections)
    report = out / REPORT_NAME
    report.write_text("\n".join(parts), encoding="utf-8")
    return report


def _stages_section(data: RunData) -> str:
    lines = ["## Stages\n", "| stage | folder | config sha256 | counts | wall time (s) |", "|---|---|---|---|---:|"]
    for folder, m in data.stages:
        counts = ", ".join(f"{k}={v}" for k, v in m.counts.items())
        lines.append(f"| {m.stage} | `{folder}` | `{m.config_sha256[:12]}` | {counts} | {m.wall_time_s:.1f} |")
    return "\n".join(lines) + "\n"


_MODE_NOTES = {
    "robust": "micota's grader (normalised answers, math-verify equivalence): the headline score",
    "paper": "the papers' rule-based harness (lm-eval tasks of the Mix-Distillation repository), as published",
    "judge": "`paper`, then an LLM judge re-checking each `paper` failure that has a boxed answer (Mix-Distillation)",
}


def _accuracy_section(data: RunData, out: Path, base_model: Optional[str], blocks: Optional[Sequence[Block]]) -> str:
    layout = "Table 2/3 layout: one block per student" if blocks else "Table 2/3 layout"
    parts = [f"## Accuracy ({layout})\n",
             "Scores by scoring mode; the gap between modes is grading, not model skill:\n"
             + "".join(f"\n- `{mode}`: {_MODE_NOTES[mode]}" for mode in scoring_modes(data.results)) + "\n"]
    for mode in scoring_modes(data.results):
        table = accuracy_table(data.results, mode, blocks)
        parts.append(f"### {mode} scoring\n\n" + _save_table(table, out, f"accuracy_{mode}"))
        for key in _majority_keys(data.results, mode):  # sampled protocol: majority vote over the n samples
            majority = metric_table(data.results, key, f"{key}: accuracy (%) of the most frequent answer over the "
                                    f"samples of each problem, {mode} scoring.", scale=100.0)
            parts.append(f"### {key} (sampled protocol)\n\n" + _save_table(majority, out, key.replace("@", "_at_")))
        if base_model and base_model in data.results:
            delta = delta_table(accuracy_table(data.results, mode), base_model)
            parts.append(f"### Δ vs {base_model} ({mode}; Table 1 layout)\n\n" + _save_table(delta, out, f"delta_{mode}"))
    plot = plots.plot_accuracy_vs_length(data.results, out / "plots" / "accuracy_vs_length.png")
    parts.append(f"![Accuracy vs mean response length]({_relative(plot, out)})\n")
    return "\n".join(parts)


def _majority_keys(results: Results, mode: str) -> list[str]:
    """The ``maj@<n>_<mode>`` keys present in ``results`` (written by the sampled protocol)."""
    found = {key for per in results.values() for metrics in per.values() for key in metrics
             if re.fullmatch(rf"maj@\d+_{mode}", key)}
    return sorted(found)


def _length_section(data: RunData, out: Path, groups: Mapping[str, Sequence[str]]) -> str:
    parts = ["## Response lengths, truncation and reflection words (Figures 2–4)\n"]
    for title, table in length_tables(data.results).items():
        slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
        parts.append(f"### {title}\n\n" + _save_table(table, out, slug))
    if data.lengths:
        plot = plots.plot_length_distributions(data.lengths, out / "plots" / "length_distributions.png")
        parts.append(f"![Response length distributions]({_relative(plot, out)})\n")
    for title, models in groups.items():
        chosen = {m: data.lengths[m] for m in models if m in data.lengths}
        if chosen:
            slug = re.sub(r"[^a-z0-9]+", "_", title.lower()).strip("_")
            plot = plots.plot_length_distributions(chosen, out / "plots" / f"lengths_{slug}.png", title=title)
            parts.append(f"![{title}]({_relative(plot, out)})\n")
    for plot, alt in plots.plot_reflection_words(data.results, out / "plots"):
        parts.append(f"![{alt}]({_relative(plot, out)})\n")
    return "\n".join(parts)


def bpc_table(scores: Mapping[str, Mapping[str, Mapping[str, Any]]], datasets: Sequence[str]) -> Table:
    """MiCoTA Table 4 layout: rows = CoT datasets (in ``datasets`` order), columns = models (as given)."""
    models = list(scores)
    rows = [(d, [scores[m].get(d, {}).get("bpc") for m in models]) for d in datasets]
    return Table(models, rows, "Bits per character of each CoT dataset's responses under each model "
                 "(lower = closer to what the model already writes).", digits=4, mark_best=False)


def _bpc_section(data: RunData, out: Path) -> str:
    table = bpc_table(data.bpc, data.bpc_datasets)
    ranking = "\n".join(f"- **{m}**: " + " < ".join(order) for m, order in data.ranking.items())
    plot = plots.plot_bpc_heatmap(data.bpc, out / "plots" / "bpc_heatmap.png", datasets=data.bpc_datasets)
    return "\n".join(["## Bits per character (Table 4 layout)\n", _save_table(table, out, "bpc", first="Dataset"),
                      "Training sets ranked for each model (lowest BPC first — the data it can learn from most easily):\n",
                      ranking + "\n", f"![BPC heat-map]({_relative(plot, out)})\n"])


def _save_table(table: Table, out: Path, name: str, first: str = "Model") -> str:
    """Write ``tables/<name>.{csv,md,tex}`` and return the Markdown with links to the other formats."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    markdown = to_markdown(table, first)
    (folder / f"{name}.md").write_text(markdown, encoding="utf-8")
    (folder / f"{name}.csv").write_text(to_csv(table, first.lower()), encoding="utf-8")
    (folder / f"{name}.tex").write_text(to_latex(table, first), encoding="utf-8")
    return markdown + f"\n([CSV](tables/{name}.csv), [LaTeX](tables/{name}.tex))\n"


def _relative(path: Path, out: Path) -> str:
    try:
        return path.resolve().relative_to(out.resolve()).as_posix()
    except ValueError:
        return str(path)
