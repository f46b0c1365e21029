"""Acceptance (issue 5): a micro-lab model is evaluated on a real benchmark subset and the lab benchmark, on CPU."""

from __future__ import annotations

import json

import pytest

from micota.evaluate import EvaluateConfig, run

pytest.importorskip("micota.grade")


@pytest.fixture(scope="module")
def lab_dir(tmp_path_factory):
    from micota.lab.run import LabConfig
    from micota.lab.run import run as build_lab

    out = tmp_path_factory.mktemp("lab") / "lab"
    build_lab(LabConfig(out_dir=str(out), n_train_prompts=10, n_eval=6, n_instruct=10, model_sizes=["student"]))
    return out


def test_lab_student_and_scripted_teacher_on_gsm8k_subset_and_lab_benchmark(tmp_path, lab_dir, shared_data):
    benchmarks = [{"name": "gsm8k", "limit": 2}, {"name": "lab", "path": str(lab_dir / "bench.jsonl")}]
    student = EvaluateConfig(out_dir=str(tmp_path / "student"), models={"Lab student": str(lab_dir / "models/student")},
                             data_dir=str(shared_data), benchmarks=benchmarks, progress=False, context_policy="lower",
                             engine={"max_new_tokens": 24, "device": "cpu"})
    manifest = run(student)
    results = json.loads((tmp_path / "student/results.json").read_text())["Lab student"]
    assert results["gsm8k"]["n"] == 2 and results["lab"]["n"] == 6
    assert manifest.counts["samples"] == 8
    # the scripted teacher solves the lab task: evaluation must see it as (nearly) perfect, in both modes
    teacher = EvaluateConfig(out_dir=str(tmp_path / "teacher"), models={"Scripted teacher": str(lab_dir / "tokenizer")},
                             benchmarks=benchmarks[1:], progress=False,
                             engine={"engine": "scripted", "max_new_tokens": 400, "scripted": {"style": "short"}})
    run(teacher)
    lab = json.loads((tmp_path / "teacher/results.json").read_text())["Scripted teacher"]["lab"]
    assert lab["accuracy_robust"] == 1.0 and lab["accuracy_paper"] == 1.0 and lab["truncation_rate"] == 0.0
    samples = [json.loads(line) for line in (tmp_path / "teacher/samples/Scripted_teacher/lab.jsonl").open()]
    assert all(s["extracted_robust"] == s["gold"] for s in samples)
