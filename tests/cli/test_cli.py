from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

SRC = str(Path(__file__).resolve().parents[2] / "src")


def micota(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "micota", *args], capture_output=True, text=True, cwd=cwd,
                          env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, timeout=300)


def test_help_lists_every_stage_and_imports_nothing_heavy():
    result = micota("--help")
    assert result.returncode == 0
    for command in ("run", "generate", "filter", "mix", "sft", "merge", "evaluate", "report", "grade"):
        assert command in result.stdout
    probe = "import sys, micota.cli; print(sorted(m for m in ('torch', 'transformers', 'trl', 'datasets') if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env={"PYTHONPATH": SRC}).stdout.strip() == "[]"


def test_unknown_key_fails_with_file_field_and_suggestion(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"stages": {"gen": {"kind": "generate", "prompts": "p.jsonl", "engine": {"model": "m", "max_new_tokns": 5}}}}))
    result = micota("run", str(recipe), "--run-dir", str(tmp_path / "run"))
    assert result.returncode != 0
    assert str(recipe) in result.stderr and "engine.max_new_tokns: unknown key" in result.stderr and "max_new_tokens" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_override_type_names_value(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"stages": {"gen": {"kind": "generate", "prompts": "p.jsonl", "engine": {"model": "m"}}}}))
    result = micota("run", str(recipe), "stages.gen.engine.batch_size=lots")
    assert result.returncode != 0 and "engine.batch_size" in result.stderr and "'lots'" in result.stderr


def test_missing_model_and_malformed_prompts_leave_nothing_done(tmp_path, tiny_model):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"problem": "1+1?", "answer": "2"}\n{"problem": oops}\n')
    recipe = tmp_path / "r.yaml"
    stage = {"kind": "generate", "prompts": str(prompts), "engine": {"model": str(tmp_path / "no-such-model")}}
    recipe.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": {"gen": stage}}))
    result = micota("run", str(recipe))
    assert result.returncode != 0 and "p.jsonl:2: malformed JSON" in result.stderr
    prompts.write_text('{"problem": "1+1?", "answer": "2"}\n')
    result = micota("run", str(recipe))
    assert result.returncode != 0 and "no-such-model" in result.stderr and "does not exist" in result.stderr
    assert not (tmp_path / "run" / "gen" / "manifest.json").exists()
    # a folder with weights but no tokenizer
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("config.json", "model.safetensors"):
        (broken / name).write_bytes((tiny_model / name).read_bytes())
    stage["engine"]["model"] = str(broken)
    recipe.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "stages": {"gen": stage}}))
    result = micota("run", str(recipe))
    assert result.returncode != 0 and "no tokenizer files" in result.stderr


def test_stage_command_runs_a_stage_config(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path, tag in ((a, "a"), (b, "b")):
        path.write_text("".join(json.dumps({"id": f"{tag}{i}", "messages": []}) + "\n" for i in range(10)))
    cfg = tmp_path / "mix.yaml"
    cfg.write_text(yaml.safe_dump({"out_dir": str(tmp_path / "mix"), "sources": [{"data": str(a), "ratio": 1}, {"data": str(b), "ratio": 4}]}))
    result = micota("mix", "-c", str(cfg), "total=10")
    assert result.returncode == 0, result.stderr
    assert sum(1 for _ in (tmp_path / "mix" / "data.jsonl").open()) == 10


def test_version_full_names_every_library_that_can_change_results():
    result = micota("version", "--full")
    assert result.returncode == 0
    found = dict(line.split(None, 1) for line in result.stdout.splitlines())
    for name in ("micota", "torch", "transformers", "trl", "accelerate", "datasets", "vllm", "math-verify",
                 "latex2sympy2_extended", "sympy", "micota-grader"):
        assert name in found, name
    from importlib.metadata import version

    assert found["torch"] == version("torch") and found["micota-grader"].isdigit()
