"""Merges of tiny Qwen2 models on disk: exactness, streaming = in-memory math, safety."""

from __future__ import annotations

import json
from dataclasses import replace
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from micota.errors import MicotaError
from micota.merge import MergeConfig, run
from micota.merge.masks import keep_mask, mask_key
from micota.merge.run import merge_settings, plan_jobs
from micota.merge.stream import merged_chunks
from micota.merge.tensor_io import INDEX_NAME, ShardWriter


def load_tensors(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(load_file(shard))
    return tensors


def merge(tmp_path, tiny_models, name="out", **fields) -> Path:
    fields.setdefault("base", str(tiny_models["base"]))
    fields.setdefault("models", [{"model": str(tiny_models["ft"])}])
    run(MergeConfig(out_dir=tmp_path / name, **fields))
    return tmp_path / name


def test_lambda_zero_is_base_and_full_task_vector_is_finetuned(tmp_path, tiny_models):
    base, ft = load_tensors(tiny_models["base"]), load_tensors(tiny_models["ft"])
    zero = load_tensors(merge(tmp_path, tiny_models, "zero", method="dare_ties", lambda_=0.0, models=[{"model": str(tiny_models["ft"]), "density": 0.5}]))
    full = load_tensors(merge(tmp_path, tiny_models, "full", method="dare_ties"))
    assert zero.keys() == base.keys() == full.keys()
    for name in base:
        assert torch.equal(zero[name], base[name]), name
        assert torch.equal(full[name], ft[name]), name


def test_dare_ties_on_disk_equals_the_formula(tmp_path, tiny_models):
    models = [{"model": str(tiny_models["ft"]), "weight": 0.7, "density": 0.5}, {"model": str(tiny_models["ft2"]), "weight": 0.4, "density": 0.3}]
    big = load_tensors(merge(tmp_path, tiny_models, "big", method="dare_ties", models=models, seed=5, lambda_=0.8))
    base, ft, ft2 = (load_tensors(tiny_models[k]) for k in ("base", "ft", "ft2"))
    name = "model.layers.1.mlp.down_proj.weight"
    u = []
    for i, (theta, w, p) in enumerate([(ft, 0.7, 0.5), (ft2, 0.4, 0.3)]):
        delta = theta[name] - base[name]
        kept = delta * keep_mask(mask_key(5, name, i), p, 0, delta.numel()).reshape(delta.shape)
        u.append(w * kept * (delta.abs().sum() / kept.abs().sum()))  # mergekit's l1 rescale
    elected = torch.where(u[0] + u[1] >= 0, 1.0, -1.0)
    mixed = sum(x * (x.sign() == elected) for x in u)  # dare_ties: normalize off by default
    torch.testing.assert_close(big[name], base[name] + 0.8 * mixed, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("method", ["dare_ties", "ties", "dare_linear"])
def test_chunked_merge_equals_whole_tensor_merge(tiny_models, method):
    """Chunks of 100 entries (rows split mid-tensor, masks split mid-block) change no bit."""
    models = [{"model": str(tiny_models["ft"]), "density": 0.3}, {"model": str(tiny_models["ft2"]), "density": 0.6}]
    cfg = MergeConfig(method=method, base=str(tiny_models["base"]), models=models, seed=3, out_dir=Path("unused"))
    settings = merge_settings(cfg)
    changed = total = 0
    for job in plan_jobs(cfg):
        whole = torch.cat([c.reshape(-1) for c in merged_chunks(job, settings)])
        pieces = list(merged_chunks(job, replace(settings, chunk_numel=100)))
        assert torch.equal(torch.cat([c.reshape(-1) for c in pieces]), whole), job.name
        base = load_file(job.base.path)[job.name].reshape(-1)
        changed, total = changed + int((whole != base).sum()), total + whole.numel()
    assert 0 < changed < total  # sparsified: some entries moved, others stayed at the base


def test_model_folder_round_trips_through_from_pretrained(tmp_path, tiny_models):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = merge(tmp_path, tiny_models, method="ties", models=[{"model": str(tiny_models["ft"]), "density": 0.5}], out_dtype="bfloat16", shard_size_mb=0 + 1)
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "generation_config.json", "tokenizer.json", INDEX_NAME, "manifest.json", "merge_config.yaml"} <= files
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.dtype == torch.bfloat16 and tokenizer.eos_token == "<eos>"
    merged = load_tensors(out)
    state = model.state_dict()
    for name, tensor in merged.items():
        assert torch.equal(state[name], tensor), name
    assert json.loads((out / "manifest.json").read_text())["counts"]["tensors"] == len(merged)


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny_models):
    models = [{"model": str(tiny_models["ft"]), "density": 0.5}]
    one = load_tensors(merge(tmp_path, tiny_models, "one", models=models, seed=1))
    again = load_tensors(merge(tmp_path, tiny_models, "again", models=models, seed=1))
    other = load_tensors(merge(tmp_path, tiny_models, "other", models=models, seed=2))
    name = "model.layers.0.mlp.up_proj.weight"
    assert all(torch.equal(one[k], again[k]) for k in one)
    assert not torch.equal(one[name], other[name])


def test_interrupted_merge_leaves_no_complete_looking_output(tmp_path, tiny_models, monkeypatch):
    calls = {"n": 0}
    original = ShardWriter.write

    def failing_write(self, chunk):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt  # what Ctrl-C mid-merge raises
        original(self, chunk)

    monkeypatch.setattr(ShardWriter, "write", failing_write)
    with pytest.raises(KeyboardInterrupt):
        merge(tmp_path, tiny_models)
    out = tmp_path / "out"
    leftovers = {p.name for p in out.iterdir()} if out.exists() else set()
    assert not leftovers & {"config.json", "manifest.json", INDEX_NAME}
    assert not any(p.suffix == ".safetensors" for p in tmp_path.rglob("*"))
    monkeypatch.setattr(ShardWriter, "write", original)
    assert (merge(tmp_path, tiny_models) / "manifest.json").is_file()


def test_embedding_row_mismatch_is_a_clear_error_unless_opted_in(tmp_path, tiny_models):
    wide = [{"model": str(tiny_models["wide"])}]
    with pytest.raises(MicotaError, match=r"model.embed_tokens.weight.*\[64, 32\].*\[72, 32\].*embedding_mismatch"):
        merge(tmp_path, tiny_models, "bad", models=wide, method="task_arithmetic")
    out = merge(tmp_path, tiny_models, "ok", models=wide, method="task_arithmetic", embedding_mismatch="base_rows")
    wide_t = load_tensors(tiny_models["wide"])["model.embed_tokens.weight"]
    torch.testing.assert_close(load_tensors(out)["model.embed_tokens.weight"], wide_t[:64], rtol=0, atol=1e-6)


def test_pickle_checkpoints_are_refused(tmp_path, tiny_models):
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "pytorch_model.bin").write_bytes(b"not really")
    (folder / "config.json").write_text((tiny_models["ft"] / "config.json").read_text())
    with pytest.raises(MicotaError, match="--allow-pickle"):
        merge(tmp_path, tiny_models, models=[{"model": str(folder)}])


def test_allowed_pickle_checkpoint_merges_like_its_safetensors(tmp_path, tiny_models):
    folder = tmp_path / "pickled"
    folder.mkdir()
    torch.save(load_tensors(tiny_models["ft"]), folder / "pytorch_model.bin")
    (folder / "config.json").write_text((tiny_models["ft"] / "config.json").read_text())
    models = [{"model": str(folder), "density": 0.5}]
    from_pickle = load_tensors(merge(tmp_path, tiny_models, "p", models=models, allow_pickle=True, seed=1))
    from_safe = load_tensors(merge(tmp_path, tiny_models, "s", models=[{"model": str(tiny_models["ft"]), "density": 0.5}], seed=1))
    assert all(torch.equal(from_pickle[k], from_safe[k]) for k in from_safe)


def test_weight_without_effect_warns():
    from micota.merge.config import warn_ineffective_parameters

    cfg = MergeConfig(method="ties", base="b", models=[{"model": "m", "weight": 0.5}], out_dir=Path("o"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_ineffective_parameters(cfg)
    assert any("no effect" in str(w.message) for w in caught)


def test_untied_base_with_tied_finetune_uses_its_embedding(tmp_path, tiny_models):
    """A base that stores lm_head.weight merges with a fine-tune that ties it to the embedding."""
    from safetensors.torch import save_file

    base_dir = tmp_path / "untied"
    base_dir.mkdir()
    tensors = load_tensors(tiny_models["base"])
    tensors["lm_head.weight"] = tensors["model.embed_tokens.weight"].clone()
    save_file(tensors, str(base_dir / "model.safetensors"), metadata={"format": "pt"})
    (base_dir / "config.json").write_text((tiny_models["base"] / "config.json").read_text())
    out = merge(tmp_path, tiny_models, base=str(base_dir), method="task_arithmetic")
    merged, ft = load_tensors(out), load_tensors(tiny_models["ft"])
    assert torch.equal(merged["lm_head.weight"], ft["model.embed_tokens.weight"])


def test_bfloat16_computation_like_mergekit_dtype(tmp_path, tiny_models):
    out = merge(tmp_path, tiny_models, method="dare_ties", dtype="bfloat16", out_dtype="bfloat16", models=[{"model": str(tiny_models["ft"]), "density": 0.5}])
    merged = load_tensors(out)
    reference = load_tensors(merge(tmp_path, tiny_models, "f32", method="dare_ties", out_dtype="bfloat16", models=[{"model": str(tiny_models["ft"]), "density": 0.5}]))
    name = "model.layers.0.mlp.up_proj.weight"
    assert merged[name].dtype == torch.bfloat16
    torch.testing.assert_close(merged[name].float(), reference[name].float(), rtol=0.02, atol=2e-3)


@pytest.mark.parametrize("method", ["ties", "dare_ties", "dare_linear", "task_arithmetic"])
def test_single_model_fast_path_equals_the_general_mix(tmp_path, tiny_models, method):
    """One model takes a fused path; it must equal mix_deltas' consensus/normalize math."""
    from micota.merge.methods import MERGE_METHODS, mix_deltas, sparsify_magnitude

    out = merge(tmp_path, tiny_models, method=method, lambda_=0.6, seed=2, models=[{"model": str(tiny_models["ft"]), "weight": 0.7, "density": 0.4}])
    row = MERGE_METHODS[method]
    base, ft, merged = load_tensors(tiny_models["base"]), load_tensors(tiny_models["ft"]), load_tensors(out)
    name = "model.layers.1.self_attn.o_proj.weight"
    delta = ft[name] - base[name]
    if row.sparsify == "magnitude":
        kept = sparsify_magnitude(delta, 0.4)
    elif row.sparsify == "random":
        kept = delta * keep_mask(mask_key(2, name, 0), 0.4, 0, delta.numel()).reshape(delta.shape)
        kept = kept * (delta.abs().sum() / kept.abs().sum())  # l1 rescale (DARE rows' default)
    else:
        kept = delta
    mixed = mix_deltas([kept], [0.7], row.consensus, row.normalize)
    torch.testing.assert_close(merged[name], base[name] + 0.6 * mixed, rtol=1e-5, atol=1e-6)


def test_thread_count_does_not_change_the_merged_bytes(tmp_path, tiny_models):
    """Tensors big enough (512K entries) that torch splits its kernels across threads."""
    from safetensors.torch import save_file

    generator = torch.Generator().manual_seed(0)
    theta = torch.randn(1024, 512, generator=generator)
    folders = {}
    for name, noise in (("b", 0.0), ("f1", 0.1), ("f2", 0.1)):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        weights = {"w": theta + noise * torch.randn(1024, 512, generator=generator)}
        save_file(weights, str(folders[name] / "model.safetensors"), metadata={"format": "pt"})
        (folders[name] / "config.json").write_text((tiny_models["base"] / "config.json").read_text())
    models = [{"model": str(folders["f1"]), "density": 0.5}, {"model": str(folders["f2"]), "density": 0.7}]
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = load_tensors(merge(tmp_path, tiny_models, "t1", base=str(folders["b"]), models=models, seed=9))
        torch.set_num_threads(2)
        two = load_tensors(merge(tmp_path, tiny_models, "t2", base=str(folders["b"]), models=models, seed=9))
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one["w"], two["w"]) and not torch.equal(one["w"], theta)
