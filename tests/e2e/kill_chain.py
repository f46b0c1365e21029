"""Fault injection for whole runs: SIGKILL `micota run` at seeded random points, re-run, compare.

Kill points are chosen on stage-start markers (the `[i/n] stage (...)` line `micota run` prints
before it starts a stage) plus a random delay up to that stage's duration in an uninterrupted
run, so they land inside every kind of stage however busy the machine is. After each kill,
every stage that looks done must hold exactly the uninterrupted run's outputs; after the last,
the finished run must equal the uninterrupted one file for file. Used by
tests/e2e/test_fault_injection.py (CI size) and benchmarks/kill_soak.py (the long soak).
"""

from __future__ import annotations

import json
import os
import queue
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^\[(\d+)/(\d+)\] (\S+) \((\w[\w-]*)")
# Files that hold wall times, timestamps or pickled run state; compared field by field instead.
VOLATILE = {"manifest.json", "log_history.json", "train.log", "training_args.bin", "report.md"}
_TIMING_KEYS = ("runtime", "per_second", "resumed_from_step", "wall_time")
# Transformers' end-of-training summary (the last log entry, the manifest's train_loss) averages
# only the steps run since the last resume: its running sums restart with the process. The
# weights and every per-step log entry are compared exactly; these summaries are not.
_SESSION_SUMMARY = ("train_loss", "entropy", "mean_token_accuracy", "num_tokens")


@dataclass
class Kill:
    target: str  # the stage whose start marker started the clock
    delay_s: float
    landed: str = ""  # the stage running when the kill came ("between stages" or "finished first")
    kind: str = ""
    restart_s: float = 0.0  # from the re-run's start to the kill


@dataclass
class ChainResult:
    kills: list[Kill] = field(default_factory=list)
    clean_s: float = 0.0
    chain_s: float = 0.0
    problems: list[str] = field(default_factory=list)  # a stage that looked done but was not, per kill


def micota_run(recipe: Path, run_dir: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "micota", "run", str(recipe), "--run-dir", str(run_dir), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def run_clean(recipe: Path, run_dir: Path, timeout_s: float = 1800) -> float:
    """An uninterrupted run; returns its wall time."""
    started = time.monotonic()
    proc = micota_run(recipe, run_dir)
    out, _ = proc.communicate(timeout=timeout_s)
    if proc.returncode != 0:
        raise RuntimeError(f"uninterrupted run failed:\n{out[-4000:]}")
    return time.monotonic() - started


def stage_durations(run_dir: Path) -> dict[str, tuple[str, float]]:
    """Stage name -> (manifest stage kind, wall time of the uninterrupted run)."""
    found = {}
    for manifest in sorted(run_dir.glob("*/manifest.json")):
        data = json.loads(manifest.read_text())
        found[manifest.parent.name] = (data["stage"], float(data["wall_time_s"]))
    return found


def choose_kills(durations: dict[str, tuple[str, float]], order: list[str], n: int, seed: int) -> list[Kill]:
    """A kill in the longest stage of every kind (most work to lose: the TA's SFT resumes from a
    checkpoint), the rest anywhere, weighted by duration; in pipeline order."""
    rng = random.Random(seed)
    longest: dict[str, str] = {}
    for name in order:
        kind = durations[name][0]
        if kind not in longest or durations[name][1] > durations[longest[kind]][1]:
            longest[kind] = name
    extra = rng.choices(order, weights=[durations[name][1] + 0.5 for name in order], k=max(0, n - len(longest)))
    # The per-kind kill comes within 30% of the stage's uninterrupted duration, the others within
    # 80%: stage times vary 2-3x with the load on a shared machine, and the first kill of each
    # kind must land inside it. Stages under a second (filter, mix, merge) are killed as soon as
    # their marker is read, which lands inside them only most of the time.
    kills = [(t, 0.3) for t in longest.values()] + [(t, 0.8) for t in extra]
    kills.sort(key=lambda item: order.index(item[0]))
    return [Kill(t, round(rng.uniform(0.0, share * durations[t][1] if durations[t][1] >= 1.0 else 0.0), 3)) for t, share in kills]


def kill_once(recipe: Path, run_dir: Path, kill: Kill, kinds: dict[str, str], timeout_s: float = 900) -> bool:
    """Start a run, SIGKILL it ``kill.delay_s`` after ``kill.target`` starts; False if it finished first."""
    started = time.monotonic()
    proc = micota_run(recipe, run_dir)
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout] + [lines.put(None)], daemon=True).start()
    current, deadline = "between stages", None
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            line = lines.get(timeout=wait if wait is not None else timeout_s)
        except queue.Empty:
            break  # the delay is over (or the run hung: killed all the same)
        if line is None:  # the run ended before the kill
            proc.wait()
            if proc.returncode != 0:
                raise RuntimeError(f"re-run failed with exit code {proc.returncode}")
            kill.landed, kill.restart_s = "finished first", time.monotonic() - started
            return False
        marker = MARKER.match(line)
        if marker:
            current = marker.group(3)
            if deadline is None and current == kill.target:
                deadline = time.monotonic() + kill.delay_s
        elif line.startswith("    done in") or line.startswith("    up to date"):
            current = "between stages"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    kill.landed, kill.kind, kill.restart_s = current, kinds.get(current, ""), time.monotonic() - started
    return True


def kill_chain(recipe: Path, run_dir: Path, clean_dir: Path, kills: list[Kill], on_kill=lambda kill, problems: None) -> ChainResult:
    """Apply ``kills`` one after another to one run folder, then finish it; check after every kill."""
    result = ChainResult()
    kinds = {name: kind for name, (kind, _) in stage_durations(clean_dir).items()}
    started = time.monotonic()
    for kill in kills:
        kill_once(recipe, run_dir, kill, kinds)
        result.kills.append(kill)
        problems = done_stages_problems(run_dir, clean_dir)
        result.problems += [f"after killing in {kill.landed}: {p}" for p in problems]
        on_kill(kill, problems)
    proc = micota_run(recipe, run_dir)
    out, _ = proc.communicate(timeout=1800)
    if proc.returncode != 0:
        raise RuntimeError(f"final run failed:\n{out[-4000:]}")
    result.chain_s = time.monotonic() - started
    return result


def done_stages_problems(run_dir: Path, clean_dir: Path) -> list[str]:
    """Stages with a manifest whose outputs differ from the uninterrupted run's (they look done and are not)."""
    problems = []
    for manifest in sorted(run_dir.glob("*/manifest.json")):
        stage = manifest.parent.name
        problems += [f"{stage}: {p}" for p in folder_differences(run_dir / stage, clean_dir / stage)]
    return problems


def folder_differences(got: Path, want: Path) -> list[str]:
    """How folder ``got`` differs from ``want``: missing or extra files, different bytes or fields.

    Resumable writers stream into ``shards/part-*.jsonl``; a resumed run adds a part, so shards
    are compared as the set of records they hold (nothing lost, nothing written twice).
    """
    got_files, want_files = files_under(got), files_under(want)
    problems = []
    for shard_dir in sorted({_shard_dir(rel) for rel in [*got_files, *want_files]} - {None}):
        got_records, want_records = _shard_records(got_files, shard_dir), _shard_records(want_files, shard_dir)
        if got_records != want_records:
            problems.append(f"differs {shard_dir}/ ({len(got_records)} records, want {len(want_records)})")
    got_files = {rel: p for rel, p in got_files.items() if _shard_dir(rel) is None}
    want_files = {rel: p for rel, p in want_files.items() if _shard_dir(rel) is None}
    problems += [f"missing {rel}" for rel in sorted(set(want_files) - set(got_files))]
    problems += [f"stray {rel}" for rel in sorted(set(got_files) - set(want_files))]
    for rel in sorted(set(got_files) & set(want_files)):
        if not same_content(got / rel, want / rel):
            problems.append(f"differs {rel}")
    return problems


def _shard_dir(rel: str) -> Optional[str]:
    parts = rel.split("/")
    return "/".join(parts[: parts.index("shards") + 1]) if "shards" in parts[:-1] else None


def _shard_records(files: dict[str, Path], shard_dir: str) -> list[str]:
    return sorted(line for rel, p in files.items() if rel.startswith(shard_dir + "/") for line in p.read_text().splitlines())


def files_under(root: Path) -> dict[str, Path]:
    return {p.relative_to(root).as_posix(): p for p in root.rglob("*") if p.is_file()} if root.is_dir() else {}


def same_content(got: Path, want: Path) -> bool:
    name = got.name
    if name not in VOLATILE:
        return got.read_bytes() == want.read_bytes()
    if name == "training_args.bin":
        return True  # pickled TrainingArguments (paths, run state); the weights beside it are compared
    if name == "report.md":
        return _report_figures(got) == _report_figures(want)
    if name in ("log_history.json", "train.log"):  # a JSON list / JSON lines of trainer log entries
        return _losses(got) == _losses(want)
    return _manifest_content(got) == _manifest_content(want)


def _without_timing(value):
    if isinstance(value, dict):
        return {k: _without_timing(v) for k, v in value.items() if not any(t in k for t in _TIMING_KEYS)}
    if isinstance(value, list):
        return [_without_timing(v) for v in value]
    return value


def _manifest_content(path: Path) -> dict:
    data = json.loads(path.read_text())
    for key in ("created_at", "wall_time_s", "versions"):
        data.pop(key, None)
    if data.get("stage") == "sft":
        data["metrics"] = {k: v for k, v in data.get("metrics", {}).items() if k not in _SESSION_SUMMARY}
    return _without_timing(data)


def _losses(path: Path) -> list:
    text = path.read_text()
    entries = json.loads(text) if path.suffix == ".json" else [json.loads(line) for line in text.splitlines() if line.strip()]
    summary = [{k: v for k, v in e.items() if k not in _SESSION_SUMMARY} if "train_runtime" in e else e for e in entries]
    return [_without_timing(entry) for entry in summary]


def _report_figures(path: Path) -> list[str]:
    """The report without its timestamp line and the wall-time column of its stages table."""
    lines = [line for line in path.read_text().splitlines() if not line.startswith("Generated ")]
    return [re.sub(r"\| [\d.]+ \|$", "| |", line) for line in lines]


def stray_files(run_dir: Path) -> list[str]:
    """Temp files, partial marks, locks and checkpoints a finished run must not hold."""
    patterns = ("*.tmp", ".partial-config-sha256", "*.lock", "checkpoint-*")
    return sorted(p.relative_to(run_dir).as_posix() for pattern in patterns for p in run_dir.rglob(pattern))
