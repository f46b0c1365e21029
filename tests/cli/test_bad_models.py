"""Damaged weight files and mismatched tokenizers, fed through the real CLI to every stage that loads a model.

Each case asserts one clear error (the field, the file, the numbers, the fix), a non-zero exit,
no traceback, and no stage folder or model folder that looks done.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from micota.cli import app
from tests.cli.test_cli import micota
from tests.conftest import CHAT_TEMPLATE

FIX = "Re-download or re-save the model"


def _damage(data: bytes, how: str) -> bytes:
    """A safetensors file cut in half, with a header that lies about a shape, or replaced by garbage."""
    if how == "cut":
        return data[: len(data) // 2]
    if how == "garbage":
        return random.Random(0).randbytes(len(data))
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    name = next(k for k in header if k != "__metadata__")
    header[name]["shape"][0] *= 2
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data[8 + length :]


EXPECTED = {"cut": ["truncated", "bytes missing"], "lying": ["the header lies about tensor", "needs"],
            "garbage": ["not a safetensors file", "header length field says"]}


@pytest.fixture(scope="module")
def damaged(tiny_model, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("damaged")
    folders = {}
    for how in EXPECTED:
        folder = shutil.copytree(tiny_model, root / how)
        (folder / "model.safetensors").write_bytes(_damage((tiny_model / "model.safetensors").read_bytes(), how))
        folders[how] = folder
    return folders


def cli(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_one_clear_error(result, *words: str) -> str:
    """Exit 2, one ``error:`` line holding every word, no traceback; returns the message."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.stderr
    for word in words:
        assert str(word) in errors[0], (word, errors[0])
    return errors[0]


def _write(path: Path, data) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def _chat_data(path: Path, n: int = 4) -> Path:
    rows = [{"id": f"s{i}", "messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                                          {"role": "assistant", "content": f"\\boxed{{{2 * i}}}"}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _lab_bench(path: Path) -> Path:
    path.write_text("".join(json.dumps({"id": f"b{i}", "problem": f"{i}+{i}", "answer": str(2 * i)}) + "\n" for i in range(2)))
    return path


def _stage_command(stage: str, model: Path, tmp_path: Path, tokenizer: Path | None = None) -> tuple[list, Path]:
    """(CLI arguments, the folder that must not appear) for ``stage`` fed ``model``."""
    out = tmp_path / f"{stage}-out"
    engine = {"engine": "hf", "model": str(model), "max_new_tokens": 4, "device": "cpu", "batch_size": 2,
              **({"tokenizer": str(tokenizer)} if tokenizer else {})}
    if stage == "merge":
        cfg = {"method": "linear", "base": str(model), "models": [{"model": str(model), "weight": 1.0}]}
        return ["merge", _write(tmp_path / "merge.yaml", cfg), out], out
    if stage == "sft":
        cfg = {"out_dir": str(out), "model": str(model), "data": str(_chat_data(tmp_path / "d.jsonl")), "max_length": 64,
               "max_steps": 1, "global_batch_size": 1, "progress": False, **({"tokenizer": str(tokenizer)} if tokenizer else {})}
        return ["sft", "-c", _write(tmp_path / "sft.yaml", cfg)], out
    if stage == "evaluate":
        cfg = {"out_dir": str(out), "models": {"m": str(model)}, "engine": {k: v for k, v in engine.items() if k != "model"},
               "progress": False,
               "benchmarks": [{"name": "lab", "path": str(_lab_bench(tmp_path / "bench.jsonl"))}]}
        return ["evaluate", "-c", _write(tmp_path / "evaluate.yaml", cfg)], out
    if stage == "generate":
        prompts = tmp_path / "p.jsonl"
        prompts.write_text(json.dumps({"id": "p0", "problem": "1+1?", "answer": "2"}) + "\n")
        cfg = {"out_dir": str(out), "prompts": str(prompts), "engine": engine, "progress": False}
        return ["generate", "-c", _write(tmp_path / "generate.yaml", cfg)], out
    cfg = {"out_dir": str(out), "models": {"m": str(model)}, "datasets": {"d": str(_chat_data(tmp_path / "d.jsonl"))},
           "device": "cpu", "progress": False}
    return ["analyze", "bpc", "-c", _write(tmp_path / "bpc.yaml", cfg)], out


def _looks_done(out: Path) -> list[str]:
    """What in or beside ``out`` would pass for a finished stage or model."""
    found = [p.name for p in (out, *out.parent.glob(f".{out.name}*")) if p.exists() and p != out]
    if out.exists():
        found += [p.name for p in out.rglob("*") if p.name in ("manifest.json", "config.json") or p.suffix == ".safetensors"]
    return found


@pytest.mark.parametrize("how", list(EXPECTED))
@pytest.mark.parametrize("stage", ["merge", "sft", "evaluate", "generate", "bpc"])
def test_damaged_safetensors_fail_before_loading_naming_the_file(stage, how, damaged, tmp_path):
    args, out = _stage_command(stage, damaged[how], tmp_path)
    result = cli(*args)
    message = assert_one_clear_error(result, damaged[how] / "model.safetensors", FIX, *EXPECTED[how])
    assert message.split(":")[1].strip() in {"merge.base", "sft.model", "models.m", "engine.model"}, message  # the field
    assert not _looks_done(out), _looks_done(out)
    if stage in ("merge", "sft", "evaluate"):  # checked before the stage folder is even made
        assert not out.exists()


def test_micota_run_stops_at_the_stage_fed_a_damaged_model(damaged, tmp_path):
    (tmp_path / "p.jsonl").write_text(json.dumps({"id": "p0", "problem": "1+1?", "answer": "2"}) + "\n")
    stages = {"data": {"kind": "generate", "prompts": str(tmp_path / "p.jsonl"),
                       "engine": {"engine": "scripted", "model": str(damaged["cut"]), "max_new_tokens": 8}},
              "student": {"kind": "sft", "model": str(damaged["cut"]), "data": "@data", "max_length": 64, "max_steps": 1,
                          "global_batch_size": 1}}
    recipe = _write(tmp_path / "recipe.yaml", {"run_dir": str(tmp_path / "run"), "stages": stages})
    result = micota("run", str(recipe))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    # the sft stage's preflight finds it before any stage runs (the generate stage did not run either)
    assert "error: the run cannot start; nothing has run:" in result.stderr
    assert f"stage 'student' (sft): sft.model: {damaged['cut'] / 'model.safetensors'}: truncated" in result.stderr
    assert not (tmp_path / "run" / "data" / "manifest.json").exists()
    assert not (tmp_path / "run" / "student" / "manifest.json").exists() and not (tmp_path / "run" / "student" / "model").exists()


# ---- tokenizers that do not fit the model ---------------------------------------------------------


def _other_tokenizer(folder: Path) -> Path:
    """Another model's tokenizer: same special tokens and chat template, trained on other text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["Quantum chromodynamics binds quarks with gluons.", "Zebras graze quietly beside the river."] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tokenizers(tiny_model, tmp_path_factory) -> dict[str, Path]:
    """``wide``: the model's tokenizer plus 12 added tokens (no embedding rows for them); ``other``: another
    model's tokenizer; ``wide-model``: a model folder whose own tokenizer is the wide one."""
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("tokenizers")
    wide = AutoTokenizer.from_pretrained(tiny_model)
    wide.add_tokens([f"<extra_{i}>" for i in range(12)])
    wide.save_pretrained(root / "wide")
    wide_model = shutil.copytree(tiny_model, root / "wide-model")
    wide.save_pretrained(wide_model)
    return {"wide": root / "wide", "other": _other_tokenizer(root / "other"), "wide-model": wide_model}


def _rows(model: Path) -> int:
    return json.loads((model / "config.json").read_text())["vocab_size"]


@pytest.mark.parametrize("stage", ["generate", "evaluate", "sft"])
def test_a_tokenizer_larger_than_the_embeddings_fails_before_any_generation(stage, tiny_model, tokenizers, tmp_path):
    rows = _rows(tiny_model)
    args, out = _stage_command(stage, tiny_model, tmp_path, tokenizer=tokenizers["wide"])
    result = cli(*args)
    assert_one_clear_error(result, f"tokenizer '{tokenizers['wide']}' has {rows + 12} token ids", f"model '{tiny_model}' has {rows} "
                           "embedding rows", "Remove `tokenizer:`", "resize_token_embeddings")
    assert not _looks_done(out) and not (out / "shards").exists()


@pytest.mark.parametrize("stage", ["generate", "evaluate", "sft"])
def test_another_models_tokenizer_fails_naming_both_paths_and_sizes(stage, tiny_model, tokenizers, tmp_path):
    args, out = _stage_command(stage, tiny_model, tmp_path, tokenizer=tokenizers["other"])
    result = cli(*args)
    message = assert_one_clear_error(result, f"tokenizer '{tokenizers['other']}' (300 token ids) is not the tokenizer of model "
                                     f"'{tiny_model}' (its own has {_rows(tiny_model)})", "ids they share mean different tokens")
    assert "e.g. id " in message and "Remove `tokenizer:`" in message
    assert not _looks_done(out) and not (out / "shards").exists()


def test_bpc_on_a_model_folder_whose_own_tokenizer_outgrew_its_embeddings(tokenizers, tmp_path):
    model = tokenizers["wide-model"]
    args, out = _stage_command("bpc", model, tmp_path)
    assert_one_clear_error(cli(*args), "models.m", f"{_rows(model) + 12} token ids", f"{_rows(model)} embedding rows",
                           "save the tokenizer the model was trained with into it")
    assert not _looks_done(out)


def test_the_same_tokenizer_saved_elsewhere_is_accepted(tiny_model, tmp_path):
    from micota.hub import load_tokenizer

    copy = tmp_path / "tok"
    copy.mkdir()
    for path in tiny_model.iterdir():
        if path.name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy(path, copy / path.name)
    assert load_tokenizer(str(copy), model=str(tiny_model)).chat_template


def test_a_model_whose_eos_the_tokenizer_lacks(tiny_model, tokenizers, tmp_path):
    from micota.errors import MicotaError
    from micota.hub import load_tokenizer

    bare = tmp_path / "bare"  # no tokenizer of its own, so only the sizes can be compared
    bare.mkdir()
    config = json.loads((tiny_model / "config.json").read_text())
    (bare / "config.json").write_text(json.dumps({**config, "vocab_size": 400, "eos_token_id": [2, 350]}))
    with pytest.raises(MicotaError, match=r"engine.tokenizer: model .*bare' ends its answers with eos_token_id \[350\].*"
                                          r"\(300 token ids\) does not have: it is another model's tokenizer"):
        load_tokenizer(str(tokenizers["other"]), field="engine.tokenizer", model=str(bare))
