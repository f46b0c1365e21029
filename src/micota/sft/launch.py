"""How the ``sft`` stage starts its training processes: launchers and distributed setups as tables.

The orchestrator (``micota run`` or ``micota sft``) is one process. With one process the
stage trains inside it (``inline``); with more it starts a child launcher on the stage's own
``config.yaml`` and waits: each rank runs ``python -m micota.sft.worker CONFIG``, rank 0 writes
the outputs, and the orchestrator writes the manifest once the child has exited cleanly.

Measured on a 2-core CPU machine (docs/benchmarks.md, SFT): ``accelerate launch --cpu
--num_processes 2`` starts ONE process (with ``--cpu`` accelerate spreads ranks only through
mpirun), so micota never passes ``--cpu``: with the packaged ``ddp.yaml`` accelerate starts N
ranks, and on a machine without GPUs the Trainer (``use_cpu``) joins them over gloo, as
``torchrun --nproc-per-node N`` does. ``launcher: auto`` picks torchrun without GPUs (one
package fewer in the way) and accelerate, which reads the packaged ddp/zero3/fsdp configs, with
GPUs. Every rank checks that the launcher started as many processes as the stage asked for.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from micota.errors import MicotaError
from micota.jsonl import write_json
from micota.resources import visible_gpu_count

if TYPE_CHECKING:
    from micota.sft.run import SFTConfig

LOG_NAME = "train.log"  # the child's stdout and stderr, every rank
RESULT_NAME = ".train-result.json"  # rank 0 -> orchestrator: outputs, counts, metrics for the manifest
WORKER_MODULE = "micota.sft.worker"
ERROR_MARK = "micota sft worker error: "  # the worker prints a MicotaError behind this mark


@dataclass(frozen=True)
class LaunchPlan:
    """What the stage will start: the row of LAUNCHERS, how many processes, on GPUs or not."""

    launcher: str
    processes: int
    gpus: int  # GPUs the ranks use (0: CPU, gloo)
    distributed: str
    precision: str  # bf16 | fp16 | fp32, the training precision the launcher is told about

    def describe(self) -> str:
        if self.launcher == "inline":
            return "inline (in the orchestrator)"
        return f"{self.launcher} launch, {self.distributed}"


@dataclass(frozen=True)
class Launcher:
    module: Optional[str]  # `python -m <module>` that starts the ranks; None: train in the orchestrator
    arguments: Callable[[LaunchPlan], list[str]]  # launcher flags before `-m micota.sft.worker CONFIG`


@dataclass(frozen=True)
class Distributed:
    accelerate_config: str  # file in micota/_data/accelerate/
    launchers: tuple[str, ...]  # launchers that can run it
    needs: tuple[str, ...]  # Python modules it imports (checked before the run starts)
    # Weights stay fp32 unless the setup keeps fp32 master copies itself: plain bf16 weights lose
    # most AdamW steps at lr 1e-5 (84% of elements of a std-0.02 tensor do not change;
    # docs/benchmarks.md, SFT). ZeRO-3's optimizer keeps fp32 master partitions, so it loads in
    # the training precision and shards at load.
    loads_in_training_precision: bool


def _torchrun_arguments(plan: LaunchPlan) -> list[str]:
    # --standalone: a local rendezvous on a free port, so parallel runs on one machine never collide.
    return ["--standalone", "--nnodes", "1", "--nproc-per-node", str(plan.processes)]


def _accelerate_arguments(plan: LaunchPlan) -> list[str]:
    # --mixed_precision always: the zero3/fsdp files say bf16, and the Trainer would read that over an fp32 stage.
    # Never --cpu: it makes accelerate start one process whatever --num_processes says (module docstring).
    mixed = {"bf16": "bf16", "fp16": "fp16", "fp32": "no"}[plan.precision]
    return ["--config_file", str(accelerate_config_path(plan.distributed)), "--num_processes", str(plan.processes),
            "--num_machines", "1", "--mixed_precision", mixed, "--dynamo_backend", "no",
            "--main_process_port", str(free_port())]


LAUNCHERS: dict[str, Launcher] = {
    "inline": Launcher(None, lambda plan: []),
    "torchrun": Launcher("torch.distributed.run", _torchrun_arguments),
    "accelerate": Launcher("accelerate.commands.launch", _accelerate_arguments),
}

DISTRIBUTED: dict[str, Distributed] = {
    "ddp": Distributed("ddp.yaml", ("inline", "torchrun", "accelerate"), (), loads_in_training_precision=False),
    "zero3": Distributed("zero3.yaml", ("accelerate",), ("deepspeed",), loads_in_training_precision=True),
    "fsdp": Distributed("fsdp.yaml", ("accelerate",), (), loads_in_training_precision=False),
}


def accelerate_config_path(name: str) -> Path:
    """The packaged accelerate config for a DISTRIBUTED row (found in the installed package, not the cwd)."""
    resource = resources.files("micota") / "_data" / "accelerate" / DISTRIBUTED[name].accelerate_config
    return Path(str(resource))


def launch_plan(cfg: "SFTConfig") -> LaunchPlan:
    """Resolve ``num_processes: auto`` and ``launcher: auto`` on this machine."""
    gpus = cfg.resources.gpu_count()
    if cfg.num_processes != "auto":
        processes = cfg.num_processes
    else:
        processes = gpus if gpus > 0 else cfg.resources.cpu_processes
    launcher, can_run = cfg.launcher, DISTRIBUTED[cfg.distributed].launchers
    if launcher == "auto":
        # Inline only where the orchestrator sees at most one GPU: with more, the Trainer would wrap the
        # model in nn.DataParallel, which TRL's SFTTrainer refuses; a child sees only its own GPUs.
        if processes == 1 and "inline" in can_run and visible_gpu_count() <= 1:
            launcher = "inline"
        else:
            launcher = "torchrun" if gpus == 0 and "torchrun" in can_run else "accelerate"
    used = min(gpus, processes) if gpus else 0
    return LaunchPlan(launcher, processes, used, cfg.distributed, training_precision(cfg.precision, on_gpu=used > 0))


def training_precision(precision: str, *, on_gpu: bool) -> str:
    """``auto`` is bf16 on GPU and fp32 on CPU (half precision on CPU is refused by preflight and train)."""
    return precision if precision != "auto" else ("bf16" if on_gpu else "fp32")


def check_precision(precision: str, *, on_gpu: bool) -> str:
    """The training precision; half precision without a GPU is an error naming the fix."""
    resolved = training_precision(precision, on_gpu=on_gpu)
    if resolved in ("bf16", "fp16") and not on_gpu:
        raise MicotaError(f"sft.precision: {resolved} training needs a GPU here; use precision: fp32 (or auto) on CPU.")
    return resolved


def launch_command(plan: LaunchPlan, config_path: Path) -> list[str]:
    """The child command: the launcher, then every rank runs the worker on the stage's config.yaml."""
    row = LAUNCHERS[plan.launcher]
    if row.module is None:
        raise ValueError("the inline launcher starts no child process")
    worker = ["-m", WORKER_MODULE, str(config_path), "--processes", str(plan.processes)]
    return [sys.executable, "-m", row.module, *row.arguments(plan), *worker]


def run_launched(plan: LaunchPlan, out: Path, *, echo: bool) -> dict:
    """Start the child on ``out/config.yaml``, stream its output to ``out/train.log``, return rank 0's result."""
    log_path = out / LOG_NAME
    (out / RESULT_NAME).unlink(missing_ok=True)
    command = launch_command(plan, out / "config.yaml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _with_this_micota(os.environ.get("PYTHONPATH", ""))}
    env["CUDA_VISIBLE_DEVICES"] = stage_devices(plan.gpus)  # the ranks see the stage's GPUs only ("" = CPU ranks)
    with log_path.open("ab") as log:
        log.write(("$ " + " ".join(command) + "\n").encode())
        log.flush()
        code = _stream(command, env, log, echo)
    if code != 0:
        raise MicotaError(
            f"stage 'sft' ({out}): the {plan.launcher} child ({plan.processes} processes) exited with code {code}"
            f"{_cause(log_path)}. Full output: {log_path}"
        )
    result = json.loads((out / RESULT_NAME).read_text(encoding="utf-8"))
    (out / RESULT_NAME).unlink()
    return result


def stage_devices(gpus: int) -> str:
    """CUDA_VISIBLE_DEVICES for the ranks: the first ``gpus`` of the devices this process sees."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    devices = visible.split(",") if visible else [str(i) for i in range(visible_gpu_count())]
    return ",".join(d.strip() for d in devices[:gpus])


def _with_this_micota(pythonpath: str) -> str:
    """PYTHONPATH with this micota's source root first, so every rank runs the orchestrator's code."""
    import micota

    root = str(Path(micota.__file__).resolve().parents[1])
    return os.pathsep.join([root, *(p for p in pythonpath.split(os.pathsep) if p and p != root)])


def write_result(out: Path, result: dict) -> None:
    """Rank 0 hands the manifest's outputs, counts and metrics to the orchestrator."""
    write_json(out / RESULT_NAME, result)


def _stream(command: list[str], env: dict[str, str], log, echo: bool) -> int:
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        for chunk in iter(lambda: proc.stdout.read1(1 << 16), b""):
            log.write(chunk)
            log.flush()
            if echo:
                sys.stdout.buffer.write(chunk)
                sys.stdout.flush()
        return proc.wait()
    finally:
        if proc.poll() is None:  # the orchestrator is being interrupted: take the ranks down with it
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def _die_with_parent() -> None:
    """Linux: the launcher gets SIGTERM when the orchestrator dies, even by SIGKILL, so no ranks hold GPUs."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


_EXCEPTION_LINE = re.compile(r"^(?:\[rank\d+\]: )?([\w.]*(?:Error|Exception)\b.*)$")


def _cause(log_path: Path) -> str:
    """The worker's MicotaError, else the last exception line of the log ('' when none)."""
    lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        if ERROR_MARK in line:
            return ": " + line.split(ERROR_MARK, 1)[1].strip()
    for line in reversed(lines):
        match = _EXCEPTION_LINE.match(line.strip())
        if match and "ChildFailedError" not in line:
            return f" ({match.group(1)[:300]})"
    return ""


def free_port() -> int:
    """A TCP port free right now, for accelerate's rendezvous (29500 collides between parallel runs)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def module_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None
