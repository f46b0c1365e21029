"""Processes a library starts for micota (vLLM's engine core) die when micota is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from micota.generate.reaper import Reaper

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs Linux /proc")

OWNER = """
import subprocess, sys, time
from micota.generate.reaper import Reaper
helper = subprocess.Popen(["sleep", "120"])  # stands in for vLLM's engine process
reaper = Reaper({helper.pid})
print(helper.pid, flush=True)
time.sleep(120)
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text().split("State:")[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_helper_dies_with_its_sigkilled_owner():
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    owner = subprocess.Popen([sys.executable, "-c", OWNER], stdout=subprocess.PIPE, text=True, env=env)
    helper = int(owner.stdout.readline())
    assert alive(helper)
    owner.send_signal(signal.SIGKILL)
    owner.wait()
    deadline = time.time() + 10
    while alive(helper) and time.time() < deadline:
        time.sleep(0.05)
    assert not alive(helper)


def test_cancel_leaves_the_helper_to_its_owner():
    helper = subprocess.Popen(["sleep", "30"])
    reaper = Reaper({helper.pid})
    reaper.cancel()
    time.sleep(0.2)
    assert helper.poll() is None
    helper.kill()
    helper.wait()
