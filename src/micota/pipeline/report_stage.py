"""The ``report`` stage: the MiCoTA summary of a run, ``RUN/report.md``.

It reads every finished evaluation of the run folder (several recipes may share one run
folder, e.g. one per student size, so the last report shows every student done so far) and
puts, on top of the general analysis report (:func:`micota.analyze.report.write_report`: every
stage's manifest, accuracy tables in Markdown/CSV/LaTeX, lengths, "wait" counts, BPC, plots):
Table 1 (each student's gain from the strong teacher's and from the TA's CoT), the TA's CoT
length before SFT, after SFT and after merging (Figure 2, "half length"), the learnability
view (does BPC before training rank the training sets as the accuracy after training does?),
and a plain statement, with the measured numbers, of whether this run shows the two effects
MiCoTA rests on. The Table 2/3 blocks themselves are the analysis report's accuracy tables.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from pydantic import Field, field_validator

from micota.analyze.effects import ClaimModels, claims_markdown, mean_metric, measure
from micota.analyze.learnability import learnability_rows, rank_agreement
from micota.analyze.tables import Block, gain_table, to_markdown
from micota.config import NOT_HASHED, StrictModel
from micota.manifest import MANIFEST_NAME, Manifest, read_manifest
from micota.stage import StageResult, run_stage

REPORT_NAME = "report.md"


class LearnabilityView(StrictModel):
    """BPC of one untrained student on each candidate training set, beside the accuracy it reaches on it."""

    bpc_model: str  # the untrained student as named in the bpc stage's `models` (a Table 4 column)
    student: str = ""  # its block in `students` ("" when the report has no student blocks)
    datasets: dict[str, str]  # bpc dataset name -> the method (row) trained on that dataset


class ReportConfig(StrictModel):
    out_dir: Path = Field(json_schema_extra=NOT_HASHED)
    evaluation: list[Path]  # evaluate stage folder(s) to wait for; every finished evaluation of the run is read
    after: list[Path] = Field(default_factory=list)  # other stage folders to wait for (e.g. a bpc stage; its bpc.json is read)
    title: str = "MiCoTA run report"
    students: dict[str, str] = Field(default_factory=dict)  # block heading -> prefix of its model names
    # ({"Qwen2.5-3B-Instruct": "3B"} reads rows "3B Instruct", "3B MiCoTA", ...); {} = one block named by methods
    methods: list[str] = Field(default_factory=lambda: ["Instruct", "Strong-Teacher CoT", "Half-size CoT", "MiCoTA", "Mix-Long"])
    base_method: str = "Instruct"  # the untrained student: Δ is measured against it
    ta_models: dict[str, str] = Field(  # label -> model name in the evaluation
        default_factory=lambda: {"before SFT": "TA pre-SFT", "after SFT": "TA post-SFT", "after merging": "TA merged"}
    )
    long_cot_method: str = "Strong-Teacher CoT"  # effect (b): the student trained on the longest CoT ...
    shorter_cot_methods: list[str] = Field(  # ... vs each of these (every comparison is reported)
        default_factory=lambda: ["Half-size CoT", "MiCoTA", "Mix-Long"]
    )
    table1_rows: dict[str, str] = Field(  # MiCoTA Table 1: row label -> method whose gain over base_method it shows
        default_factory=lambda: {"+Teacher": "Strong-Teacher CoT", "+TA": "Half-size CoT"}
    )
    learnability: list[LearnabilityView] = Field(default_factory=list)  # one view per student (one view alone is accepted)

    @field_validator("learnability", mode="before")
    @classmethod
    def _one_view_or_many(cls, value: Any) -> Any:
        return [] if value is None else [value] if isinstance(value, (dict, LearnabilityView)) else value
    write_run_summary: bool = True  # also write RUN/report.md (RUN = the folder holding out_dir)

    @field_validator("evaluation", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, (str, Path)) else value

    def model_name(self, student: str, method: str) -> str:
        """The evaluated model name of ``method`` for the block ``student`` ("" = no blocks)."""
        prefix = self.students.get(student, "")
        return f"{prefix} {method}" if prefix else method

    def blocks(self) -> list[Block]:
        """The Table 2/3 blocks: one per student, its base method first (one block when no students)."""
        methods = [self.base_method, *(m for m in self.methods if m != self.base_method)]
        return [Block(student, tuple((m, self.model_name(student, m)) for m in methods)) for student in self.students or [""]]


def run(cfg: ReportConfig) -> Manifest:
    run_dir = cfg.out_dir.parent

    def body(out: Path) -> StageResult:
        from micota.analyze.report import gather_runs, write_report

        data = gather_runs([run_dir])
        blocks = [b for b in cfg.blocks() if any(model in data.results for _, model in b.rows)]
        groups = {"Teacher assistant before SFT, after SFT, after merging (Figure 2)": list(cfg.ta_models.values())}
        groups.update({f"{b.label or 'Students'} by training data (Figure 3)": [m for _, m in b.rows] for b in blocks})
        found = effects(cfg, data.results)
        found["claims"] = measure(data.results, claim_models(cfg))
        summary = summary_sections(cfg, data.results, data.bpc, found)
        report = write_report([run_dir], out, summary_sections=summary, title=cfg.title, length_groups=groups,
                              blocks=blocks or None)
        if cfg.write_run_summary:
            (run_dir / REPORT_NAME).write_text(_links_from_run_dir(report.read_text(encoding="utf-8"), out.name), encoding="utf-8")
        return StageResult(outputs={"report": REPORT_NAME}, metrics=found)

    inputs: dict[str, Path] = {}
    for index, folder in enumerate(cfg.evaluation):
        inputs.update({f"{name}[{index}]": path for name, path in evaluation_inputs(folder).items()})
    for index, folder in enumerate(cfg.after):
        inputs.update({f"after[{index}]{name}": path for name, path in after_inputs(Path(folder)).items()})
    return run_stage("report", cfg, cfg.out_dir, inputs, body)


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


def after_inputs(folder: Path) -> dict[str, Path]:
    """The outputs a finished stage folder's manifest lists (e.g. a bpc stage's bpc.json), by name.

    Not its manifest: that holds a timestamp, so a re-run of the same stage would look like new
    input. Before the stage has run, its manifest path stands in (the stage will write it).
    """
    manifest = read_manifest(folder)
    if manifest is None:
        return {"": folder / MANIFEST_NAME}
    return {f":{name}": folder / rel for name, rel in sorted(manifest.outputs.items())}


def summary_sections(cfg: ReportConfig, results: dict[str, Any], bpc: dict[str, Any], found: dict[str, Any]) -> list[str]:
    """The MiCoTA-specific Markdown blocks: Table 1, TA lengths, learnability, measured effects."""
    blocks = [table1_lines(cfg, results)] if cfg.table1_rows else []  # views a recipe empties are left out
    blocks += [_ta_table(cfg, results)] if cfg.ta_models else []
    blocks += [learnability_lines(cfg, view, results, bpc) for view in cfg.learnability]
    blocks.append(_effects_section(found, cfg))
    return ["\n".join(lines) for lines in blocks]


def pct(value: Optional[float]) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def table1_lines(cfg: ReportConfig, results: dict[str, Any]) -> list[str]:
    """MiCoTA Table 1: each student's gain from the strong teacher's CoT (+Teacher) and the TA's (+TA)."""
    blocks = [Block(student, ((cfg.base_method, cfg.model_name(student, cfg.base_method)),
                              *((label, cfg.model_name(student, m)) for label, m in cfg.table1_rows.items())))
              for student in cfg.students or [""]]
    blocks = [b for b in blocks if b.rows[0][1] in results]
    rows = ", ".join(f"{label} = trained on {m}" for label, m in cfg.table1_rows.items())
    if not blocks:
        return ["## Gain from the teacher's and the TA's CoT (MiCoTA Table 1 layout)", "",
                f"Not measured: no untrained student ({cfg.base_method}) was evaluated.", ""]
    return ["## Gain from the teacher's and the TA's CoT (MiCoTA Table 1 layout)", "", f"Rows: {rows}.", "",
            to_markdown(gain_table(results, blocks))]


def learnability_lines(cfg: ReportConfig, view: LearnabilityView, results: dict[str, Any], bpc: dict[str, Any]) -> list[str]:
    """One learnability view: BPC under the untrained student beside its accuracy after training on each set."""
    scores = bpc.get(view.bpc_model, {})
    rows = learnability_rows({d: scores.get(d, {}).get("bpc") for d in view.datasets},
                             {d: mean_metric(results, cfg.model_name(view.student, m), "accuracy_robust")
                              for d, m in view.datasets.items()})
    agreement = rank_agreement(rows)
    rho = agreement["spearman"]
    verdict = {True: "**yes**", False: "**no**", None: "**not measured**"}[agreement["lowest_bpc_trains_best"]]  # type: ignore[index]
    lines = [f"## Learnability: does BPC before training rank the training sets? ({view.bpc_model})", "",
             "| training set | BPC before training (bits/char) | BPC rank | accuracy after training (%) | accuracy rank |",
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r.dataset} | {'–' if r.bpc is None else f'{r.bpc:.4f}'} | {_rank(r.bpc_rank)} | "
                     f"{pct(r.accuracy)} | {_rank(r.accuracy_rank)} |")
    return [*lines, "", f"The set with the lowest BPC is the one the student trains best on: {verdict}; Spearman ρ "
            f"between the BPC and accuracy ranks: {'–' if rho is None else f'{rho:+.2f}'} (+1 = BPC ranks the "
            "sets exactly as training does). Accuracy: robust scoring, mean over benchmarks.", ""]


def _rank(value: Optional[float]) -> str:
    return "–" if value is None else f"{value:g}"


def _links_from_run_dir(markdown: str, stage_folder: str) -> str:
    # The stage's report links tables/ and plots/ beside it; RUN/report.md sits one folder up.
    for folder in ("tables/", "plots/"):
        markdown = markdown.replace(f"]({folder}", f"]({stage_folder}/{folder}")
    return markdown


def effects(cfg: ReportConfig, results: dict[str, Any]) -> dict[str, Any]:
    """The two MiCoTA effects, measured: (a) merged TA length in between, (b) long CoT hurts the student.

    (b) is measured in every student block with results; ``b_*`` keys at the top describe the
    first such block, ``b_by_student`` all of them.
    """
    lengths = {label: mean_metric(results, model, "mean_tokens") for label, model in cfg.ta_models.items()}
    pre, post, merged = (lengths.get(k) for k in ("before SFT", "after SFT", "after merging"))
    a = None if None in (pre, post, merged) else bool(min(pre, post) < merged < max(pre, post))
    by_student = {student: _long_cot_effect(cfg, results, student) for student in cfg.students or [""]}
    measured = [v for v in by_student.values() if v["long_cot_accuracy"] is not None] or list(by_student.values())
    return {"ta_mean_tokens": lengths, "a_merged_length_between": a, **measured[0],
            **({"b_by_student": by_student} if cfg.students else {})}


def _long_cot_effect(cfg: ReportConfig, results: dict[str, Any], student: str) -> dict[str, Any]:
    long_acc = mean_metric(results, cfg.model_name(student, cfg.long_cot_method), "accuracy_robust")
    shorter = {m: mean_metric(results, cfg.model_name(student, m), "accuracy_robust") for m in cfg.shorter_cot_methods}
    worse_than = {m: None if v is None or long_acc is None else bool(long_acc < v) for m, v in shorter.items()}
    known = [w for w in worse_than.values() if w is not None]
    return {"long_cot_accuracy": long_acc, "shorter_cot_accuracy": shorter, "b_long_cot_worse_than": worse_than,
            "b_long_cot_worse": bool(any(known)) if known else None}  # worse than at least one; each is listed


def _ta_table(cfg: ReportConfig, results: dict[str, Any]) -> list[str]:
    lines = ["## Teacher assistant: CoT length before SFT, after SFT, after merging (MiCoTA Figure 2)", "",
             "| TA | Model | Mean response tokens | Accuracy (%) | \"wait\" / response |", "|---|---|---|---|---|"]
    for label, model in cfg.ta_models.items():
        tokens = mean_metric(results, model, "mean_tokens")
        waits = [m.get("reflection_by_marker", {}).get("wait") for m in results.get(model, {}).values()]
        wait = sum(waits) / len(waits) if waits and None not in waits else None
        lines.append(f"| {label} | {model} | {'–' if tokens is None else f'{tokens:.1f}'} | "
                     f"{pct(mean_metric(results, model, 'accuracy_robust'))} | {'–' if wait is None else f'{wait:.2f}'} |")
    return lines + [""]


def claim_models(cfg: ReportConfig) -> ClaimModels:
    """The models each MiCoTA claim compares, named as this report names them (student blocks in order, smallest first)."""
    ta_keys = {"before SFT": "pre", "after SFT": "post", "after merging": "merged"}
    students = tuple({m: cfg.model_name(s, m) for m in (cfg.base_method, *cfg.methods)} for s in cfg.students or [""])
    return ClaimModels(ta={ta_keys[k]: v for k, v in cfg.ta_models.items() if k in ta_keys}, students=students,
                       instruct=cfg.base_method, long_cot=cfg.long_cot_method)


def _effects_section(found: dict[str, Any], cfg: ReportConfig) -> list[str]:
    lengths = found["ta_mean_tokens"]
    shown = ", ".join(f"{k}: {'–' if v is None else f'{v:.1f}'}" for k, v in lengths.items())
    verdict = {True: "**yes**", False: "**no**", None: "**not measured**"}
    heading = "the MiCoTA effects" if cfg.ta_models else f"a gap between {cfg.long_cot_method} and the other training sets"
    lines = [f"## Does this run show {heading}? (measured, not assumed)", ""]
    if cfg.ta_models:
        lines.append(f"- (a) The merged TA's CoT length lies between the pre-SFT and post-SFT TA's: "
                     f"{verdict[found['a_merged_length_between']]} (mean response tokens — {shown}).")
    by_student = found.get("b_by_student") or {"": found}
    measured = {k: v for k, v in by_student.items() if v["long_cot_accuracy"] is not None}
    for student, b in (measured or dict([next(iter(by_student.items()))])).items():
        shorter = "; ".join(f"than {k} ({pct(b['shorter_cot_accuracy'][k])}%): {verdict[w]}"
                            for k, w in b["b_long_cot_worse_than"].items())
        lines.append(f"- (b){' ' + student + ':' if student else ''} The student trained on {cfg.long_cot_method} does worse "
                     f"than on another set: {verdict[b['b_long_cot_worse']]} for at least one of "
                     f"{', '.join(cfg.shorter_cot_methods)} (accuracy with {cfg.long_cot_method}: "
                     f"{pct(b['long_cot_accuracy'])}%; worse {shorter}).")
    if cfg.ta_models and "MiCoTA" in cfg.methods:
        lines += ["", "MiCoTA's claims, each with the number that decides it (robust accuracy, mean over benchmarks; "
                  "one run — the micro-lab's seeds study, `benchmarks/lab_seeds.py`, gives mean ± sd):", "",
                  *claims_markdown(found["claims"])]
    return [*lines, ""]
