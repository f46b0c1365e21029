"""One rank of a launched ``sft`` stage: ``python -m micota.sft.worker OUT/config.yaml --processes N``.

The orchestrator prepared the stage folder and wrote ``config.yaml``; it writes the manifest
after this child exits. A rank never writes either: rank 0 writes the outputs and hands the
manifest's numbers over in a result file; the other ranks only train.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from micota.errors import MicotaError
from micota.sft.launch import ERROR_MARK, write_result


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m micota.sft.worker", description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="the stage's config.yaml (written by the orchestrator)")
    parser.add_argument("--processes", type=int, required=True, help="ranks the orchestrator asked the launcher for")
    ns = parser.parse_args(argv)
    try:
        _run_rank(ns.config, ns.processes)
    except MicotaError as exc:
        print(f"{ERROR_MARK}{exc}", file=sys.stderr, flush=True)
        return 2
    return 0


def _run_rank(config: Path, processes: int) -> None:
    import torch

    from micota.config import load_config
    from micota.sft.run import SFTConfig
    from micota.sft.train import train

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world != processes:  # e.g. `accelerate launch --cpu` starts one process whatever --num_processes says
        raise MicotaError(
            f"sft: the launcher started {world} process(es) but the stage asked for {processes}; the global batch "
            "would be wrong. On CPU use launcher: torchrun (the auto choice)."
        )
    cfg = load_config(SFTConfig, config)
    result = train(cfg, Path(cfg.out_dir), on_gpu=torch.cuda.is_available(), world_size=world, launched=True)
    if result is not None:  # rank 0
        write_result(Path(cfg.out_dir), {"outputs": result.outputs, "counts": result.counts, "metrics": result.metrics})


if __name__ == "__main__":
    sys.exit(main())
