"""The one exception type users see: it carries a message that names what failed and the fix."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

# errnos that mean "no room to write": a full disk, an exhausted quota, a file-size limit (ulimit -f)
NO_ROOM = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})


class MicotaError(Exception):
    """A user-facing error. The CLI prints its message (no traceback) and exits non-zero.

    Messages follow one shape: where (file, line, field), what (the bad value), fix.
    """


class MissingPackage(MicotaError):
    """A package this Python lacks (vllm, deepspeed, flash-attn, ...): the machine, not the recipe, is the problem.

    ``micota run --dry-run --gpus N`` plans for another machine and lists these as what to
    install there instead of failing; a real run stops on them like on any other error.
    """

    def __init__(self, message: str, package: str):
        super().__init__(message)
        self.package = package


def is_no_room(exc: BaseException) -> bool:
    """Whether ``exc`` is a write that failed for lack of space (ENOSPC, EDQUOT, EFBIG)."""
    return isinstance(exc, OSError) and exc.errno in NO_ROOM


def no_room_message(where: str | Path, exc: OSError) -> str:
    """``"<where>: no room to write (<strerror>; N MB free on that filesystem)."``"""
    folder = Path(where)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        free = f"{shutil.disk_usage(folder).free / 1e6:.1f} MB free on that filesystem"
    except OSError:
        free = "free space unknown"
    return f"{where}: no room to write ({exc.strerror or exc}; {free})."
