from __future__ import annotations

import json

import pytest

from micota.errors import MicotaError
from micota.generate import EngineConfig
from micota.generate.run import GenerateConfig, run
from micota.jsonl import read_jsonl


def write_prompts(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_stage_writes_chat_records_in_prompt_order_and_counts(tiny_model, tmp_path):
    prompts = write_prompts(tmp_path / "p.jsonl", [{"question": f"What is {i} + 1?", "answer": f"... #### {i + 1}"} for i in range(5)])
    cfg = GenerateConfig(out_dir=tmp_path / "gen", prompts=prompts, progress=False,
                         engine=EngineConfig(model=str(tiny_model), max_new_tokens=6, batch_size=2))
    manifest = run(cfg)
    records = read_jsonl(tmp_path / "gen" / "data.jsonl")
    assert [r["problem"] for r in records] == [f"What is {i} + 1?" for i in range(5)]
    assert records[2]["answer"] == "3"  # gold read after GSM8K's '####'
    user = records[0]["messages"][0]["content"]
    assert user.startswith("What is 0 + 1?\nPlease reason step by step") and user.endswith("\\boxed{}.")
    assert manifest.counts["samples"] == 5
    assert manifest.counts["finish_stop"] + manifest.counts["finish_length"] == 5


def test_malformed_prompt_line_is_named(tiny_model, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"problem": "a", "answer": "1"}\n{"problem": "b", "answer": \n')
    cfg = GenerateConfig(out_dir=tmp_path / "gen", prompts=prompts, engine=EngineConfig(model=str(tiny_model)))
    with pytest.raises(MicotaError, match=r"p.jsonl:2: malformed JSON"):
        run(cfg)
    prompts.write_text('{"text": "a", "answer": "1"}\n')
    with pytest.raises(MicotaError, match=r"p.jsonl:1: missing field `problem` or `question`"):
        run(cfg)
    assert not (tmp_path / "gen" / "manifest.json").exists()
