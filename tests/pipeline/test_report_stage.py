from __future__ import annotations

import json
import re

from micota.manifest import Manifest, write_manifest
from micota.pipeline.report_stage import LearnabilityView, ReportConfig, run


def entry(acc: float, tokens: float, wait: float = 1.0) -> dict:
    return {"n": 10, "accuracy_robust": acc, "accuracy_paper": acc / 2, "mean_tokens": tokens,
            "reflection_per_response": 1.0, "reflection_by_marker": {"wait": wait, "hmm": 0.5}}


def write_stage(run_dir, name, stage, filename, content):
    folder = run_dir / name
    folder.mkdir(parents=True)
    (folder / filename).write_text(json.dumps(content))
    write_manifest(folder, Manifest(stage=stage, config_sha256="x", counts={"samples": 10}))
    return folder


def write_run(tmp_path, results):
    ev = write_stage(tmp_path / "run", "evaluate", "evaluate", "results.json", results)
    return ReportConfig(out_dir=tmp_path / "run" / "report", evaluation=ev)


def test_report_tables_and_effects_measured(tmp_path):
    results = {
        "Instruct": {"lab": entry(0.2, 20)}, "Strong-Teacher CoT": {"lab": entry(0.3, 200)},
        "Half-size CoT": {"lab": entry(0.5, 120)}, "MiCoTA": {"lab": entry(0.6, 90)},
        "TA pre-SFT": {"lab": entry(0.4, 30, wait=0.1)}, "TA post-SFT": {"lab": entry(0.7, 200, wait=4.0)},
        "TA merged": {"lab": entry(0.7, 110, wait=2.0)},
    }
    manifest = run(write_run(tmp_path, results))
    assert manifest.metrics["a_merged_length_between"] is True and manifest.metrics["b_long_cot_worse"] is True
    assert manifest.metrics["b_long_cot_worse_than"] == {"Half-size CoT": True, "MiCoTA": True, "Mix-Long": None}
    text = (tmp_path / "run" / "report.md").read_text()
    assert "| MiCoTA | **60.0** | **60.0** | +40.0 |" in text  # Table 2/3 row: Lab, Avg, Δ vs Instruct
    assert "| Mix-Long | – | – | – |" in text  # a missing method is shown as missing, not dropped
    assert "| +Teacher | +10.0 | +10.0 |" in text and "| +TA | +30.0 | +30.0 |" in text  # Table 1
    assert "| after merging | TA merged | 110.0 | 70.0 | 2.00 |" in text  # Figure 2 with "wait" counts
    assert "| evaluate |" in text  # the stage table of the analysis report
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):  # plots linked from RUN/report.md resolve
        assert (tmp_path / "run" / link).is_file(), link


def test_effects_reported_absent_when_not_shown(tmp_path):
    results = {"Strong-Teacher CoT": {"lab": entry(0.8, 200)}, "MiCoTA": {"lab": entry(0.5, 90)},
               "TA pre-SFT": {"lab": entry(0.4, 30)}, "TA post-SFT": {"lab": entry(0.7, 200)}, "TA merged": {"lab": entry(0.7, 250)}}
    manifest = run(write_run(tmp_path, results))
    assert manifest.metrics["a_merged_length_between"] is False and manifest.metrics["b_long_cot_worse"] is False
    text = (tmp_path / "run" / "report.md").read_text()
    assert "lies between the pre-SFT and post-SFT TA's: **no**" in text
    assert "Not measured: no untrained student (Instruct) was evaluated." in text


def test_student_blocks_gather_every_evaluation_of_the_run_and_the_learnability_view(tmp_path):
    run_dir = tmp_path / "run"
    methods = ("Instruct", "Strong-Teacher CoT", "Half-size CoT", "Mix-Long", "MiCoTA")
    scores = {"1.5B": (0.10, 0.08, 0.14, 0.12, 0.16), "3B": (0.20, 0.22, 0.26, 0.24, 0.30)}
    for size, accs in scores.items():  # one evaluate stage per student recipe, sharing the run folder
        write_stage(run_dir, f"evaluate-{size.lower()}", "evaluate", "results.json",
                    {f"{size} {m}": {"math500": entry(a, 100)} for m, a in zip(methods, accs)})
    write_stage(run_dir, "evaluate-ta", "evaluate", "results.json",
                {"TA pre-SFT": {"math500": entry(0.5, 300)}, "TA post-SFT": {"math500": entry(0.6, 900)},
                 "TA merged": {"math500": entry(0.6, 500)}})
    bpc = {"Qwen2.5-1.5B-Instruct": {"Strong Teacher": 0.9, "Half-size": 0.7, "Mix-Long": 0.8, "MiCoTA": 0.6}}
    write_stage(run_dir, "bpc", "analyze-bpc", "bpc.json",
                {"models": list(bpc), "datasets": list(bpc["Qwen2.5-1.5B-Instruct"]),
                 "scores": {m: {d: {"bpc": v, "nats_per_char": v} for d, v in per.items()} for m, per in bpc.items()}})
    cfg = ReportConfig(out_dir=run_dir / "report", evaluation=[run_dir / "evaluate-3b"],
                       students={"Qwen2.5-1.5B-Instruct": "1.5B", "Qwen2.5-3B-Instruct": "3B", "Qwen2.5-7B-Instruct": "7B"},
                       methods=list(methods),
                       learnability=LearnabilityView(bpc_model="Qwen2.5-1.5B-Instruct", student="Qwen2.5-1.5B-Instruct",
                                                     datasets={"Strong Teacher": "Strong-Teacher CoT", "Half-size": "Half-size CoT",
                                                               "Mix-Long": "Mix-Long", "MiCoTA": "MiCoTA"}))
    manifest = run(cfg)
    text = (run_dir / "report.md").read_text()
    assert "| *Qwen2.5-1.5B-Instruct* |" in text and "| *Qwen2.5-3B-Instruct* |" in text
    assert "Qwen2.5-7B-Instruct" not in text.split("## Accuracy")[1].split("###")[1]  # no results, no block
    assert "| MiCoTA | **16.0** | **16.0** | +6.0 |" in text and "| MiCoTA | **30.0** | **30.0** | +10.0 |" in text
    assert manifest.metrics["b_by_student"]["Qwen2.5-1.5B-Instruct"]["b_long_cot_worse"] is True
    assert manifest.metrics["b_by_student"]["Qwen2.5-7B-Instruct"]["b_long_cot_worse"] is None
    assert "- (b) Qwen2.5-3B-Instruct: The student trained on Strong-Teacher CoT does worse" in text
    assert "- (b) Qwen2.5-7B-Instruct" not in text  # a student not yet evaluated gets no line
    # BPC order MiCoTA < Half-size < Mix-Long < Strong Teacher; accuracy order the same: ρ = +1
    assert "| MiCoTA | 0.6000 | 1 | 16.0 | 1 |" in text and "| Strong Teacher | 0.9000 | 4 | 8.0 | 4 |" in text
    assert "trains best on: **yes**; Spearman ρ between the BPC and accuracy ranks: +1.00" in text
    table4 = text.split("## Bits per character (Table 4 layout)")[1]
    assert "| Dataset | Qwen2.5-1.5B-Instruct |" in table4 and table4.index("| Strong Teacher |") < table4.index("| MiCoTA |")


def test_gap_report_leaves_out_the_micota_views_and_its_delta_is_the_gap(tmp_path):
    run_dir = tmp_path / "run"
    write_stage(run_dir, "evaluate-gap", "evaluate", "results.json",
                {"Qwen2.5-0.5B Short CoT": {"math500": entry(0.30, 300)}, "Qwen2.5-0.5B Long CoT": {"math500": entry(0.20, 900)}})
    cfg = ReportConfig(out_dir=run_dir / "report-gap", evaluation=run_dir / "evaluate-gap",
                       students={"Qwen2.5-0.5B-Instruct": "Qwen2.5-0.5B"}, methods=["Short CoT", "Long CoT"],
                       base_method="Short CoT", ta_models={}, table1_rows={}, long_cot_method="Long CoT",
                       shorter_cot_methods=["Short CoT"], write_run_summary=False)
    manifest = run(cfg)
    assert not (run_dir / "report.md").exists()
    text = (run_dir / "report-gap" / "report.md").read_text()
    assert "| Long CoT | <u>20.0</u> | <u>20.0</u> | -10.0 |" in text  # Δ = Long − Short: the Long CoT gap
    assert "Teacher assistant" not in text.split("## Stages")[0] and "Table 1" not in text
    assert "(a)" not in text and "trained on Long CoT does worse than on another set: **yes**" in text
    assert manifest.metrics["b_long_cot_worse"] is True
