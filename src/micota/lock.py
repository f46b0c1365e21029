"""One writer per run folder and per stage folder.

``micota run`` holds ``RUN/.micota.lock`` (and the lock of every stage it may run) for its whole
life; a stage command run alone (``micota generate -c ...``) holds the lock of its stage folder,
``RUN/.<stage>.lock``, which sits beside the folder because a stage with a changed config deletes
its folder. A second writer stops at once with a message naming the holder.

The lock is the kernel's ``flock`` on that file, so it dies with its process: a lock left by a
killed run (``kill -9``, a crashed node) is no lock at all, and taking it over is race-free.
The file's content (pid, host, start time, command) is only there to name the holder. After
taking the lock the holder checks the path still names the file it locked (a releasing holder
unlinks it), so two processes never both hold "the" lock through two different files.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from micota.errors import MicotaError

RUN_LOCK_NAME = ".micota.lock"
# Lock files held by this process or an ancestor: a stage's own ranks (an `accelerate launch` the
# stage started) and nested calls run under their parent's lock instead of failing against it.
HELD_ENV = "MICOTA_HELD_LOCKS"
_held_fds: dict[str, int] = {}  # lock path -> the open file this process holds it through


def held_lock_fds() -> tuple[int, ...]:
    """File descriptors of the locks this process holds.

    A stage that starts worker processes (an `accelerate launch` of its ranks) passes them on
    (``subprocess.Popen(..., pass_fds=held_lock_fds())``): the lock then lives until the last
    worker exits, so a re-run after the orchestrator was killed cannot start beside orphaned
    workers still writing the folder.
    """
    return tuple(_held_fds.values())


def stage_lock_path(stage_dir: str | Path) -> Path:
    """Where the lock of a stage folder lives: a hidden file beside it (``RUN/.<stage>.lock``)."""
    stage_dir = Path(os.path.abspath(stage_dir))
    return stage_dir.parent / f".{stage_dir.name}.lock"


@contextmanager
def hold_lock(path: str | Path, what: str) -> Iterator[Path]:
    """Hold the lock file ``path`` for the ``with`` block, or raise MicotaError naming its holder.

    A no-op when this process or an ancestor already holds it, and in a distributed rank other
    than 0 (rank 0 writes; the others only wait for it).
    """
    path = Path(os.path.abspath(path))
    held = [p for p in os.environ.get(HELD_ENV, "").split(os.pathsep) if p]
    if str(path) in held or os.environ.get("RANK", "0") not in ("", "0"):
        yield path
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = _acquire(path, what)
    os.environ[HELD_ENV] = os.pathsep.join([*held, str(path)])
    _held_fds[str(path)] = fd
    try:
        yield path
    finally:
        _held_fds.pop(str(path), None)
        os.environ[HELD_ENV] = os.pathsep.join(p for p in os.environ.get(HELD_ENV, "").split(os.pathsep) if p and p != str(path))
        try:
            path.unlink(missing_ok=True)  # before unlocking: a waiter then re-checks and retries
        finally:
            os.close(fd)


@contextmanager
def hold_locks(paths: list[tuple[Path, str]]) -> Iterator[None]:
    """Hold several locks (run folder, then its stages) for the ``with`` block."""
    with ExitStack() as stack:
        for path, what in paths:
            stack.enter_context(hold_lock(path, what))
        yield


def _acquire(path: Path, what: str) -> int:
    for _ in range(100):  # each retry means the holder released between our open and our lock
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise MicotaError(_held_message(path, what)) from None
            raise MicotaError(f"{path}: cannot lock {what} ({exc.strerror}); the file system may not support "
                              "file locks (flock). Put the run folder on a local or NFSv4 disk.") from None
        if _same_file(fd, path):
            _write_holder(fd)
            return fd
        os.close(fd)  # we locked a file its holder had just unlinked; lock the new one
    raise MicotaError(f"{path}: could not take the lock of {what}: it changed hands 100 times. Try again.")


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (on_disk.st_dev, on_disk.st_ino) == (held.st_dev, held.st_ino)


def _write_holder(fd: int) -> None:
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
              "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)


def read_holder(path: str | Path) -> dict:
    """The holder recorded in a lock file ({} when unreadable: it is being rewritten)."""
    for _ in range(5):
        try:
            return json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (json.JSONDecodeError, UnicodeDecodeError):
            time.sleep(0.05)  # the holder is writing it right now
    return {}


def _held_message(path: Path, what: str) -> str:
    holder = read_holder(path)
    if not holder:
        return f"{what} is in use by another micota process (lock {path}). Wait for it to finish."
    pid, host = holder.get("pid"), holder.get("host", "?")
    who = f"pid {pid} on {host}, started {holder.get('started_at', '?')}: `{holder.get('command', '?')}`"
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        return (f"{what} is locked by a leftover child of {who}, which has exited (lock {path}). "
                "Wait for its workers to exit or stop them, then run again.")
    return (f"{what} is in use by {who} (lock {path}). Wait for it to finish or stop it; two writers "
            "on one folder would delete each other's outputs.")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
