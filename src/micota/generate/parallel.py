"""Data parallelism: one engine replica per worker process, each given a share of the work.

``data_parallel_size: N`` (or ``auto``: every visible GPU, see micota.generate.placement)
starts N worker processes, each with its own slice of the GPUs (``CUDA_VISIBLE_DEVICES``;
``tensor_parallel_size`` x ``pipeline_parallel_size`` GPUs for a vLLM replica, one for an hf
replica) or, on CPU, its share of the CPU threads. vLLM itself recommends separate processes
for data parallelism with dense models (``LLM(data_parallel_size>1)`` raises "not supported
for single-process usage" in vllm/entrypoints/llm.py).

* chunked engines (``hf``): the writer's fixed chunks are dealt round-robin to the workers;
  a chunk is always generated whole, as one batch, so the output is byte-identical to one
  worker's as long as each process runs the same numerics (one GPU each; on CPU the same
  thread count);
* continuous engines (``vllm``): every pending request is dealt round-robin, and each
  replica keeps its whole share in flight.

Completions stream back as each replica finishes them, so the writer's shards stay the unit of
resumption. Workers die with micota (``die_with_parent``) and a worker that dies or fails stops
the run with its error; every sample already written stays on disk.
"""

from __future__ import annotations

import contextlib
import os
import queue
import traceback
from typing import Any, Iterator, Optional, Sequence

from micota.errors import MicotaError
from micota.generate.engine import Completion, EngineConfig, GenerationRequest, engine_class, load_engine
from micota.generate.reaper import die_with_parent

POLL_SECONDS = 5.0  # how often a waiting orchestrator checks that its workers are alive


def open_engine(config: EngineConfig) -> Any:
    """The engine for ``config``: a :class:`DataParallelEngine` for more than one replica, else the row's class."""
    from micota.generate.placement import resolve_engine

    config = resolve_engine(config)
    if config.data_parallel_size > 1:
        return DataParallelEngine(config)
    return load_engine(config)


class DataParallelEngine:
    """``data_parallel_size`` replicas of one engine row, each in its own process."""

    def __init__(self, config: EngineConfig):
        import multiprocessing

        self.config = config
        self.replicas = int(config.data_parallel_size)
        self.continuous = bool(getattr(engine_class(config.engine), "continuous", False))
        context = multiprocessing.get_context("spawn")  # fork after torch/CUDA start is unsafe
        self._results = context.Queue()
        self._tasks = [context.Queue() for _ in range(self.replicas)]
        replica_config = config.model_copy(update={"data_parallel_size": 1}).model_dump(mode="json")
        self._workers = []
        for index, env in enumerate(worker_environments(config, self.replicas)):
            with _environ(env):  # a spawned child copies the environment when it starts
                worker = context.Process(target=_worker_main, name=f"micota-dp{index}",
                                         args=(index, replica_config, self._tasks[index], self._results, os.getpid()))
                worker.start()
            self._workers.append(worker)

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        """Continuous engines: every request dealt round-robin, one task per replica."""
        if not self.continuous:
            size = self.config.batch_size
            return self.generate_chunks([list(requests[i : i + size]) for i in range(0, len(requests), size)])
        return self._run([list(requests[i :: self.replicas]) for i in range(self.replicas)])

    def generate_chunks(self, chunks: Sequence[list[GenerationRequest]]) -> Iterator[Completion]:
        """Chunked engines: chunk ``i`` goes to replica ``i % replicas`` and is generated whole."""
        return self._run(list(chunks))

    def close(self) -> None:
        """Stop the workers (after their current task) and wait for them; kill any that hang."""
        for tasks, worker in zip(self._tasks, self._workers):
            if worker.is_alive():
                tasks.put(None)
        for worker in self._workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.kill()
                worker.join()
        self._workers = []

    def _run(self, tasks: list[list[GenerationRequest]]) -> Iterator[Completion]:
        tasks = [t for t in tasks if t]
        for task_id, requests in enumerate(tasks):
            self._tasks[task_id % self.replicas].put((task_id, requests))
        remaining = len(tasks)
        try:
            while remaining:
                try:
                    kind, index, payload = self._results.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    self._check_alive()
                    continue
                if kind == "sample":
                    yield payload
                elif kind == "task":
                    remaining -= 1
                else:
                    raise (MicotaError if kind == "micota_error" else RuntimeError)(
                        f"data-parallel worker {index}: {payload}")
        except BaseException:
            self._kill()  # stop every replica now; finished samples are already with the writer
            raise

    def _check_alive(self) -> None:
        for index, worker in enumerate(self._workers):
            if worker.exitcode is not None:
                raise RuntimeError(f"data-parallel worker {index} (pid {worker.pid}) exited with code {worker.exitcode} "
                                   "while generating (out of memory?). Finished samples are on disk; a re-run resumes.")

    def _kill(self) -> None:
        for worker in self._workers:
            worker.kill()
            worker.join()
        self._workers = []


def worker_environments(config: EngineConfig, replicas: int) -> list[dict[str, str]]:
    """Environment overrides per replica: its GPU slice, or its share of the CPU threads and cores."""
    from micota.resources import visible_gpu_count

    gpus = visible_gpu_count()
    if gpus:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        devices = visible.split(",") if visible else [str(i) for i in range(gpus)]
        per = max(1, gpus // replicas) if config.device_map == "auto" else gpus_per_replica(config)
        return [{"CUDA_VISIBLE_DEVICES": ",".join(devices[i * per : (i + 1) * per])} for i in range(replicas)]
    import torch

    threads = max(1, torch.get_num_threads() // replicas)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    envs = []
    for i in range(replicas):
        env = {"OMP_NUM_THREADS": str(threads), "MICOTA_WORKER_THREADS": str(threads)}
        mine = cores[i * threads : (i + 1) * threads]
        if config.engine == "vllm" and len(mine) == threads and mine == list(range(mine[0], mine[0] + threads)):
            env["VLLM_CPU_OMP_THREADS_BIND"] = f"{mine[0]}-{mine[-1]}"  # vLLM's CPU build pins threads; keep replicas apart
        envs.append(env)
    return envs


def gpus_per_replica(config: EngineConfig) -> int:
    """GPUs one replica occupies: TP x PP for vLLM, one for hf."""
    return config.tensor_parallel_size * config.pipeline_parallel_size if config.engine == "vllm" else 1


@contextlib.contextmanager
def _environ(overrides: dict[str, str]):
    saved = {k: os.environ.get(k) for k in overrides}
    os.environ.update(overrides)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _worker_main(index: int, config: dict[str, Any], tasks: Any, results: Any, parent_pid: int) -> None:
    """One replica: load the engine, then generate each task and stream its completions back."""
    die_with_parent(parent_pid)
    engine: Optional[Any] = None
    try:
        threads = os.environ.get("MICOTA_WORKER_THREADS")
        if threads:
            import torch

            torch.set_num_threads(int(threads))
        engine = load_engine(EngineConfig(**config))
        while (task := tasks.get()) is not None:
            task_id, requests = task
            for completion in engine.generate(requests):
                results.put(("sample", index, completion))
            results.put(("task", index, task_id))
    except MicotaError as exc:
        results.put(("micota_error", index, str(exc)))
    except BaseException:
        results.put(("error", index, traceback.format_exc()))
    finally:
        if engine is not None and hasattr(engine, "close"):
            engine.close()
