"""Accuracy tables (Table 2/3), Δ tables (Table 1) and their CSV/Markdown/LaTeX forms."""

from __future__ import annotations

import csv
import io

import pytest

from micota.analyze.tables import accuracy_table, delta_table, length_tables, to_csv, to_latex, to_markdown
from micota.errors import MicotaError

RESULTS = {
    "Instruct": {"gsm8k": {"n": 10, "accuracy_robust": 0.5, "accuracy_paper": 0.4, "mean_tokens": 100.0},
                 "aime24": {"n": 10, "accuracy_robust": 0.1, "accuracy_paper": 0.1, "mean_tokens": 300.0}},
    "MiCoTA_v2": {"gsm8k": {"n": 10, "accuracy_robust": 0.7, "accuracy_paper": 0.5, "mean_tokens": 200.0},
                  "aime24": {"n": 10, "accuracy_robust": 0.2, "accuracy_paper": 0.1, "mean_tokens": 900.0}},
    "Partial": {"gsm8k": {"n": 10, "accuracy_robust": 0.6, "accuracy_paper": 0.6, "mean_tokens": 150.0}},
}


def test_columns_follow_the_paper_and_average_needs_every_benchmark():
    table = accuracy_table(RESULTS, "robust")
    assert table.columns == ["AIME24", "GSM8K", "Avg."]
    rows = dict(table.rows)
    assert rows["Instruct"] == pytest.approx([10.0, 50.0, 30.0])
    assert rows["Partial"][0] is None and rows["Partial"][2] is None  # never averaged over fewer benchmarks
    assert dict(accuracy_table(RESULTS, "paper").rows)["MiCoTA_v2"] == pytest.approx([10.0, 50.0, 30.0])


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
    assert rows[0] == ["model", "AIME24", "GSM8K", "Avg."] and rows[3] == ["Partial", "", "60.0", ""]
    latex = to_latex(table)
    assert r"MiCoTA\_v2 & \textbf{20.0} & \textbf{70.0} & \textbf{45.0} \\" in latex
    assert r"Partial & -- & 60.0 & -- \\" in latex and latex.count(r"\toprule") == 1


def test_length_tables_report_tokens_without_bolding():
    tables = length_tables(RESULTS)
    tokens = tables["Mean response length"]
    assert dict(tokens.rows)["MiCoTA_v2"] == pytest.approx([900.0, 200.0, 550.0])
    assert r"\textbf" not in to_latex(tokens)
