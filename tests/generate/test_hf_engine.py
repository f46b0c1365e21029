from __future__ import annotations

import json

import pytest

from micota.errors import MicotaError
from micota.generate import EngineConfig, GenerationRequest, generate_records, load_engine
from micota.generate.writer import SHARD_DIR, read_shards


def requests(n: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(id=f"p{i}", messages=[{"role": "user", "content": "What is 3 + 4?" * (1 + i % 3)}], meta={"answer": str(i)})
        for i in range(n)
    ]


def test_greedy_batched_equals_one_by_one(tiny_model):
    cfg = EngineConfig(model=str(tiny_model), max_new_tokens=12, batch_size=4)
    batched = {c.id: c for c in load_engine(cfg).generate(requests(6))}
    single = {c.id: c for c in load_engine(cfg.model_copy(update={"batch_size": 1})).generate(requests(6))}
    assert batched.keys() == single.keys() == {f"p{i}" for i in range(6)}
    for key in batched:
        assert batched[key].text == single[key].text
        assert 1 <= batched[key].n_tokens <= 12
        assert batched[key].finish_reason in ("stop", "length")
        if batched[key].finish_reason == "length":
            assert batched[key].n_tokens == 12


def test_records_carry_messages_meta_and_resume_without_duplicates(tiny_model, tmp_path):
    cfg = EngineConfig(model=str(tiny_model), max_new_tokens=8, batch_size=2)
    first = generate_records(cfg, requests(3), tmp_path, progress=False)
    assert [r["id"] for r in first] == ["p0", "p1", "p2"]
    assert first[1]["answer"] == "1" and first[1]["messages"][-1] == {"role": "assistant", "content": first[1]["response"]}
    # a second call with more requests generates only the new ones
    again = generate_records(cfg, requests(5), tmp_path, progress=False)
    lines = [json.loads(l) for p in sorted((tmp_path / SHARD_DIR).glob("*.jsonl")) for l in p.read_text().splitlines()]
    assert sorted(r["id"] for r in lines) == [f"p{i}" for i in range(5)]
    assert again[:3] == first


def test_torn_line_is_dropped_and_regenerated(tiny_model, tmp_path):
    cfg = EngineConfig(model=str(tiny_model), max_new_tokens=8, batch_size=2)
    full = generate_records(cfg, requests(4), tmp_path / "a", progress=False)
    shard = next((tmp_path / "a" / SHARD_DIR).glob("*.jsonl"))
    text = shard.read_text()
    cut = text.rfind("\n", 0, len(text) - 1)
    shard.write_text(text[: cut + 15])  # last record half-written, as after SIGKILL
    assert len(read_shards(tmp_path / "a")) == 3
    resumed = generate_records(cfg, requests(4), tmp_path / "a", progress=False)
    assert resumed == full


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(MicotaError, match="does not exist"):
        load_engine(EngineConfig(model=str(tmp_path / "nope")))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    with pytest.raises(MicotaError, match="no weights"):
        load_engine(EngineConfig(model=str(tmp_path / "m")))
