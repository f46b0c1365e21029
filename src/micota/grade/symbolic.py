"""Symbolic equivalence (math-verify + sympy) in a separate process with a hard deadline.

Why a process: math-verify's own timeout is ``signal.alarm``, which raises in worker threads and
cannot interrupt a long C-level big-integer operation (``10^{10^{10}}``), so a hostile answer
could hang the filter stage. Here each concurrent call takes
a child interpreter (``python -m micota.grade._worker``) from a shared idle list; children are
started with ``subprocess`` (works in threads and inside daemonic pool workers too); the caller
waits on the pipe with ``select`` and kills the child when the deadline passes. Inside, the child stops over-long work itself with an
alarm, so it stays warm; a kill (only for work that ignores signals) starts a replacement at
once. Only LaTeX parsing is used in the child (never ``parse_expr``, which evals), and the child
runs under a memory limit.
"""

from __future__ import annotations

import atexit
import os
import pickle
import select
import struct
import subprocess
import sys
import threading
import time

ALARM_MARGIN_S = 0.15  # the child's own alarm fires this much before our hard kill
STARTUP_TIMEOUT_S = 60.0  # a cold child imports sympy (~1 s); not charged to the per-case limit
_HEADER = struct.Struct("!I")
_lock = threading.Lock()
_idle: list["_Pool"] = []  # ready child slots any thread may take; one slot serves one call at a time
_idle_pid = os.getpid()
_prestarted_pid: int | None = None
_all_children: list[subprocess.Popen] = []


class SymbolicTimeout(Exception):
    """The child did not answer before the deadline (it has been killed)."""


class SymbolicFailure(Exception):
    """The child crashed or could not parse; the message says why."""


def _start_child() -> subprocess.Popen:
    env = dict(os.environ)
    src_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src_root, env.get("PYTHONPATH", "")) if p)
    child = subprocess.Popen(
        [sys.executable, "-m", "micota.grade._worker"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, bufsize=0,
    )
    _all_children[:] = [c for c in _all_children if c.poll() is None]
    _all_children.append(child)
    return child


def _read_exact(child: subprocess.Popen, size: int, deadline: float) -> bytes:
    fd, chunks, got = child.stdout.fileno(), [], 0
    while got < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise SymbolicTimeout
        chunk = os.read(fd, size - got)
        if not chunk:
            raise SymbolicFailure("symbolic worker exited (crash or memory limit)")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _receive(child: subprocess.Popen, deadline: float):
    (size,) = _HEADER.unpack(_read_exact(child, _HEADER.size, deadline))
    return pickle.loads(_read_exact(child, size, deadline))  # our own child's reply, never model text


class _Pool:
    """One child process (and its replacement after a kill), used by one call at a time."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.active: subprocess.Popen | None = None
        self.ready = False
        self.warmed = False  # a child has been ready once in this process

    def _ensure_active(self, deadline: float) -> subprocess.Popen:
        """The ready child. Only the very first start in a process is not charged to the case;
        waiting for a replacement after a kill counts against ``deadline``."""
        if self.active is None or self.active.poll() is not None:
            self.active, self.ready = _start_child(), False
        if not self.ready:
            wait_until = deadline if self.warmed else time.monotonic() + STARTUP_TIMEOUT_S
            if _receive(self.active, wait_until) != "ready":
                raise SymbolicFailure("symbolic worker failed to start")
            self.ready = self.warmed = True
        return self.active

    def ask(self, gold: str, answer: str, timeout_s: float):
        cold = not self.warmed
        deadline = time.monotonic() + max(timeout_s, 0.01)
        child = self._ensure_active(deadline)  # a timeout here leaves the starting child alone
        if cold:  # the first start in this process (~1 s of imports) is not the case's fault
            deadline = time.monotonic() + max(timeout_s, 0.01)
        # The child stops itself ALARM_MARGIN_S early; we kill it only if that fails.
        budget = max(deadline - time.monotonic() - ALARM_MARGIN_S, 0.01)
        try:
            payload = pickle.dumps(("equal", gold, answer, budget))
            child.stdin.write(_HEADER.pack(len(payload)) + payload)
            return _receive(child, deadline)
        except (SymbolicTimeout, SymbolicFailure, OSError) as exc:
            self.kill_active()
            if isinstance(exc, OSError):
                raise SymbolicFailure(f"symbolic worker pipe error: {exc}") from None
            raise

    def kill_active(self) -> None:
        """Kill the child and start its replacement at once, so it warms while we answer."""
        if self.active is not None:
            self.active.kill()
            self.active.wait()
        self.active, self.ready = _start_child(), False


def _checkout() -> _Pool:
    """An idle child slot (warm ones first), shared by all threads; a new slot if none is idle."""
    global _idle_pid
    with _lock:
        if _idle_pid != os.getpid():  # a forked copy must not share its parent's pipes
            _idle.clear()
            _idle_pid = os.getpid()
        return _idle.pop() if _idle else _Pool()


def _checkin(slot: _Pool) -> None:
    with _lock:
        if slot.pid == os.getpid():
            _idle.append(slot)


def symbolic_equal(gold: str, answer: str, timeout_s: float) -> tuple[bool | None, str]:
    """Whether math-verify finds the LaTeX ``answer`` equal to ``gold``, within ``timeout_s``.

    Returns ``(True|False, detail)``, or ``(None, reason)`` when it timed out, crashed, or could
    not parse either side.
    """
    slot = _checkout()
    try:
        return slot.ask(gold, answer, timeout_s)
    except SymbolicTimeout:
        return None, f"timed out after {timeout_s:.2f}s in symbolic comparison"
    except SymbolicFailure as exc:
        return None, str(exc)
    finally:
        _checkin(slot)


def prestart() -> None:
    """Start one child in the background (no waiting) the first time, so it is warm when needed."""
    global _prestarted_pid
    with _lock:
        if _prestarted_pid == os.getpid():
            return
        _prestarted_pid = os.getpid()
    slot = _checkout()
    if slot.active is None:
        slot.active = _start_child()
    _checkin(slot)


def warm_up() -> None:
    """Start a child now and wait until it is ready (e.g. before timing a benchmark)."""
    slot = _checkout()
    try:
        if not slot.warmed:
            slot._ensure_active(time.monotonic() + STARTUP_TIMEOUT_S)
    finally:
        _checkin(slot)


@atexit.register
def _reap_children() -> None:
    for child in _all_children:
        if child.poll() is None:
            child.kill()
