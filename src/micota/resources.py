"""Hardware a stage may use, and how a stage says it will use it.

A recipe's ``resources:`` block (and a stage's own ``resources:``, which overrides it) says how
many GPUs the stage may use. Each stage kind turns that into a :class:`Placement` (processes,
GPUs, tensor/data parallel sizes) which ``micota run --dry-run`` prints and the stage follows.
None of this enters a stage's config hash: where a stage runs does not change what it writes.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, Literal, Union

from pydantic import Field

from micota.config import StrictModel


class Resources(StrictModel):
    """How much hardware a stage may use."""

    gpus: Union[Annotated[int, Field(ge=0)], Literal["auto"]] = "auto"  # GPUs to use; auto = every visible GPU (0 on a CPU machine)
    cpu_processes: int = Field(1, ge=1)  # processes on a machine without GPUs (data-parallel workers, DDP ranks)

    def gpu_count(self) -> int:
        """The number of GPUs this resolves to on this machine."""
        visible = visible_gpu_count()
        return visible if self.gpus == "auto" else self.gpus


@dataclass(frozen=True)
class Placement:
    """How one stage will run: the plan ``--dry-run`` prints."""

    processes: int = 1  # OS processes the stage starts (1 = in the orchestrator itself)
    gpus: int = 0  # GPUs it uses
    tensor_parallel: int = 1
    data_parallel: int = 1
    note: str = ""  # e.g. "accelerate launch, zero3"

    def describe(self) -> str:
        where = f"{self.gpus} GPU{'s' if self.gpus != 1 else ''}" if self.gpus else "CPU"
        parts = [f"{self.processes} process{'es' if self.processes != 1 else ''}", where]
        if self.tensor_parallel > 1 or self.data_parallel > 1:
            parts.append(f"TP {self.tensor_parallel} x DP {self.data_parallel}")
        if self.note:
            parts.append(self.note)
        return ", ".join(parts)


_assumed_gpus: list[int] = []  # set by assume_gpus() while a plan is made for another machine


@contextmanager
def assume_gpus(count: int):
    """Within the block, :func:`visible_gpu_count` answers ``count``: plan for a node this machine is not.

    Only planning uses it (``micota run --dry-run --gpus N``); nothing runs inside the block.
    """
    _assumed_gpus.append(count)
    try:
        yield
    finally:
        _assumed_gpus.pop()


def visible_gpu_count() -> int:
    """CUDA GPUs this process can see (0 without torch or CUDA). ``CUDA_VISIBLE_DEVICES=""`` hides all."""
    if _assumed_gpus:
        return _assumed_gpus[-1]
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return 0
    try:
        import torch
    except ImportError:
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0
