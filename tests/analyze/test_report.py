"""`micota report` over a real (tiny) evaluate run and a BPC run: tables, three+ readable plots."""

from __future__ import annotations

import json
import re

import pytest

from micota.analyze.bpc_stage import BpcConfig
from micota.analyze.bpc_stage import run as run_bpc
from micota.analyze.report import write_report
from micota.errors import MicotaError
from micota.evaluate import EvaluateConfig
from micota.evaluate import run as run_evaluate


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_model, shared_data):
    pytest.importorskip("micota.grade")
    root = tmp_path_factory.mktemp("run")
    lab = root / "lab.jsonl"
    lab.write_text("".join(json.dumps({"id": f"l{i}", "problem": f"{i}+{i}?", "answer": str(2 * i)}) + "\n" for i in range(3)))
    run_evaluate(EvaluateConfig(
        out_dir=str(root / "evaluate"), models={"Instruct": str(tiny_model), "MiCoTA": str(tiny_model)},
        data_dir=str(shared_data), benchmarks=[{"name": "gsm8k", "limit": 2}, {"name": "lab", "path": str(lab)}],
        engine={"max_new_tokens": 5, "device": "cpu"}, progress=False))
    records = [{"messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": "Wait. \\boxed{2}"}]}]
    (root / "cot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run_bpc(BpcConfig(out_dir=str(root / "bpc"), models={"Instruct": str(tiny_model)}, device="cpu",
                      datasets={"Mid-CoT": str(root / "cot.jsonl")}, progress=False))
    return root


def test_report_has_tables_plots_and_stage_records(run_dir, tmp_path):
    report = write_report([run_dir], tmp_path / "report", base_model="Instruct",
                          length_groups={"Students only": ["MiCoTA"]}, extra_sections=["## TA lengths\n\nadded\n"])
    text = report.read_text()
    for heading in ("## Stages", "### robust scoring", "### paper scoring", "### Δ vs Instruct (robust",
                    "### Mean response length", "### Truncation rate", "### Wait per response (Figure 4)",
                    "### Other reflection markers (micota extension)", "## Bits per character"):
        assert heading in text
    assert "| MiCoTA | " in text and "| evaluate |" in text and "| analyze-bpc |" in text
    images = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", text)
    assert len(images) >= 5 and "plots/lengths_students_only.png" in images
    assert text.rstrip().endswith("added")
    import matplotlib.image

    for image in images:
        pixels = matplotlib.image.imread(report.parent / image)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 300 and pixels.std() > 0.01  # drawn, not blank
    assert "plots/reflection_wait.png" in images and "plots/reflection_other_markers.png" in images
    for name in ("accuracy_robust", "delta_paper", "bpc", "wait_per_response_figure_4"):
        assert all((report.parent / "tables" / f"{name}.{ext}").is_file() for ext in ("csv", "md", "tex"))


def test_report_without_finished_stages_says_so(tmp_path):
    with pytest.raises(MicotaError, match="no finished stage"):
        write_report([tmp_path], tmp_path / "out")


def test_report_and_bpc_commands(run_dir, tmp_path, tiny_model):
    from typer.testing import CliRunner

    from micota.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["report", str(run_dir), "--out", str(tmp_path / "r"), "--base-model", "MiCoTA"])
    assert result.exit_code == 0, result.output
    assert "Δ vs MiCoTA" in (tmp_path / "r" / "report.md").read_text()
    config = tmp_path / "bpc.yaml"
    config.write_text(f"out_dir: {tmp_path / 'bpc'}\nmodels: {{Tiny: {tiny_model}}}\n"
                      f"datasets: {{cot: {run_dir / 'cot.jsonl'}}}\ndevice: cpu\nprogress: false\n")
    result = runner.invoke(app, ["analyze", "bpc", "-c", str(config), "batch_size=2"])
    assert result.exit_code == 0, result.output
    assert "Tiny: cot" in result.output
    result = runner.invoke(app, ["analyze", "bpc", "-c", str(config), "batch_sise=2"])
    assert result.exit_code == 2 and "Did you mean `batch_size`" in result.output
