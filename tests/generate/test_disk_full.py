"""A disk that fills during generation: one clear error, intact shards, and a resume that loses and repeats nothing.

Two real ways to run out of room, neither needing root:

* a real ``ENOSPC``: ``micota generate`` writes onto a small tmpfs mounted in an unprivileged
  user + mount namespace (``unshare --user --map-root-user --mount``), which a filler file has
  nearly filled; "freeing space" deletes the filler, then the same command runs again. Skipped
  where user namespaces are off (the error says so).
* a real ``EFBIG``: the first run has ``RLIMIT_FSIZE`` (``ulimit -f``) below the shard's final
  size, so the kernel cuts a write short and fails the next one; the re-run has no limit.

Both go through the kernel's short-write path, so the shard really ends in a torn line unless
the writer cuts it back.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

SRC = str(Path(__file__).resolve().parents[2] / "src")
ENV = {**os.environ, "PYTHONPATH": SRC}
N_PROMPTS = 60


def _config(tmp_path: Path, out_dir: Path, model: Path, name: str) -> Path:
    prompts = tmp_path / "prompts.jsonl"
    if not prompts.exists():
        rows = [{"id": f"q{i:03d}", "problem": f"What is the {i}th prime number? " + "Think. " * (i % 7), "answer": "2"}
                for i in range(N_PROMPTS)]
        prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"out_dir": str(out_dir), "prompts": str(prompts), "progress": False,
           "engine": {"engine": "scripted", "model": str(model), "max_new_tokens": 64, "batch_size": 4}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _generate(cfg: Path, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "micota", "generate", "-c", str(cfg)], capture_output=True, text=True,
                          env=ENV, timeout=300, **kw)


@pytest.fixture(scope="module")
def reference(tiny_model, tmp_path_factory) -> tuple[Path, bytes]:
    """(the prompt folder, data.jsonl of an uninterrupted run)."""
    tmp = tmp_path_factory.mktemp("reference")
    result = _generate(_config(tmp, tmp / "gen", tiny_model, "reference"))
    assert result.returncode == 0, result.stderr
    return tmp, (tmp / "gen" / "data.jsonl").read_bytes()


def _shard_lines(out_dir: Path) -> list[bytes]:
    lines = []
    for shard in sorted((out_dir / "shards").glob("part-*.jsonl")):
        data = shard.read_bytes()
        assert not data or data.endswith(b"\n"), f"{shard} ends in a torn line"
        lines += data.splitlines()
    return lines


def _check_failure(result, out_dir: Path, strerror: str, left: Path | None = None) -> int:
    """One clear error naming the shard; shards hold only whole records; nothing looks done. Returns samples kept.

    ``left``: where the failed run's folder can be inspected, when not at ``out_dir`` any more.
    """
    left = left or out_dir
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    message = errors[0]
    assert f"{out_dir / 'shards' / 'part-00000.jsonl'}: no room to write ({strerror};" in message, message
    assert "re-run the same command: it resumes" in message
    lines = _shard_lines(left)
    assert 0 < len(lines) < N_PROMPTS and all(json.loads(line)["id"] for line in lines)
    assert f"The {len(lines)} samples written before are intact" in message
    assert not (left / "manifest.json").exists() and not (left / "data.jsonl").exists()
    return len(lines)


def _check_resumed(out_dir: Path, reference: bytes, kept: int) -> None:
    assert (out_dir / "data.jsonl").read_bytes() == reference  # nothing lost, nothing changed
    ids = [json.loads(line)["id"] for line in _shard_lines(out_dir)]
    assert len(ids) == len(set(ids)) == N_PROMPTS  # nothing generated twice
    assert len(list((out_dir / "shards").glob("part-*.jsonl"))) == 2 and kept > 0


def test_file_size_limit_mid_generation_then_resume(reference, tiny_model, tmp_path):
    prompts_dir, expected = reference
    shutil.copy(prompts_dir / "prompts.jsonl", tmp_path / "prompts.jsonl")
    out_dir = tmp_path / "gen"
    cfg = _config(tmp_path, out_dir, tiny_model, "limited")
    limit = len(expected) // 2 + 123  # bytes per file: about half the shard, and not on a line boundary

    def limit_file_size():  # Python ignores SIGXFSZ, so an over-limit write fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    kept = _check_failure(_generate(cfg, preexec_fn=limit_file_size), out_dir, "File too large")
    assert _generate(cfg).returncode == 0
    _check_resumed(out_dir, expected, kept)


def _user_namespaces_work() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.skipif(not _user_namespaces_work(), reason="unprivileged user namespaces are off (unshare --user fails)")
def test_full_disk_mid_generation_then_resume_after_space_is_freed(reference, tiny_model, tmp_path):
    prompts_dir, expected = reference
    shutil.copy(prompts_dir / "prompts.jsonl", tmp_path / "prompts.jsonl")
    mount, saved = tmp_path / "disk", tmp_path / "saved"
    mount.mkdir()
    saved.mkdir()
    out_dir = mount / "gen"
    cfg = _config(tmp_path, out_dir, tiny_model, "small-disk")
    page = 4096
    room = (len(expected) // 2 // page) * page + 2 * page  # ~half the shard, plus config.yaml and the partial mark
    size = room + 2 * len(expected) + 16 * page  # once the filler is gone: room for every shard, data.jsonl, manifest
    script = f"""
        set -e
        mount -t tmpfs -o size={size} tmpfs {mount}
        head -c {size - room} /dev/zero > {mount}/filler
        set +e
        {sys.executable} -m micota generate -c {cfg} > {saved}/first.out 2> {saved}/first.err; echo $? > {saved}/first.rc
        cp -a {out_dir} {saved}/after-failure
        rm {mount}/filler
        {sys.executable} -m micota generate -c {cfg} > {saved}/second.out 2> {saved}/second.err; echo $? > {saved}/second.rc
        cp -a {out_dir} {saved}/after-resume
    """
    subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "bash", "-c", script], env=ENV, check=True, timeout=600)
    first = subprocess.CompletedProcess([], int((saved / "first.rc").read_text()), "", (saved / "first.err").read_text())
    kept = _check_failure(first, out_dir, "No space left on device", left=saved / "after-failure")
    assert int((saved / "second.rc").read_text()) == 0, (saved / "second.err").read_text()
    _check_resumed(saved / "after-resume", expected, kept)


def test_a_shard_damaged_outside_micota_is_named_by_line_on_resume(reference, tiny_model, tmp_path):
    prompts_dir, expected = reference
    shutil.copy(prompts_dir / "prompts.jsonl", tmp_path / "prompts.jsonl")
    out_dir = tmp_path / "gen"
    cfg = _config(tmp_path, out_dir, tiny_model, "damaged")
    limit = len(expected) // 3

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    assert _generate(cfg, preexec_fn=limit_file_size).returncode == 2  # a partial run to resume
    shard = out_dir / "shards" / "part-00000.jsonl"
    lines = shard.read_bytes().splitlines(keepends=True)
    lines[1] = b"\0" * 300 + b"\n"  # a page lost to a failed writeback reads back as NULs
    shard.write_bytes(b"".join(lines))
    result = _generate(cfg)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{shard}:2: not a complete sample record" in errors[0] and "Delete that line" in errors[0]
    del lines[1]  # what the user does
    shard.write_bytes(b"".join(lines))
    assert _generate(cfg).returncode == 0 and (out_dir / "data.jsonl").read_bytes() == expected
