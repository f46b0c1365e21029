"""Distributed SFT on 2 CPU processes (DDP over gloo), launched by the stage as it is on GPUs.

Same data, same global batch (8 = micro 2 x accumulation 4 in one process, micro 2 x accumulation
2 x 2 ranks in two): the ranks see the same samples per optimizer step (accelerate shards the
seeded sampler's batches round-robin) and the loss is normalised over the global batch's tokens,
so the loss curves agree to float rounding. Measured: equal to 4 decimals at every step
(docs/benchmarks.md, SFT); the tolerance below is 1e-3 relative.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from micota.errors import MicotaError
from micota.manifest import read_manifest
from micota.sft import SFTConfig, run
from tests.sft.test_sft import write_data

LOSS_RTOL = 1e-3
MODEL_FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]


def config(tiny_model, root: Path, name: str, **kw) -> SFTConfig:
    data = root / "d.jsonl"
    if not data.exists():
        write_data(data, 24)
    base = dict(out_dir=root / name, model=str(tiny_model), data=data, max_length=64, learning_rate=3e-3, epochs=2,
                global_batch_size=8, micro_batch_size=2, progress=False, logging_steps=1)
    return SFTConfig(**{**base, **kw})


def losses(out: Path) -> list[float]:
    return [e["loss"] for e in json.loads((out / "log_history.json").read_text()) if "loss" in e]


def weights(folder: Path):
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


@pytest.fixture(scope="module")
def one_process(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("sft-dist")
    manifest = run(config(tiny_model, root, "one"))
    return root, manifest


def assert_matches_one_process(root: Path, out: Path, one_manifest) -> None:
    manifest = read_manifest(out)
    assert manifest.metrics["processes"] == 2 and manifest.metrics["steps"] == one_manifest.metrics["steps"] == 6
    one, two = losses(root / "one"), losses(out)
    assert len(two) == len(one) == 6
    assert all(abs(a - b) <= LOSS_RTOL * abs(a) for a, b in zip(one, two)), (one, two)
    # one complete model folder, written once, nothing left behind by the ranks
    assert sorted(p.name for p in out.iterdir()) == ["config.yaml", "dropped.json", "log_history.json", "manifest.json",
                                                     "model", "train.log"]
    assert set(MODEL_FILES) <= {p.name for p in (out / "model").iterdir()}
    ref, got = weights(root / "one" / "model"), weights(out / "model")
    assert ref.keys() == got.keys() and max((ref[k] - got[k]).abs().max().item() for k in ref) < 1e-4


def test_two_cpu_ranks_torchrun_match_one_process(tiny_model, one_process):
    """launcher: auto with resources.cpu_processes 2 is torchrun: the route `micota run` takes on CPU."""
    root, one = one_process
    assert one.metrics["processes"] == 1 and json.loads((root / "one" / "train.log").read_text().splitlines()[0])["step"] == 1
    manifest = run(config(tiny_model, root, "torchrun", resources={"cpu_processes": 2}))
    log = (root / "torchrun" / "train.log").read_text()
    assert "-m torch.distributed.run" in log and "--nproc-per-node 2" in log
    assert_matches_one_process(root, root / "torchrun", one)
    assert manifest.outputs["train_log"] == "train.log"


def test_two_cpu_ranks_accelerate_with_packaged_config_match_one_process(tiny_model, one_process):
    """The command GPUs get (accelerate launch --config_file <packaged ddp.yaml>), on 2 CPU ranks."""
    root, one = one_process
    run(config(tiny_model, root, "accelerate", launcher="accelerate", num_processes=2))
    log = (root / "accelerate" / "train.log").read_text()
    assert "-m accelerate.commands.launch --config_file" in log and "_data/accelerate/ddp.yaml" in log
    assert_matches_one_process(root, root / "accelerate", one)


def test_child_failure_is_a_micota_error_with_exit_code_and_log(tiny_model, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    cfg = config(tiny_model, tmp_path, "failing", data=bad, num_processes=2)
    with pytest.raises(MicotaError) as caught:
        run(cfg)
    message = str(caught.value)
    assert "stage 'sft'" in message and "torchrun child (2 processes) exited with code" in message
    assert f"Full output: {tmp_path / 'failing' / 'train.log'}" in message
    assert "bad.jsonl:1: an SFT sample needs `messages`" in message  # the rank's own error, not a launcher trace
    assert read_manifest(tmp_path / "failing") is None
