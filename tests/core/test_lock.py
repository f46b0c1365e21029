"""One writer per folder, tested with real processes: holder named, dead holders taken over, no race."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from micota.errors import MicotaError
from micota.lock import HELD_ENV, RUN_LOCK_NAME, hold_lock, read_holder, stage_lock_path

SRC = str(Path(__file__).resolve().parents[2] / "src")

HOLD = """
import sys, time
from pathlib import Path
from micota.lock import hold_lock
from micota.errors import MicotaError
path, start, seconds = Path(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
while time.time() < start:
    time.sleep(0.001)
try:
    with hold_lock(path, "folder X"):
        print("won", flush=True)
        time.sleep(seconds)
except MicotaError as exc:
    print("lost:", exc, flush=True)
"""


def holder(path: Path, seconds: float = 60.0, start: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(start), str(seconds)], stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": SRC})


def wait_held(path: Path, proc: subprocess.Popen) -> None:
    assert proc.stdout.readline().strip() == "won"
    assert read_holder(path)["pid"] == proc.pid


def test_second_writer_stops_naming_the_holder(tmp_path):
    lock = tmp_path / "run" / RUN_LOCK_NAME
    proc = holder(lock)
    try:
        wait_held(lock, proc)
        with pytest.raises(MicotaError, match=rf"folder Y is in use by pid {proc.pid} on .*started .*Wait for it to finish"):
            with hold_lock(lock, "folder Y"):
                pass
    finally:
        proc.kill()
        proc.wait()
    with hold_lock(lock, "folder Y"):  # the kernel dropped the dead holder's lock: taken over at once
        assert read_holder(lock)["pid"] == os.getpid()
    assert not lock.exists()  # released cleanly


def test_stale_lock_file_of_a_dead_process_is_taken_over_by_exactly_one(tmp_path):
    lock = tmp_path / RUN_LOCK_NAME
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(json.dumps({"pid": int(dead.stdout), "host": os.uname().nodename, "started_at": "x", "command": "old"}))
    start = time.time() + 3.0  # every contender tries at the same instant
    procs = [holder(lock, seconds=2.0, start=start) for _ in range(6)]
    lines = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(line.split(":")[0] for line in lines).count("won") == 1, lines
    assert all("in use by pid" in line for line in lines if line.startswith("lost")), lines


def test_nested_and_child_holders_of_the_same_lock_do_not_block(tmp_path, monkeypatch):
    monkeypatch.delenv(HELD_ENV, raising=False)
    lock = stage_lock_path(tmp_path / "run" / "gen")
    assert lock == tmp_path / "run" / ".gen.lock"
    with hold_lock(lock, "stage folder gen"):
        with hold_lock(lock, "stage folder gen"):  # the same process again (no self-deadlock)
            pass
        child = subprocess.run([sys.executable, "-c", HOLD, str(lock), "0", "0"], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": SRC})
        assert child.stdout.strip() == "won"  # a child (a stage's own rank) runs under its parent's lock
        assert lock.exists()
    assert os.environ.get(HELD_ENV, "") == ""


def micota(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "micota", *args], capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": SRC, "PATH": os.environ.get("PATH", "/usr/bin:/bin")})


def test_micota_run_and_stage_commands_refuse_a_held_folder(tmp_path):
    data = tmp_path / "gen.jsonl"
    data.write_text(json.dumps({"id": "a", "answer": "1", "response": "1", "n_tokens": 1, "finish_reason": "stop",
                                "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "1"}]}) + "\n")
    run_dir = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"run_dir": str(run_dir), "stages": {"f": {"kind": "filter", "data": str(data), "require_correct": False}}}))
    stage_cfg = tmp_path / "f.yaml"
    stage_cfg.write_text(yaml.safe_dump({"out_dir": str(run_dir / "f"), "data": str(data), "require_correct": False}))

    proc = holder(run_dir / RUN_LOCK_NAME)
    try:
        wait_held(run_dir / RUN_LOCK_NAME, proc)
        result = micota("run", str(recipe))
        assert result.returncode == 2 and f"run folder {run_dir} is in use by pid {proc.pid}" in result.stderr
        assert not (run_dir / "f").exists()
    finally:
        proc.kill()
        proc.wait()

    proc = holder(stage_lock_path(run_dir / "f"))
    try:
        wait_held(stage_lock_path(run_dir / "f"), proc)
        for args in (("filter", "-c", str(stage_cfg)), ("run", str(recipe))):
            result = micota(*args)
            assert result.returncode == 2 and f"stage folder {run_dir / 'f'} is in use by pid {proc.pid}" in result.stderr, result.stderr
    finally:
        proc.kill()
        proc.wait()
    assert micota("filter", "-c", str(stage_cfg)).returncode == 0
    assert micota("run", str(recipe)).returncode == 0


def test_workers_given_the_lock_keep_it_after_their_parent_is_killed(tmp_path):
    """A killed orchestrator's orphaned workers still hold the folder: a re-run cannot start beside them."""
    lock = tmp_path / RUN_LOCK_NAME
    parent = """
import subprocess, sys, time
from pathlib import Path
from micota.lock import hold_lock, held_lock_fds
with hold_lock(Path(sys.argv[1]), "folder X"):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], pass_fds=held_lock_fds())
    print(child.pid, flush=True)
    time.sleep(60)
"""
    proc = subprocess.Popen([sys.executable, "-c", parent, str(lock)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": SRC})
    child_pid = int(proc.stdout.readline())
    proc.kill()
    proc.wait()
    try:
        with pytest.raises(MicotaError, match=rf"leftover child of pid {proc.pid} .*which has exited"):
            with hold_lock(lock, "folder X"):
                pass
    finally:
        os.kill(child_pid, 9)
    time.sleep(0.2)
    with hold_lock(lock, "folder X"):
        pass
