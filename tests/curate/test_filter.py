from __future__ import annotations

import json

from micota.curate.filter import FilterConfig, run
from micota.jsonl import read_jsonl


def sample(i: int, response: str, answer: str = "7", finish: str = "stop", n_tokens: int = 10) -> dict:
    return {"id": f"s{i}", "answer": answer, "response": response, "finish_reason": finish, "n_tokens": n_tokens,
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": response}]}


def test_keeps_correct_finished_short_and_names_each_drop(tmp_path):
    rows = [
        sample(0, "3 + 4 = 7. \\boxed{7}"),
        sample(1, "3 + 4 = 8. \\boxed{8}"),  # wrong
        sample(2, "3 + 4 = 7. Wait, let me", finish="length", n_tokens=50),  # cut off by max_new_tokens
        sample(3, "long but right \\boxed{7}", n_tokens=500),  # over max_tokens
        sample(4, "First \\boxed{7}, no wait: \\boxed{6}"),  # the last box is the answer
        sample(5, "The answer is 7."),  # stated without a box is still an answer
    ]
    data = tmp_path / "gen.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    manifest = run(FilterConfig(out_dir=tmp_path / "f", data=data, max_tokens=100))
    kept = [r["id"] for r in read_jsonl(tmp_path / "f" / "data.jsonl")]
    dropped = {r["id"]: r["reason"] for r in read_jsonl(tmp_path / "f" / "dropped.jsonl")}
    assert kept == ["s0", "s5"]
    assert dropped == {"s1": "incorrect", "s2": "truncated", "s3": "too_long", "s4": "incorrect"}
    assert manifest.counts == {"input": 6, "kept": 2, "dropped_truncated": 1, "dropped_too_long": 1, "dropped_incorrect": 2}
