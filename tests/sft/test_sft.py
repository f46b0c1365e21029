from __future__ import annotations

import json

import pytest

from micota.errors import MicotaError
from micota.manifest import read_manifest
from micota.sft import SFTConfig, run


def write_data(path, n: int, long_every: int = 0):
    with path.open("w") as handle:
        for i in range(n):
            answer = "The sum is \\boxed{7}." + (" Wait, let me verify." * 40 if long_every and i % long_every == 0 else "")
            messages = [{"role": "user", "content": f"What is 3 + 4? ({i})"}, {"role": "assistant", "content": answer}]
            handle.write(json.dumps({"id": f"s{i}", "messages": messages}) + "\n")
    return path


def config(tiny_model, tmp_path, **kw):
    base = dict(out_dir=tmp_path / "sft", model=str(tiny_model), data=write_data(tmp_path / "d.jsonl", 16, long_every=4),
                max_length=64, learning_rate=3e-3, epochs=3, global_batch_size=4, micro_batch_size=2, progress=False, logging_steps=1)
    base.update(kw)
    return SFTConfig(**base)


def test_trains_drops_overlong_and_saves_loadable_model(tiny_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    manifest = run(config(tiny_model, tmp_path))
    assert manifest.counts["samples"] == 12 and manifest.counts["dropped_too_long"] == 4
    assert manifest.metrics["steps"] == 9  # 12 samples / batch 4 x 3 epochs
    out = tmp_path / "sft"
    assert sorted(json.loads((out / "dropped.json").read_text())["too_long"]) == ["s0", "s12", "s4", "s8"]
    losses = [e["loss"] for e in json.loads((out / "log_history.json").read_text()) if "loss" in e]
    assert losses[-1] < losses[0]
    assert list((out / "model").glob("*.safetensors")) and not (out / "checkpoints").exists()
    AutoModelForCausalLM.from_pretrained(out / "model")
    assert AutoTokenizer.from_pretrained(out / "model").chat_template
    # same config again: nothing to do
    assert read_manifest(out).created_at == run(config(tiny_model, tmp_path)).created_at


def test_batch_must_divide_and_bad_data_names_line(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="multiple of micro_batch_size"):
        config(tiny_model, tmp_path, global_batch_size=5)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    with pytest.raises(MicotaError, match=r"bad.jsonl:1: an SFT sample needs"):
        run(config(tiny_model, tmp_path, data=bad))


def test_train_loss_covers_every_step_when_the_log_window_does_not_divide_them(tiny_model, tmp_path):
    """The manifest's train_loss is the step-weighted mean of the logged losses (a resumed run reports the
    same figure as an uninterrupted one); with 9 steps logged every 4 the last window still counts."""
    manifest = run(config(tiny_model, tmp_path, logging_steps=4))
    history = json.loads((tmp_path / "sft" / "log_history.json").read_text())
    logged = [(e["step"], e["loss"]) for e in history if "loss" in e]
    assert logged[-1][0] == manifest.metrics["steps"] == 9
    expected = sum(loss * (step - prev) for (step, loss), (prev, _) in zip(logged, [(0, 0.0), *logged])) / 9
    assert manifest.metrics["train_loss"] == pytest.approx(expected, abs=1e-5)
    assert history[-1]["train_loss"] == manifest.metrics["train_loss"]
