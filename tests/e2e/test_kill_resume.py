"""SIGKILL during generation, re-run, and get exactly the data of an uninterrupted run (issue 2)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from micota.generate.writer import SHARD_DIR
from micota.jsonl import read_jsonl

N_PROMPTS = 48


def write_recipe(tmp_path: Path, model: Path) -> Path:
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join(json.dumps({"problem": f"What is {i} + {i % 7}?", "answer": str(i + i % 7)}) + "\n" for i in range(N_PROMPTS)))
    recipe = {"cpu_threads": 1, "stages": {"gen": {"kind": "generate", "prompts": str(prompts), "progress": False,
                                                   "engine": {"model": str(model), "max_new_tokens": 24, "batch_size": 2}}}}
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe))
    return path


def micota_run(recipe: Path, run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    return subprocess.Popen([sys.executable, "-m", "micota", "run", str(recipe), "--run-dir", str(run_dir)],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def shard_lines(run_dir: Path) -> int:
    return sum(p.read_text().count("\n") for p in (run_dir / "gen" / SHARD_DIR).glob("*.jsonl")) if (run_dir / "gen" / SHARD_DIR).is_dir() else 0


def test_sigkill_mid_generation_then_rerun_equals_uninterrupted(tiny_model, tmp_path):
    recipe = write_recipe(tmp_path, tiny_model)
    assert micota_run(recipe, tmp_path / "clean").wait(timeout=300) == 0
    clean = read_jsonl(tmp_path / "clean" / "gen" / "data.jsonl")

    proc = micota_run(recipe, tmp_path / "killed")
    deadline = time.time() + 240
    while shard_lines(tmp_path / "killed") < 6 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "generation finished before it could be killed; make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = shard_lines(tmp_path / "killed")
    assert 0 < partial < N_PROMPTS and not (tmp_path / "killed" / "gen" / "manifest.json").exists()

    assert micota_run(recipe, tmp_path / "killed").wait(timeout=300) == 0
    resumed = read_jsonl(tmp_path / "killed" / "gen" / "data.jsonl")
    assert resumed == clean  # same samples, same text, same order
    written = [json.loads(l)["id"] for p in (tmp_path / "killed" / "gen" / SHARD_DIR).glob("*.jsonl") for l in p.read_text().splitlines()]
    assert sorted(written) == sorted(r["id"] for r in clean)  # nothing lost, nothing written twice
    assert len(list((tmp_path / "killed" / "gen" / SHARD_DIR).glob("*.jsonl"))) == 2  # it resumed rather than restarted
