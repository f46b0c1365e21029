"""SIGKILL during SFT, re-run: training continues from the last checkpoint and ends where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from micota.manifest import read_manifest

SRC = str(Path(__file__).resolve().parents[2] / "src")
STEPS = 12


def write_config(tmp_path: Path, model: Path, name: str, **extra) -> Path:
    data = tmp_path / "data.jsonl"
    if not data.exists():
        rows = [{"messages": [{"role": "user", "content": f"What is {i} + 1?"}, {"role": "assistant", "content": f"It is \\boxed{{{i + 1}}}."}]} for i in range(64)]
        data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"out_dir": str(tmp_path / name), "model": str(model), "data": str(data), "max_length": 64, "learning_rate": 1e-3,
           "max_steps": STEPS, "save_steps": 2, "global_batch_size": 4, "micro_batch_size": 4, "logging_steps": 1, "progress": False,
           **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def sft(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"}
    log = config.with_suffix(".log").open("a")  # kept for the failure message
    return subprocess.Popen([sys.executable, "-m", "micota", "sft", "-c", str(config)], env=env, stdout=log, stderr=subprocess.STDOUT)


def finished_ok(proc: subprocess.Popen, config: Path) -> bool:
    code = proc.wait(timeout=300)
    assert code == 0, config.with_suffix(".log").read_text()[-3000:]
    return True


def losses(out: Path) -> list[float]:
    return [e["loss"] for e in json.loads((out / "log_history.json").read_text()) if "loss" in e]


def kill_after_first_checkpoint(proc: subprocess.Popen, out: Path) -> None:
    deadline = time.time() + 240
    while not any((p / "trainer_state.json").exists() for p in (out / "checkpoints").glob("checkpoint-*")) and time.time() < deadline:
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert read_manifest(out) is None


def test_sigkill_mid_training_resumes_from_checkpoint(tiny_model, tmp_path):
    clean_cfg, killed_cfg = write_config(tmp_path, tiny_model, "clean"), write_config(tmp_path, tiny_model, "killed")
    assert finished_ok(sft(clean_cfg), clean_cfg)

    kill_after_first_checkpoint(sft(killed_cfg), tmp_path / "killed")

    assert finished_ok(sft(killed_cfg), killed_cfg)
    manifest = read_manifest(tmp_path / "killed")
    assert 0 < manifest.metrics["resumed_from_step"] < STEPS and manifest.metrics["steps"] == STEPS
    clean, resumed = losses(tmp_path / "clean"), losses(tmp_path / "killed")
    assert len(resumed) == len(clean) == STEPS
    assert max(abs(a - b) for a, b in zip(clean, resumed)) < 1e-3  # same data order, same optimizer state


def ranks_of(out: Path) -> list:
    import psutil

    config = str(out / "config.yaml")
    return [p for p in psutil.process_iter(["cmdline"]) if config in (p.info["cmdline"] or [])]


def test_sigkill_of_the_orchestrator_stops_two_ranks_and_the_rerun_resumes(tiny_model, tmp_path):
    """2 torchrun ranks: killing `micota sft` takes the ranks down (no orphan holds a GPU), the re-run
    continues from the last checkpoint and ends where one uninterrupted process ends."""
    clean_cfg = write_config(tmp_path, tiny_model, "clean")
    killed_cfg = write_config(tmp_path, tiny_model, "killed", num_processes=2, micro_batch_size=2)
    assert finished_ok(sft(clean_cfg), clean_cfg)

    kill_after_first_checkpoint(sft(killed_cfg), tmp_path / "killed")
    deadline = time.time() + 60
    while ranks_of(tmp_path / "killed") and time.time() < deadline:
        time.sleep(0.5)
    assert not ranks_of(tmp_path / "killed"), "ranks outlived the orchestrator"

    assert finished_ok(sft(killed_cfg), killed_cfg)
    manifest = read_manifest(tmp_path / "killed")
    assert manifest.metrics["processes"] == 2 and 0 < manifest.metrics["resumed_from_step"] < STEPS
    clean, resumed = losses(tmp_path / "clean"), losses(tmp_path / "killed")
    assert len(resumed) == len(clean) == STEPS
    assert max(abs(a - b) / a for a, b in zip(clean, resumed)) < 1e-3


def test_resume_skips_and_removes_checkpoints_a_kill_cut_short(tmp_path):
    from micota.sft.train import last_complete_checkpoint

    for step, state in ((2, '{"global_step": 2}'), (4, None), (6, '{"global_st')):
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"x")
        if state is not None:
            (folder / "trainer_state.json").write_text(state)
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-2"]
    assert last_complete_checkpoint(tmp_path / "none") is None
