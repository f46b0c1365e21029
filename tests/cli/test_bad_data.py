"""Bad data files through the real CLI: repeated prompt ids, empty prompt sets, a filter that keeps
nothing, and an empty training file. One clear error each, exit 2, nothing that looks done."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from micota.manifest import Manifest, write_manifest
from tests.cli.test_bad_models import assert_one_clear_error, cli
from tests.cli.test_cli import micota


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _generate_config(tmp_path: Path, prompts: Path, model: Path) -> Path:
    cfg = {"out_dir": str(tmp_path / "gen"), "prompts": str(prompts), "progress": False,
           "engine": {"engine": "scripted", "model": str(model), "max_new_tokens": 32}}
    path = tmp_path / "generate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_repeated_prompt_ids_name_the_file_ids_and_lines(tmp_path, tiny_model):
    rows = [{"id": "a", "problem": "1+1?", "answer": "2"}, {"id": "b", "problem": "2+2?", "answer": "4"},
            {"id": "a", "problem": "3+3?", "answer": "6"}, {"id": "c", "problem": "4+4?", "answer": "8"},
            {"id": "b", "problem": "5+5?", "answer": "10"}, {"id": "a", "problem": "6+6?", "answer": "12"}]
    prompts = _jsonl(tmp_path / "prompts.jsonl", rows)
    result = cli("generate", "-c", _generate_config(tmp_path, prompts, tiny_model))
    assert_one_clear_error(result, str(prompts), "prompt ids must be unique, 2 repeat", "'a' on lines 1, 3, 6", "'b' on lines 2, 5",
                           "Give each row its own `id`")
    out = tmp_path / "gen"
    assert not (out / "manifest.json").exists() and not (out / "shards").exists() and not (out / "data.jsonl").exists()


def test_rows_without_ids_are_numbered_and_an_explicit_id_may_not_clash_with_one(tmp_path, tiny_model):
    rows = [{"problem": "1+1?", "answer": "2"}, {"id": "prompts-0", "problem": "2+2?", "answer": "4"}]
    prompts = _jsonl(tmp_path / "prompts.jsonl", rows)
    assert_one_clear_error(cli("generate", "-c", _generate_config(tmp_path, prompts, tiny_model)), "'prompts-0' on lines 1, 2")


def test_a_repeated_problem_under_another_id_is_generated_with_a_warning(tmp_path, tiny_model):
    rows = [{"id": "a", "problem": "What is  1+1?", "answer": "2"}, {"id": "b", "problem": "2+2?", "answer": "4"},
            {"id": "c", "problem": "What is 1+1? ", "answer": "2"}]
    prompts = _jsonl(tmp_path / "prompts.jsonl", rows)
    result = micota("generate", "-c", str(_generate_config(tmp_path, prompts, tiny_model)))
    assert result.returncode == 0, result.stderr
    assert f"{prompts}: 1 problem(s) appear again under another id" in result.stderr and "line 3 repeats line 1" in result.stderr
    assert (tmp_path / "gen" / "manifest.json").exists()
    assert [json.loads(line)["id"] for line in (tmp_path / "gen" / "data.jsonl").open()] == ["a", "b", "c"]


def test_an_empty_prompt_file_is_an_error_not_an_empty_stage(tmp_path, tiny_model):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("\n\n")
    assert_one_clear_error(cli("generate", "-c", _generate_config(tmp_path, prompts, tiny_model)), str(prompts), "the prompt set is empty")
    assert not (tmp_path / "gen" / "manifest.json").exists() and not (tmp_path / "gen" / "data.jsonl").exists()


def _generated(i: int, *, finish: str = "stop", n_tokens: int = 10, boxed: str = "2") -> dict:
    response = f"So the answer is \\boxed{{{boxed}}}."
    return {"id": f"p{i}", "problem": "1+1?", "answer": "2", "response": response, "n_tokens": n_tokens, "finish_reason": finish,
            "messages": [{"role": "user", "content": "1+1?"}, {"role": "assistant", "content": response}]}


def test_a_filter_that_keeps_nothing_says_how_many_each_rule_dropped_and_what_to_change(tmp_path):
    data = _jsonl(tmp_path / "data.jsonl", [_generated(0, finish="length"), _generated(1, finish="length"),
                                            _generated(2, n_tokens=500), _generated(3, boxed="3")])
    cfg = tmp_path / "filter.yaml"
    out = tmp_path / "filter"
    cfg.write_text(yaml.safe_dump({"out_dir": str(out), "data": str(data), "max_tokens": 100}))
    message = assert_one_clear_error(
        cli("filter", "-c", cfg), f"all 4 samples of {data} were dropped", "truncated dropped 2", "raise max_new_tokens",
        "require_finished: false", "too_long dropped 1", "max_tokens=100", "incorrect dropped 1", "require_correct: false",
        f"{out / 'dropped.jsonl'}")
    assert message.index("truncated") < message.index("too_long") < message.index("incorrect")
    assert not (out / "manifest.json").exists() and not (out / "data.jsonl").exists()
    assert [r["reason"] for r in map(json.loads, (out / "dropped.jsonl").open())] == ["truncated", "truncated", "too_long", "incorrect"]


def test_micota_run_stops_at_the_filter_that_kept_nothing(tmp_path, tiny_model):
    prompts = _jsonl(tmp_path / "prompts.jsonl", [{"id": f"q{i}", "problem": f"Name the {i}th prime.", "answer": "7"} for i in range(3)])
    stages = {"teacher": {"kind": "generate", "prompts": str(prompts),
                          "engine": {"engine": "scripted", "model": str(tiny_model), "max_new_tokens": 64}},
              "kept": {"kind": "filter", "data": "@teacher"},  # the scripted teacher cannot solve these: all incorrect
              "student": {"kind": "sft", "model": str(tiny_model), "data": "@kept", "max_length": 64, "max_steps": 1,
                          "global_batch_size": 1}}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": stages}))
    result = micota("run", str(recipe))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "all 3 samples" in result.stderr and "incorrect dropped 3" in result.stderr and "require_correct: false" in result.stderr
    assert (tmp_path / "run" / "teacher" / "manifest.json").exists()  # the good stage before it stays done
    assert not (tmp_path / "run" / "kept" / "manifest.json").exists() and not (tmp_path / "run" / "student").exists()


def _empty_stage_output(folder: Path, stage: str, counts: dict) -> Path:
    """A stage folder that finished with an empty data.jsonl (what filter and mix wrote before they refused to)."""
    folder.mkdir(parents=True)
    (folder / "data.jsonl").write_text("")
    write_manifest(folder, Manifest(stage=stage, config_sha256="0" * 64, counts=counts))
    return folder / "data.jsonl"


def test_sft_on_an_empty_file_names_it_and_the_stage_that_made_it(tmp_path, tiny_model):
    made = _empty_stage_output(tmp_path / "run" / "kept", "filter", {"input": 3, "kept": 0, "dropped_incorrect": 3})
    loose = tmp_path / "mine.jsonl"
    loose.write_text("\n")
    out = tmp_path / "sft"
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(yaml.safe_dump({"out_dir": str(out), "model": str(tiny_model), "data": [str(made), str(loose)], "max_length": 64}))
    assert_one_clear_error(cli("sft", "-c", cfg), "sft.data: no training samples", f"{made} is empty (made by the filter stage in "
                           f"{made.parent} (counts: dropped_incorrect 3, input 3, kept 0))", f"{loose} is empty (no manifest.json "
                           "beside it", "dropped.jsonl")
    assert not out.exists()


def test_mix_refuses_an_empty_source(tmp_path):
    empty = _empty_stage_output(tmp_path / "run" / "short", "filter", {"input": 2, "kept": 0})
    full = _jsonl(tmp_path / "long.jsonl", [_generated(i) for i in range(4)])
    cfg = tmp_path / "mix.yaml"
    cfg.write_text(yaml.safe_dump({"out_dir": str(tmp_path / "mix"), "sources": [{"data": str(full), "ratio": 1},
                                                                                 {"data": str(empty), "ratio": 4}]}))
    assert_one_clear_error(cli("mix", "-c", cfg), f"sources[1].data: {empty} holds no samples (made by the filter stage")
    assert not (tmp_path / "mix" / "manifest.json").exists() and not (tmp_path / "mix" / "data.jsonl").exists()


def test_a_stage_that_runs_out_of_room_says_so_and_is_not_marked_done(tmp_path):
    import resource
    import subprocess
    import sys

    data = _jsonl(tmp_path / "data.jsonl", [_generated(i) for i in range(200)])
    out = tmp_path / "filter"
    cfg = tmp_path / "filter.yaml"
    cfg.write_text(yaml.safe_dump({"out_dir": str(out), "data": str(data)}))
    limit = data.stat().st_size // 2  # data.jsonl (all kept) cannot be written whole

    def limit_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    result = subprocess.run([sys.executable, "-m", "micota", "filter", "-c", str(cfg)], capture_output=True, text=True,
                            env={"PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src"), "PATH": "/usr/bin:/bin"},
                            preexec_fn=limit_file_size, timeout=300)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"error: stage 'filter': {out}: no room to write (File too large;" in errors[0]
    assert f"Nothing is marked done (no manifest.json in {out}). Free space and re-run: the stage starts again." in errors[0]
    assert sorted(p.name for p in out.iterdir() if p.name != ".partial-config-sha256") == ["config.yaml", "dropped.jsonl"]
    assert cli("filter", "-c", cfg).exit_code == 0 and (out / "manifest.json").exists()  # with room again
