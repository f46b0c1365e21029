from __future__ import annotations

import json
import re

from micota.manifest import Manifest, write_manifest
from micota.pipeline.report_stage import ReportConfig, run


def entry(acc: float, tokens: float) -> dict:
    return {"n": 10, "accuracy_robust": acc, "accuracy_paper": acc / 2, "mean_tokens": tokens, "reflection_per_response": 1.0}


def write_run(tmp_path, results):
    ev = tmp_path / "run" / "evaluate"
    ev.mkdir(parents=True)
    (ev / "results.json").write_text(json.dumps(results))
    write_manifest(ev, Manifest(stage="evaluate", config_sha256="x", counts={"samples": 10}))
    return ReportConfig(out_dir=tmp_path / "run" / "report", evaluation=ev)


def test_report_tables_and_effects_measured(tmp_path):
    results = {
        "Instruct": {"lab": entry(0.2, 20)}, "Strong-Teacher CoT": {"lab": entry(0.3, 200)},
        "Half-size CoT": {"lab": entry(0.5, 120)}, "MiCoTA": {"lab": entry(0.6, 90)},
        "TA pre-SFT": {"lab": entry(0.4, 30)}, "TA post-SFT": {"lab": entry(0.7, 200)}, "TA merged": {"lab": entry(0.7, 110)},
    }
    manifest = run(write_run(tmp_path, results))
    assert manifest.metrics["a_merged_length_between"] is True and manifest.metrics["b_long_cot_worse"] is True
    assert manifest.metrics["b_long_cot_worse_than"] == {"Half-size CoT": True, "MiCoTA": True, "Mix-Long": None}
    text = (tmp_path / "run" / "report.md").read_text()
    assert "| MiCoTA | 60.0 | 60.0 | +40.0 | 30.0 | 90 |" in text
    assert "| Mix-Long | – |" in text  # a missing method is shown as missing, not dropped
    assert "| after merging | TA merged | 110.0 |" in text
    assert "| evaluate |" in text  # the stage table of the analysis report
    for link in re.findall(r"!\[[^]]*\]\(([^)]+)\)", text):  # plots linked from RUN/report.md resolve
        assert (tmp_path / "run" / link).is_file(), link


def test_effects_reported_absent_when_not_shown(tmp_path):
    results = {"Strong-Teacher CoT": {"lab": entry(0.8, 200)}, "MiCoTA": {"lab": entry(0.5, 90)},
               "TA pre-SFT": {"lab": entry(0.4, 30)}, "TA post-SFT": {"lab": entry(0.7, 200)}, "TA merged": {"lab": entry(0.7, 250)}}
    manifest = run(write_run(tmp_path, results))
    assert manifest.metrics["a_merged_length_between"] is False and manifest.metrics["b_long_cot_worse"] is False
    assert "lies between the pre-SFT and post-SFT TA's: **no**" in (tmp_path / "run" / "report.md").read_text()
