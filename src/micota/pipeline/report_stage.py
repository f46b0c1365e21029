"""The ``report`` stage: the MiCoTA summary of a run, ``RUN/report.md``.

It reads an evaluate stage's ``results.json`` and puts, on top of the general analysis
report (:func:`micota.analyze.report.write_report`: every stage's manifest, accuracy tables
in Markdown/CSV/LaTeX, length and reflection tables, plots), the paper's Table 2/3 layout (methods x benchmarks, average, gap to the
untrained model), the TA's CoT length before SFT, after SFT and after merging (Figure 2,
"half length"), the data each stage kept, and a plain statement — with the measured
numbers — of whether this run shows the two effects MiCoTA rests on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from pydantic import Field

from micota.config import NOT_HASHED, StrictModel
from micota.manifest import Manifest
from micota.stage import StageResult, run_stage

REPORT_NAME = "report.md"


class ReportConfig(StrictModel):
    out_dir: Path = Field(json_schema_extra=NOT_HASHED)
    evaluation: Path  # an evaluate stage folder (holds results.json)
    title: str = "MiCoTA run report"
    methods: list[str] = Field(default_factory=lambda: ["Instruct", "Strong-Teacher CoT", "Half-size CoT", "MiCoTA", "Mix-Long"])
    base_method: str = "Instruct"  # the untrained student: Δ is measured against it
    ta_models: dict[str, str] = Field(  # label -> model name in the evaluation
        default_factory=lambda: {"before SFT": "TA pre-SFT", "after SFT": "TA post-SFT", "after merging": "TA merged"}
    )
    long_cot_method: str = "Strong-Teacher CoT"  # effect (b): the student trained on the longest CoT ...
    shorter_cot_methods: list[str] = Field(  # ... vs each of these (every comparison is reported)
        default_factory=lambda: ["Half-size CoT", "MiCoTA", "Mix-Long"]
    )
    write_run_summary: bool = True  # also write RUN/report.md (RUN = the folder holding out_dir)


def run(cfg: ReportConfig) -> Manifest:
    run_dir = cfg.out_dir.parent

    def body(out: Path) -> StageResult:
        from micota.analyze.report import write_report

        results = json.loads((cfg.evaluation / "results.json").read_text(encoding="utf-8"))
        base = cfg.base_method if cfg.base_method in results else None
        groups = {"Teacher assistant before SFT, after SFT, after merging (Figure 2)": list(cfg.ta_models.values()),
                  "Students by training data (Figure 3)": cfg.methods}
        report = write_report([run_dir], out, base_model=base, summary_sections=summary_sections(cfg, results),
                              title=cfg.title, length_groups=groups)
        if cfg.write_run_summary:
            (run_dir / REPORT_NAME).write_text(_links_from_run_dir(report.read_text(encoding="utf-8"), out.name), encoding="utf-8")
        return StageResult(outputs={"report": REPORT_NAME}, metrics=effects(cfg, results))

    return run_stage("report", cfg, cfg.out_dir, evaluation_inputs(cfg.evaluation), body)


def evaluation_inputs(folder: Path) -> dict[str, Path]:
    """The files of an evaluate folder the report reads: ``results.json`` and the sample files it names.

    Not the whole folder: its generation shards are laid out differently after a resumed run
    (a killed evaluation adds a part file) while holding the same samples.
    """
    results = folder / "results.json"
    inputs = {"evaluation": results}
    if results.is_file():
        for model, per_benchmark in sorted(json.loads(results.read_text(encoding="utf-8")).items()):
            for benchmark, entry in sorted(per_benchmark.items()):
                if isinstance(entry, dict) and entry.get("samples"):
                    inputs[f"samples:{model}:{benchmark}"] = folder / entry["samples"]
    return inputs


def summary_sections(cfg: ReportConfig, results: dict[str, Any]) -> list[str]:
    """The MiCoTA-specific Markdown blocks: methods table, TA lengths, measured effects."""
    benchmarks = sorted({b for per_model in results.values() for b in per_model})
    blocks = (_methods_table(cfg, results, benchmarks), _ta_table(cfg, results), _effects_section(effects(cfg, results)))
    return ["\n".join(lines) for lines in blocks]


def _links_from_run_dir(markdown: str, stage_folder: str) -> str:
    # The stage's report links tables/ and plots/ beside it; RUN/report.md sits one folder up.
    for folder in ("tables/", "plots/"):
        markdown = markdown.replace(f"]({folder}", f"]({stage_folder}/{folder}")
    return markdown


def mean_over(results: dict[str, Any], model: str, key: str) -> Optional[float]:
    """Average of ``key`` over the benchmarks a model was evaluated on (None when absent)."""
    values = [m[key] for m in results.get(model, {}).values() if key in m]
    return sum(values) / len(values) if values else None


def effects(cfg: ReportConfig, results: dict[str, Any]) -> dict[str, Any]:
    """The two MiCoTA effects, measured: (a) merged TA length in between, (b) long CoT hurts the student."""
    lengths = {label: mean_over(results, model, "mean_tokens") for label, model in cfg.ta_models.items()}
    pre, post, merged = (lengths.get(k) for k in ("before SFT", "after SFT", "after merging"))
    a = None if None in (pre, post, merged) else bool(min(pre, post) < merged < max(pre, post))
    long_acc = mean_over(results, cfg.long_cot_method, "accuracy_robust")
    shorter = {m: mean_over(results, m, "accuracy_robust") for m in cfg.shorter_cot_methods}
    worse_than = {m: None if v is None or long_acc is None else bool(long_acc < v) for m, v in shorter.items()}
    known = [w for w in worse_than.values() if w is not None]
    b = bool(any(known)) if known else None  # worse than at least one shorter-CoT student; each one is listed
    return {"ta_mean_tokens": lengths, "a_merged_length_between": a, "long_cot_accuracy": long_acc,
            "shorter_cot_accuracy": shorter, "b_long_cot_worse_than": worse_than, "b_long_cot_worse": b}


def _pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _methods_table(cfg: ReportConfig, results: dict[str, Any], benchmarks: list[str]) -> list[str]:
    base = mean_over(results, cfg.base_method, "accuracy_robust")
    head = ["Method", *benchmarks, "Avg", f"Δ vs {cfg.base_method}", "Avg (paper)", "Mean tokens"]
    lines = ["## Students: accuracy (%) by training data (paper Table 2/3 layout)", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in cfg.methods:
        if method not in results:
            lines.append(f"| {method} | " + " | ".join("–" for _ in head[1:]) + " |")
            continue
        per = results[method]
        avg = mean_over(results, method, "accuracy_robust")
        delta = "–" if avg is None or base is None else f"{100 * (avg - base):+.1f}"
        tokens = mean_over(results, method, "mean_tokens")
        cells = [_pct(per.get(b, {}).get("accuracy_robust")) for b in benchmarks]
        cells += [_pct(avg), delta, _pct(mean_over(results, method, "accuracy_paper")), "–" if tokens is None else f"{tokens:.0f}"]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines + ["", "Accuracy is robust-mode grading (micota.grade); `Avg (paper)` is the classic MATH exact-match rule.", ""]


def _ta_table(cfg: ReportConfig, results: dict[str, Any]) -> list[str]:
    lines = ["## Teacher assistant: CoT length before SFT, after SFT, after merging (paper Figure 2)", "",
             "| TA | Model | Mean response tokens | Accuracy (%) | Reflection words / response |", "|---|---|---|---|---|"]
    for label, model in cfg.ta_models.items():
        tokens = mean_over(results, model, "mean_tokens")
        refl = mean_over(results, model, "reflection_per_response")
        lines.append(f"| {label} | {model} | {'–' if tokens is None else f'{tokens:.1f}'} | "
                     f"{_pct(mean_over(results, model, 'accuracy_robust'))} | {'–' if refl is None else f'{refl:.2f}'} |")
    return lines + [""]


def _effects_section(found: dict[str, Any]) -> list[str]:
    lengths = found["ta_mean_tokens"]
    shown = ", ".join(f"{k}: {'–' if v is None else f'{v:.1f}'}" for k, v in lengths.items())
    verdict = {True: "**yes**", False: "**no**", None: "**not measured**"}
    shorter = "; ".join(f"than {k} ({_pct(found['shorter_cot_accuracy'][k])}%): {verdict[w]}"
                        for k, w in found["b_long_cot_worse_than"].items())
    return [
        "## Does this run show the MiCoTA effects? (measured, not assumed)", "",
        f"- (a) The merged TA's CoT length lies between the pre-SFT and post-SFT TA's: {verdict[found['a_merged_length_between']]} "
        f"(mean response tokens — {shown}).",
        f"- (b) The student trained on the strong teacher's long CoT does worse than on shorter CoT: "
        f"{verdict[found['b_long_cot_worse']]} for at least one shorter-CoT dataset "
        f"(accuracy with long CoT: {_pct(found['long_cot_accuracy'])}%; worse {shorter}).",
        "",
    ]
