"""Helper processes die with micota, even when micota is SIGKILLed.

vLLM runs its engine core in a child process that does not notice its parent's death: after a
``kill -9`` of ``micota run`` it kept generating (measured: still at 18-37% CPU a minute later)
and, on a GPU, would keep the memory the re-run needs. Two guards:

* :func:`die_with_parent` - a process micota starts itself asks Linux to SIGKILL it when its
  parent dies (``prctl(PR_SET_PDEATHSIG)``);
* :class:`Reaper` - for processes a library starts (vLLM's engine core): a tiny watcher that
  blocks on a pipe from micota; when micota dies the pipe closes and the watcher kills them
  and their children.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

_WATCHER = """
import os, signal, sys
sys.stdin.buffer.read()  # returns when the process that started us exits, however it exits
for pid in map(int, sys.argv[1:]):
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
"""


def die_with_parent(parent_pid: int) -> None:
    """Have Linux SIGKILL this process when its parent dies (no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the request took effect
        os._exit(1)


def child_pids(pid: int | None = None) -> set[int]:
    """Direct children of ``pid`` (default: this process), from /proc; empty where /proc is missing."""
    pid = os.getpid() if pid is None else pid
    children: set[int] = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.add(int(stat.parent.name))
    return children


def descendants(pids: set[int]) -> list[int]:
    """``pids`` and every process below them."""
    found, frontier = list(pids), list(pids)
    while frontier:
        below = child_pids(frontier.pop())
        found.extend(below)
        frontier.extend(below)
    return found


class Reaper:
    """Kills ``pids`` (and what they started) if this process dies without calling :meth:`cancel`."""

    def __init__(self, pids: set[int]):
        self.pids = pids
        self._watcher = None
        if pids:
            self._watcher = subprocess.Popen([sys.executable, "-c", _WATCHER, *map(str, descendants(pids))],
                                             stdin=subprocess.PIPE, start_new_session=True)

    def cancel(self) -> None:
        """Stop watching (call before shutting the processes down normally)."""
        if self._watcher is not None:
            self._watcher.kill()
            self._watcher.wait()
            self._watcher.stdin.close()
            self._watcher = None
