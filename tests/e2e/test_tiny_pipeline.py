"""The whole MiCoTA DAG at CI size: every stage runs for real, manifests link up, re-runs skip."""

from __future__ import annotations

from pathlib import Path

import pytest

from micota.manifest import read_manifest, sha256_path
from micota.pipeline.recipe import load_recipe
from micota.pipeline.run import run_recipe

TINY = Path(__file__).resolve().parents[2] / "recipes" / "lab" / "tiny.yaml"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("tiny") / "run"
    outcomes = run_recipe(TINY, run_dir=run_dir, log=lambda _: None)
    assert all(o.ran for o in outcomes)
    return run_dir


def test_report_has_the_paper_rows_and_ta_lengths(tiny_run):
    report = (tiny_run / "report.md").read_text()
    for row in ("| Instruct |", "| Strong-Teacher CoT |", "| Half-size CoT |", "| MiCoTA |", "| Mix-Long |"):
        assert row in report
    for row in ("| before SFT |", "| after SFT |", "| after merging |"):
        assert row in report
    assert "Does this run show the MiCoTA effects?" in report


def test_manifests_link_each_stage_to_its_inputs(tiny_run):
    _, stages = load_recipe(TINY, run_dir=tiny_run)
    for stage in stages:
        manifest = read_manifest(tiny_run / stage.name)
        assert manifest is not None, stage.name
        for dep in stage.depends_on:  # every upstream stage's output is recorded by content hash
            assert read_manifest(tiny_run / dep) is not None
        assert all(len(h) == 64 for h in manifest.inputs.values())
    evaluate = read_manifest(tiny_run / "evaluate")
    assert sha256_path(tiny_run / "student-micota" / "model") in evaluate.inputs.values()
    ta_sft = read_manifest(tiny_run / "ta-sft")
    assert sha256_path(tiny_run / "teacher-filtered" / "data.jsonl") in ta_sft.inputs.values()


def test_rerun_does_nothing(tiny_run):
    outcomes = run_recipe(TINY, run_dir=tiny_run, log=lambda _: None)
    assert not any(o.ran for o in outcomes)


@pytest.mark.parametrize("how", ["cp", "mv"])
def test_a_moved_or_copied_run_is_up_to_date(tiny_run, tmp_path, how):
    """Stage identity holds no path: a finished run copied or moved elsewhere runs no stage."""
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(tiny_run, copy, symlinks=True)  # `cp -r`: new mtimes, new inodes
    if how == "mv":
        moved = tmp_path / "moved"
        subprocess.run(["mv", str(copy), str(moved)], check=True)
        copy = moved
    src = str(Path(__file__).resolve().parents[2] / "src")
    plan = subprocess.run([sys.executable, "-m", "micota", "run", str(TINY), "--run-dir", str(copy), "--dry-run"],
                          capture_output=True, text=True, env={"PYTHONPATH": src, "PATH": "/usr/bin:/bin"}, timeout=300)
    assert plan.returncode == 0, plan.stderr
    assert " done " in plan.stdout and " stale " not in plan.stdout and " pending " not in plan.stdout, plan.stdout
    before = {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()}
    outcomes = run_recipe(TINY, run_dir=copy, log=lambda _: None)
    assert not any(o.ran for o in outcomes), [o.name for o in outcomes if o.ran]
    assert {p: p.stat().st_mtime_ns for p in copy.rglob("*") if p.is_file()} == before  # nothing rewritten


def test_the_same_seed_twice_gives_the_same_report_figures(tiny_run, tmp_path):
    """A second run from scratch, elsewhere, with the same seed: identical data, evaluation and report figures."""
    import json

    from tests.e2e.kill_chain import _report_figures

    again = tmp_path / "second" / "run"  # same folder name: the report names stage folders as run/<stage>
    assert all(o.ran for o in run_recipe(TINY, run_dir=again, log=lambda _: None))
    assert _report_figures(again / "report.md") == _report_figures(tiny_run / "report.md")
    for name in ("teacher-data", "ta-data", "micota-data", "mix-large"):
        assert (again / name / "data.jsonl").read_bytes() == (tiny_run / name / "data.jsonl").read_bytes(), name
    results = [json.loads((run / "evaluate" / "results.json").read_text()) for run in (again, tiny_run)]
    assert results[0] == results[1]
    weights = [sorted((run / "ta-merged").glob("*.safetensors")) for run in (again, tiny_run)]
    assert [w.name for w in weights[0]] == [w.name for w in weights[1]] != []
    assert all(a.read_bytes() == b.read_bytes() for a, b in zip(*weights))
