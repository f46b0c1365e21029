"""BPC equals a brute-force token-by-token computation; prompt tokens are never scored."""

from __future__ import annotations

import json
import math

import pytest

from micota.analyze.bpc import EncodedExample, encode_example, length_batches, response_nats, score_examples
from micota.analyze.bpc_stage import BpcConfig, run
from micota.errors import MicotaError

CHATS = [
    [{"role": "user", "content": "What is 3 + 4?"}, {"role": "assistant", "content": "3 + 4 = 7. Wait, yes: \\boxed{7}."}],
    [{"role": "user", "content": "What is 3 + 4? Please reason step by step."}, {"role": "assistant", "content": "7"}],
    [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
     {"role": "assistant", "content": "Let me verify. 2 + 2 = 4, so the answer is \\boxed{4}."}],
]


@pytest.fixture(scope="module")
def tiny(tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float64).eval()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~50 tiny forward passes: thread start-up costs more than the math on shared CPUs
    yield model, AutoTokenizer.from_pretrained(tiny_model)
    torch.set_num_threads(threads)


def brute_force_nats(model, example: EncodedExample) -> float:
    """One unpadded forward pass per response token; only response tokens are summed."""
    import torch

    total = 0.0
    ids = list(example.prompt_ids)
    for token in example.response_ids:
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0, -1]
        total -= torch.log_softmax(logits.double(), dim=-1)[token].item()
        ids.append(token)
    return total


def test_batched_nats_equal_brute_force(tiny):
    model, tokenizer = tiny
    examples = [encode_example(tokenizer, chat) for chat in CHATS]
    batched = response_nats(model, examples, tokenizer.pad_token_id)  # mixed lengths: padding is exercised
    for got, example in zip(batched, examples):
        assert got == pytest.approx(brute_force_nats(model, example), abs=1e-6)
    score = score_examples(model, examples, tokenizer.pad_token_id, batch_size=2)
    expected_bits = sum(brute_force_nats(model, e) for e in examples) / math.log(2)
    assert score.bpc == pytest.approx(expected_bits / sum(len(c[-1]["content"]) for c in CHATS), abs=1e-6)


def test_prompt_tokens_condition_but_are_not_scored(tiny):
    model, tokenizer = tiny
    example = encode_example(tokenizer, CHATS[0])
    assert example.n_chars == len(CHATS[0][-1]["content"])
    assert example.prompt_ids[-3:] == tokenizer("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"][-3:]
    longer_prompt = EncodedExample(example.prompt_ids * 2, example.response_ids, example.n_chars)
    empty_response = EncodedExample(example.prompt_ids, [], 0)
    nats = response_nats(model, [example, longer_prompt, empty_response], tokenizer.pad_token_id)
    assert nats[2] == 0.0  # only prompt tokens: nothing is scored
    assert nats[0] != pytest.approx(nats[1])  # the prompt is context: changing it changes the score


def test_batches_respect_row_and_token_limits():
    examples = [EncodedExample([1], [2] * n, n) for n in (10, 3, 7, 1, 5)]
    batches = list(length_batches(examples, batch_size=2, max_batch_tokens=16))
    assert sorted(i for b in batches for i in b) == list(range(5))
    for batch in batches:
        width = max(len(examples[i].response_ids) + 1 for i in batch)
        assert len(batch) <= 2 and (len(batch) == 1 or width * len(batch) <= 16)


def test_bpc_stage_writes_scores_ranking_and_table(tmp_path, tiny_model):
    for name, chats in {"short": CHATS[1:2], "mixed": CHATS}.items():
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps({"messages": c}) + "\n" for c in chats))
    # Table 4 order: datasets as rows in the config's order (not alphabetical), models as columns
    cfg = BpcConfig(out_dir=str(tmp_path / "bpc"), models={"Tiny": str(tiny_model), "Again": str(tiny_model)},
                    progress=False, device="cpu",
                    datasets={"short": str(tmp_path / "short.jsonl"), "mixed": str(tmp_path / "mixed.jsonl")})
    manifest = run(cfg)
    result = json.loads((tmp_path / "bpc" / "bpc.json").read_text())
    scores = result["scores"]["Tiny"]
    assert scores["mixed"]["samples"] == 3 and scores["short"]["chars"] == 1
    assert scores["mixed"]["bpc"] == pytest.approx(scores["mixed"]["nats_per_char"] / math.log(2))
    assert result["ranking"]["Tiny"] == sorted(scores, key=lambda d: scores[d]["bpc"])
    assert result["datasets"] == ["short", "mixed"] and result["models"] == ["Tiny", "Again"]
    table = (tmp_path / "bpc" / "bpc.md").read_text().splitlines()
    assert table[0] == "| dataset | Tiny | Again |"
    assert table[2].startswith("| short | ") and table[3].startswith("| mixed | ")
    assert manifest.counts == {"models": 2, "datasets": 2}


def test_bpc_is_a_stage_kind_with_placement_and_preflight(tmp_path):
    from micota.analyze.bpc_stage import placement, preflight
    from micota.pipeline.recipe import STAGE_KINDS, config_class

    assert STAGE_KINDS["bpc"].primary == "" and config_class("bpc") is BpcConfig  # @bpc = its folder (bpc.json, bpc.md)
    cfg = BpcConfig(out_dir=str(tmp_path / "run" / "bpc"), models={"m": "x"}, device="cpu",
                    datasets={"made-here": str(tmp_path / "run" / "mix" / "data.jsonl")})
    assert placement(cfg).gpus == 0 and placement(cfg).processes == 1
    preflight(cfg)  # written by a stage of this run: not checked before the run
    cfg.datasets["elsewhere"] = str(tmp_path / "missing.jsonl")
    with pytest.raises(MicotaError, match="datasets.elsewhere: .*missing.jsonl does not exist"):
        preflight(cfg)


def test_samples_beyond_the_context_fail_or_are_skipped_and_counted(tmp_path, tiny_model):
    long_chat = [{"role": "user", "content": "Go."}, {"role": "assistant", "content": "wait " * 600}]  # > 512 positions
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"messages": c}) + "\n" for c in [CHATS[0], long_chat]))
    cfg = BpcConfig(out_dir=str(tmp_path / "bpc"), models={"Tiny": str(tiny_model)}, progress=False, device="cpu",
                    datasets={"d": str(tmp_path / "d.jsonl")})
    with pytest.raises(MicotaError, match="1 of 2 samples are longer than the model's context of 512"):
        run(cfg)
    cfg.too_long = "skip"
    run(cfg)
    scores = json.loads((tmp_path / "bpc" / "bpc.json").read_text())["scores"]["Tiny"]["d"]
    assert scores["samples"] == 1 and scores["skipped_too_long"] == 1
