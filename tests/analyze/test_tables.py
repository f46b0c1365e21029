"""Accuracy tables (Table 2/3 blocks), gain tables (Table 1), Δ tables and their CSV/Markdown/LaTeX forms."""

from __future__ import annotations

import csv
import io

import pytest

from micota.analyze.tables import (Block, accuracy_table, delta_table, gain_table, length_tables, scoring_modes, to_csv,
                                   to_latex, to_markdown)
from micota.errors import MicotaError

RESULTS = {
    "Instruct": {"gsm8k": {"n": 10, "accuracy_robust": 0.5, "accuracy_paper": 0.4, "mean_tokens": 100.0},
                 "aime24": {"n": 10, "accuracy_robust": 0.1, "accuracy_paper": 0.1, "mean_tokens": 300.0}},
    "MiCoTA_v2": {"gsm8k": {"n": 10, "accuracy_robust": 0.7, "accuracy_paper": 0.5, "mean_tokens": 200.0},
                  "aime24": {"n": 10, "accuracy_robust": 0.2, "accuracy_paper": 0.1, "mean_tokens": 900.0}},
    "Partial": {"gsm8k": {"n": 10, "accuracy_robust": 0.6, "accuracy_paper": 0.6, "mean_tokens": 150.0}},
}


def entry(robust: float, **extra) -> dict:
    return {"n": 10, "accuracy_robust": robust, "accuracy_paper": robust - 0.1, **extra}


# Two student blocks; every benchmark of both papers, given in an order the table must not keep.
BENCHES = ("gsm8k", "math500", "olympiadbench", "amc23", "aime24")
BLOCKED = {
    f"{size} {method}": {b: entry(score + offset) for b, offset in zip(BENCHES, (0.5, 0.3, 0.1, 0.05, 0.0))}
    for size, scores in (("3B", (0.10, 0.20, 0.30, 0.20)), ("7B", (0.30, 0.20, 0.40, 0.45)))
    for method, score in zip(("Instruct", "Strong", "Half", "MiCoTA"), scores)
}
BLOCKS = [Block(f"Qwen2.5-{size}-Instruct", tuple((m, f"{size} {m}") for m in ("Instruct", "Strong", "Half", "MiCoTA")))
          for size in ("3B", "7B")]


def test_columns_follow_the_papers_and_average_needs_every_benchmark():
    assert accuracy_table(BLOCKED).columns == ["AIME24", "AMC23", "OlympiadBench", "MATH-500", "GSM8K", "Avg"]
    table = accuracy_table(RESULTS, "robust")
    assert table.columns == ["AIME24", "GSM8K", "Avg"]
    rows = dict(table.rows)
    assert rows["Instruct"] == pytest.approx([10.0, 50.0, 30.0])
    assert rows["Partial"][0] is None and rows["Partial"][2] is None  # never averaged over fewer benchmarks
    assert dict(accuracy_table(RESULTS, "paper").rows)["MiCoTA_v2"] == pytest.approx([10.0, 50.0, 30.0])
    with pytest.raises(MicotaError, match="robust, paper, judge"):
        accuracy_table(RESULTS, "rule")


def test_blocks_have_a_delta_column_and_mark_best_and_second_within_each_block():
    table = accuracy_table(BLOCKED, "robust", BLOCKS)
    assert table.columns[-2:] == ["Avg", "Δ"]
    rows = table.rows
    assert [label for label, _ in rows] == ["Instruct", "Strong", "Half", "MiCoTA"] * 2
    assert rows[3][1][-1] == pytest.approx(10.0) and rows[0][1][-1] == pytest.approx(0.0)  # 3B MiCoTA vs 3B Instruct
    assert rows[7][1][-1] == pytest.approx(15.0)  # 7B MiCoTA vs 7B Instruct, not vs 3B
    markdown = to_markdown(table)
    # 3B block: Half best (30+..), MiCoTA and Strong tie second; the 7B block is marked on its own
    assert "| *Qwen2.5-3B-Instruct* |" in markdown
    assert "| Half | **30.0** |" in markdown and "| MiCoTA | <u>20.0</u> |" in markdown and "| Strong | <u>20.0</u> |" in markdown
    assert "| MiCoTA | **45.0** |" in markdown and "| Half | <u>40.0</u> |" in markdown
    assert "+10.0 |" in markdown and "**+" not in markdown  # Δ is signed and never marked
    latex = to_latex(table)
    assert r"Half & \textbf{30.0}" in latex and r"MiCoTA & \underline{20.0}" in latex
    assert r"\multicolumn{8}{l}{\textit{Qwen2.5-7B-Instruct}}" in latex and r"$\Delta$" in latex
    rows_csv = list(csv.reader(io.StringIO(to_csv(table))))
    assert rows_csv[0][:2] == ["block", "model"] and rows_csv[5][:2] == ["Qwen2.5-7B-Instruct", "Instruct"]


def test_missing_rows_show_dashes_and_sampled_cells_show_mean_and_std():
    results = {"3B Instruct": {"aime24": entry(0.1, accuracy_robust_std=0.02)}}
    table = accuracy_table(results, "robust", [Block("3B", (("Instruct", "3B Instruct"), ("MiCoTA", "3B MiCoTA")))])
    markdown = to_markdown(table)
    assert "| Instruct | **10.0 ± 2.0** | **10.0** | +0.0 |" in markdown and "| MiCoTA | – | – | – |" in markdown
    assert "mean ± std" in table.caption
    assert r"10.0 $\pm$ 2.0" in to_latex(table)


def test_scoring_modes_are_those_present():
    assert scoring_modes(RESULTS) == ["robust", "paper"]
    judged = {"m": {"gsm8k": {**entry(0.5), "accuracy_judge": 0.6}}}
    assert scoring_modes(judged) == ["robust", "paper", "judge"]
    assert dict(accuracy_table(judged, "judge").rows)["m"] == pytest.approx([60.0, 60.0])


def test_gain_table_is_table1_per_student():
    gains = gain_table(BLOCKED, [Block("3B", (("Instruct", "3B Instruct"), ("+Teacher", "3B Strong"), ("+TA", "3B Half")))])
    assert [label for label, _ in gains.rows] == ["+Teacher", "+TA"]
    assert dict(gains.rows)["+TA"] == pytest.approx([20.0] * 6)
    assert "| +TA | +20.0 |" in to_markdown(gains)


def test_delta_against_base_model():
    delta = delta_table(accuracy_table(RESULTS), "Instruct")
    rows = dict(delta.rows)
    assert "Instruct" not in rows
    assert rows["MiCoTA_v2"] == pytest.approx([10.0, 20.0, 15.0])
    assert "| MiCoTA_v2 | +10.0 | +20.0 | +15.0 |" in to_markdown(delta)
    with pytest.raises(MicotaError, match="base model 'Base' has no results"):
        delta_table(accuracy_table(RESULTS), "Base")


def test_csv_round_trips_and_latex_escapes_and_bolds_the_best():
    table = accuracy_table(RESULTS)
    rows = list(csv.reader(io.StringIO(to_csv(table))))
    assert rows[0] == ["model", "AIME24", "GSM8K", "Avg"] and rows[3] == ["Partial", "", "60.0", ""]
    latex = to_latex(table)
    assert r"MiCoTA\_v2 & \textbf{20.0} & \textbf{70.0} & \textbf{45.0} \\" in latex
    assert r"Partial & -- & \underline{60.0} & -- \\" in latex and latex.count(r"\toprule") == 1


def test_length_tables_report_tokens_and_wait_without_marks():
    results = {m: {b: {**v, "reflection_by_marker": {"wait": 2.0, "hmm": 1.0}} for b, v in per.items()}
               for m, per in RESULTS.items()}
    tables = length_tables(results)
    tokens = tables["Mean response length"]
    assert dict(tokens.rows)["MiCoTA_v2"] == pytest.approx([900.0, 200.0, 550.0])
    assert r"\textbf" not in to_latex(tokens)
    assert dict(tables["Wait per response (Figure 4)"].rows)["Instruct"] == pytest.approx([2.0, 2.0, 2.0])
    extension = tables["Other reflection markers (micota extension)"]
    assert "hmm" in extension.caption and "not in the papers" in extension.caption


def test_sampled_protocol_adds_majority_vote_tables(tmp_path):
    import json

    from micota.analyze.report import write_report
    from micota.manifest import Manifest, write_manifest

    stage = tmp_path / "run" / "evaluate"
    stage.mkdir(parents=True)
    results = {"m": {"aime24": {**entry(0.2, accuracy_robust_std=0.05), "maj@8_robust": 0.3, "maj@8_paper": 0.2}}}
    (stage / "results.json").write_text(json.dumps(results))
    write_manifest(stage, Manifest(stage="evaluate", config_sha256="x"))
    text = write_report([tmp_path / "run"], tmp_path / "out").read_text()
    assert "| m | **20.0 ± 5.0** | **20.0** |" in text
    assert "### maj@8_robust (sampled protocol)" in text and "| m | 30.0 | 30.0 |" in text
    assert (tmp_path / "out" / "tables" / "maj_at_8_paper.csv").is_file()
