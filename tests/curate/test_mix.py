from __future__ import annotations

import json

import pytest

from micota.curate.mix import MixConfig, MixSource, mix_records, run
from micota.errors import MicotaError
from micota.jsonl import read_jsonl


def recs(prefix: str, ids: range) -> list[dict]:
    return [{"id": f"q{i}", "style": prefix, "messages": []} for i in ids]


def test_ratio_one_to_four_with_unique_prompts():
    long, short = recs("long", range(100)), recs("short", range(100))
    picks = mix_records([long, short], [1, 4], None, True, seed=0)
    n_long, n_short = len(picks[0]), len(picks[1])
    assert n_short == 4 * n_long or abs(n_short - 4 * n_long) <= 4
    ids = [r["id"] for pick in picks for r in pick]
    assert len(ids) == len(set(ids))  # no prompt twice
    assert all(r["style"] == "long" for r in picks[0]) and all(r["style"] == "short" for r in picks[1])


def test_explicit_total_is_exact_and_seeded():
    a, b = recs("a", range(50)), recs("b", range(50, 100))
    first = mix_records([a, b], [1, 4], 25, True, seed=3)
    assert [len(p) for p in first] == [5, 20]
    assert first == mix_records([a, b], [1, 4], 25, True, seed=3)
    assert first != mix_records([a, b], [1, 4], 25, True, seed=4)
    with pytest.raises(MicotaError, match="more than the sources allow"):
        mix_records([a, b], [1, 4], 100, True, seed=0)


def test_prompt_only_in_one_source_is_never_lost():
    picks = mix_records([recs("a", range(0, 10)), recs("b", range(10, 20))], [1, 1], None, True, seed=0)
    assert sorted(r["id"] for p in picks for r in p) == sorted(f"q{i}" for i in range(20))


def test_stage_labels_sources(tmp_path):
    for name, rows in (("l", recs("long", range(20))), ("s", recs("short", range(20)))):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = MixConfig(out_dir=tmp_path / "mix", sources=[MixSource(data=tmp_path / "l.jsonl", ratio=1, name="long"),
                                                         MixSource(data=tmp_path / "s.jsonl", ratio=4, name="short")])
    manifest = run(cfg)
    mixed = read_jsonl(tmp_path / "mix" / "data.jsonl")
    assert manifest.counts["samples"] == len(mixed) == manifest.counts["long"] + manifest.counts["short"]
    assert {r["mix_source"] for r in mixed} == {"long", "short"}
