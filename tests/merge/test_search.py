"""Length-targeted merging: the search logic against a fake probe, then the real probe in the micro-lab."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from micota.merge import MergeConfig, run
from micota.merge.search import CURVE_NAME, PLOT_NAME, ProbePoint


def fake_probe(length_at, accuracy_at):
    """A probe whose mean length and accuracy are functions of the merge's λ (read from its config)."""
    calls = []

    def probe(model_dir: Path) -> ProbePoint:
        import yaml

        resolved = Path(model_dir) / "merge_config.yaml"
        strength = yaml.safe_load(resolved.read_text())["lambda"] if resolved.is_file() else 1.0
        calls.append(strength)
        return ProbePoint(length_at(strength), accuracy_at(strength), 1.0)

    probe.calls = calls
    return probe


def search_config(tmp_path, tiny_models, **search) -> MergeConfig:
    probes = tmp_path / "probes.jsonl"
    probes.write_text('{"problem": "1 + 1", "answer": "2"}\n')
    return MergeConfig(
        method="dare_ties",
        base=str(tiny_models["base"]),
        models=[{"model": str(tiny_models["ft"]), "density": 0.5}],
        length_search={"probe_set": str(probes), "max_evals": 5, **search},
        out_dir=tmp_path / "merged",
    )


def test_search_finds_the_strength_that_halves_length(tmp_path, tiny_models):
    # mean length 100 at the base grows to 1000 at λ = 1 (the fine-tuned model); target 500
    probe = fake_probe(lambda s: 100 + 900 * s**2, lambda s: 0.8)
    manifest = run(search_config(tmp_path, tiny_models, target_ratio=0.5), probe=probe)
    curve = manifest.metrics["length_search"]
    best = curve["best"]
    assert abs(best["strength"] - (4 / 9) ** 0.5) < 0.03  # 100 + 900 s² = 500
    assert abs(best["mean_tokens"] - 500) < 30 and len(curve["curve"]) == 5
    out = tmp_path / "merged"
    assert (out / PLOT_NAME).stat().st_size > 1000 and json.loads((out / CURVE_NAME).read_text())["best"] == best
    merged_lambda = load_file(next(out.glob("model-*.safetensors")))
    assert merged_lambda and (out / "config.json").is_file() and (out / "manifest.json").is_file()
    assert not list(tmp_path.glob(".merged.*"))  # candidates and probes cleaned up


def test_search_respects_accuracy_tolerance(tmp_path, tiny_models):
    # accuracy collapses below λ = 0.8, so the 50% target is out of reach at the fine-tuned accuracy
    probe = fake_probe(lambda s: 100 + 900 * s, lambda s: 0.8 if s >= 0.8 else 0.2)
    manifest = run(search_config(tmp_path, tiny_models, accuracy_tolerance=0.05), probe=probe)
    best = manifest.metrics["length_search"]["best"]
    assert best["accuracy"] == 0.8 and best["strength"] >= 0.8
    assert any(not p["acceptable"] for p in manifest.metrics["length_search"]["curve"])


def test_search_by_density(tmp_path, tiny_models):
    def probe(model_dir: Path) -> ProbePoint:
        import yaml

        resolved = Path(model_dir) / "merge_config.yaml"
        density = yaml.safe_load(resolved.read_text())["models"][0]["density"] if resolved.is_file() else 1.0
        return ProbePoint(1000 * density, 0.5, 1.0)

    cfg = search_config(tmp_path, tiny_models, param="density", low=0.1, high=1.0, target_ratio=0.3)
    best = run(cfg, probe=probe).metrics["length_search"]["best"]
    assert abs(best["strength"] - 0.3) < 0.02
