"""Speed/memory options change how the stage trains, not what it learns."""

from __future__ import annotations

import json

import pytest

from micota.sft import SFTConfig, run
from micota.sft.train import trainer_args
from tests.sft.test_sft import write_data


def losses(out):
    return [e["loss"] for e in json.loads((out / "log_history.json").read_text()) if "loss" in e]


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_position_ids_keep_samples_apart(tiny_model, attn):
    """transformers 5 builds a block-diagonal mask from packed position ids for sdpa and eager
    (masking_utils.find_packed_sequence_indices) -- only without a KV cache, which TRL's
    compute_loss turns off. Without position ids the same flat batch attends across samples."""
    import torch
    from transformers import AutoModelForCausalLM
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    torch.manual_seed(0)
    examples = []
    for n in (7, 12, 5, 9):
        ids = torch.randint(3, 300, (n,)).tolist()
        examples.append({"input_ids": ids, "labels": [-100] * 3 + ids[3:]})  # prompt of 3 tokens masked
    model = AutoModelForCausalLM.from_pretrained(tiny_model, attn_implementation=attn, dtype=torch.float32)
    padded = DataCollatorForLanguageModeling(pad_token_id=0)([dict(e) for e in examples])
    packed = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)([dict(e) for e in examples])
    assert packed["input_ids"].shape == (1, 33) and "attention_mask" not in packed
    loss_padded = model(**padded, use_cache=False).loss.item()
    loss_packed = model(**packed, use_cache=False).loss.item()
    loss_leaky = model(input_ids=packed["input_ids"], labels=packed["labels"], use_cache=False).loss.item()
    assert abs(loss_packed - loss_padded) < 1e-5
    assert abs(loss_leaky - loss_padded) > 1e-3  # the check above can fail: attention across samples shows


def test_padding_free_eager_checkpointing_train_like_the_default(tiny_model, tmp_path):
    data = write_data(tmp_path / "d.jsonl", 16)
    base = dict(model=str(tiny_model), data=data, max_length=64, learning_rate=3e-3, max_steps=4, global_batch_size=4,
                micro_batch_size=4, progress=False, logging_steps=1)
    run(SFTConfig(out_dir=tmp_path / "default", **base))
    run(SFTConfig(out_dir=tmp_path / "options", padding_free=True, attn_implementation="eager", gradient_checkpointing=True, **base))
    default, options = losses(tmp_path / "default"), losses(tmp_path / "options")
    assert len(default) == len(options) == 4 and default[-1] < default[0]
    assert all(abs(a - b) <= 1e-4 * a for a, b in zip(default, options)), (default, options)


def test_trainer_arguments_follow_the_config(tmp_path, monkeypatch):
    monkeypatch.delenv("TENSORBOARD_LOGGING_DIR", raising=False)
    cfg = SFTConfig(out_dir=tmp_path / "ta-sft", model="m", data=tmp_path / "d.jsonl", global_batch_size=32, micro_batch_size=4)
    args = trainer_args(cfg, cfg.out_dir, on_gpu=False, world_size=2)
    assert args.gradient_accumulation_steps == 4  # 32 = 4 per rank x 2 ranks x 4 steps
    assert not args.gradient_checkpointing  # TRL's SFTConfig turns it on unless told otherwise
    assert not args.padding_free and args.report_to == [] and args.model_init_kwargs["dtype"] == "float32"
    assert args.run_name == "ta-sft" and args.max_length is None and not args.bf16
    cfg = cfg.model_copy(update={"gradient_checkpointing": True, "padding_free": True, "report_to": ["tensorboard"]})
    args = trainer_args(cfg, cfg.out_dir, on_gpu=False)
    assert args.gradient_checkpointing and args.padding_free and args.report_to == ["tensorboard"]
    import os

    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "ta-sft" / "tensorboard")
