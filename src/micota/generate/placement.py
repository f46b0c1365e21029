"""Where an engine runs: replicas, GPUs per replica, and the checks made before any stage starts.

Every stage that generates (generate, evaluate, the merge probe) resolves its engine here, so
``data_parallel_size: auto`` means the same everywhere:

* vLLM: one replica per ``tensor_parallel_size`` x ``pipeline_parallel_size`` GPUs
  (8 GPUs, TP 2 -> 4 replicas: the 32B teacher's layout in the MiCoTA scripts' 2-GPU vLLM);
* hf: one replica per GPU, or one spread over all GPUs with ``device_map: auto``;
* no GPU: ``resources.cpu_processes`` replicas (hf; vLLM's CPU build runs one).
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Optional

from micota.errors import MicotaError, MissingPackage
from micota.generate.engine import EngineConfig
from micota.generate.parallel import gpus_per_replica
from micota.resources import Placement, Resources, visible_gpu_count

_REPLICATED = ("hf", "vllm")  # engines that hold a model in this machine's memory


def resolve_engine(engine: EngineConfig, resources: Optional[Resources] = None) -> EngineConfig:
    """``engine`` with ``data_parallel_size`` a number (``auto`` resolved against ``resources``)."""
    if engine.engine not in _REPLICATED:
        return engine.model_copy(update={"data_parallel_size": 1})
    if engine.data_parallel_size != "auto":
        return engine
    resources = resources or Resources()
    gpus = resources.gpu_count()
    if not gpus:
        replicas = resources.cpu_processes if engine.engine == "hf" else 1
    elif engine.device_map == "auto":
        replicas = 1
    else:
        replicas = max(1, gpus // gpus_per_replica(engine))
    return engine.model_copy(update={"data_parallel_size": replicas})


def engine_placement(engine: EngineConfig, resources: Optional[Resources] = None) -> Placement:
    """How generation with ``engine`` will run (what ``micota run --dry-run`` prints)."""
    engine = resolve_engine(engine, resources)
    replicas = int(engine.data_parallel_size)
    gpus = (resources or Resources()).gpu_count()
    if engine.engine not in _REPLICATED:
        return Placement(processes=1, gpus=0, note=f"engine {engine.engine}")
    per = gpus if engine.device_map == "auto" else gpus_per_replica(engine)
    note = f"engine {engine.engine}" + (", device_map auto" if engine.device_map == "auto" else "")
    if engine.pipeline_parallel_size > 1:
        note += f", PP {engine.pipeline_parallel_size}"
    return Placement(processes=replicas, gpus=replicas * per if gpus else 0,
                     tensor_parallel=engine.tensor_parallel_size if engine.engine == "vllm" else 1,
                     data_parallel=replicas, note=note)


def check_engine(engine: EngineConfig, resources: Optional[Resources] = None, *, field: str = "engine") -> None:
    """Cheap checks before any work starts: vLLM importable, GPUs present and divisible, model fits.

    Raises :class:`MicotaError` naming the field, the value and the fix.
    """
    from micota.generate.memory import check_fits

    resources = resources or Resources()
    visible = visible_gpu_count()
    if resources.gpus != "auto" and resources.gpus > visible:
        fix = f"auto or at most {visible}" if visible else "0 (or auto) on a machine without GPUs"
        raise MicotaError(f"resources.gpus: {resources.gpus} GPUs asked, {visible} visible "
                          f"(CUDA_VISIBLE_DEVICES / nvidia-smi). Set resources.gpus: {fix}.")
    gpus = resources.gpu_count()
    if engine.engine in _REPLICATED:
        _check_gpu_split(engine, gpus, field)
        check_fits(resolve_engine(engine, resources), gpus, field=field)
    # last, so that planning for another node (--dry-run --gpus N) still checks the placement above
    if engine.engine == "vllm" and not vllm_installed():
        from micota.generate.vllm import VLLM_RELEASE

        raise MissingPackage(
            f"{field}.engine: vllm is not installed in this Python ({sys.executable}). On a CUDA machine: "
            f"pip install vllm=={VLLM_RELEASE} (its own venv: it pins torch); on CPU: bash scripts/vllm_cpu_env.sh "
            "and run micota with that venv's python. Or set engine: hf.",
            package=f"vllm=={VLLM_RELEASE}",
        )


def vllm_installed() -> bool:
    """Whether this Python can import vllm (looked up, not imported: importing takes seconds)."""
    return importlib.util.find_spec("vllm") is not None


def _check_gpu_split(engine: EngineConfig, gpus: int, field: str) -> None:
    per = gpus_per_replica(engine)
    if engine.engine == "vllm" and per > 1:
        tp_pp = f"tensor_parallel_size {engine.tensor_parallel_size} x pipeline_parallel_size {engine.pipeline_parallel_size}"
        if gpus == 0:
            raise MicotaError(f"{field}: {tp_pp} = {per} GPUs per replica, but no GPU is visible. "
                              "Set both to 1 on a CPU machine.")
        if gpus % per:
            raise MicotaError(f"{field}: {tp_pp} = {per} does not divide the {gpus} GPUs given (resources.gpus). "
                              f"Use a TP x PP that divides {gpus}, or set resources.gpus to a multiple of {per}.")
    replicas = engine.data_parallel_size
    if gpus and replicas != "auto" and engine.device_map != "auto" and replicas * per > gpus:
        raise MicotaError(f"{field}.data_parallel_size: {replicas} replicas x {per} GPUs each = {replicas * per} GPUs, "
                          f"but {gpus} are given. Set data_parallel_size: auto (= {max(1, gpus // per)}) or fewer.")
