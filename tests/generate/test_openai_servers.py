"""The openai engine against a real server no one here wrote: ``transformers serve`` on loopback.

One server (a tiny chat model whose generation_config.json sets repetition_penalty 1.5, the trap
Qwen2.5-Instruct folders set) serves the whole module; one test kills and restarts it. Faults
come from a proxy in front of it (tests/generate/openai_servers.py). Wall times: docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from micota.generate import EngineConfig, GenerationRequest, generate_records
from micota.generate.writer import SHARD_DIR, read_shards
from tests.generate.openai_servers import FaultProxy, build_chatty_model, run_through_restart, transformers_server

pytest.importorskip("fastapi", reason="`transformers serve` needs the dev extra (fastapi, uvicorn, openai)")
pytestmark = pytest.mark.slow
MAX_NEW_TOKENS = 40
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    path = build_chatty_model(tmp_path_factory.mktemp("served") / "model")
    config = json.loads((path / "generation_config.json").read_text())
    (path / "generation_config.json").write_text(json.dumps({**config, "repetition_penalty": 1.5}))
    return path


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    server = transformers_server(model, tmp_path_factory.mktemp("logs") / "transformers-serve.log")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def proxy(served):
    fault_proxy = FaultProxy(served.base_url)
    yield fault_proxy
    fault_proxy.close()


def prompts(n: int = 12) -> list[GenerationRequest]:
    return [GenerationRequest(id=f"q{i}", messages=[{"role": "user", "content": f"question {i}" + "!" * i}]) for i in range(n)]


def config(model: Path, base_url: str, **kw) -> EngineConfig:
    return EngineConfig(engine="openai", model=str(model), base_url=base_url,
                        **{"max_new_tokens": MAX_NEW_TOKENS, "batch_size": 4, "retry_total_s": 60.0, **kw})


@pytest.fixture(scope="module")
def clean(served, model, tmp_path_factory) -> list[dict]:
    """An uninterrupted greedy run: what every faulty run must reproduce."""
    return generate_records(config(model, served.base_url), prompts(), tmp_path_factory.mktemp("clean"), progress=False)


def test_greedy_equals_transformers_generate_without_the_models_penalty(clean, model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok, lm = AutoTokenizer.from_pretrained(model), AutoModelForCausalLM.from_pretrained(model)
    changed_by_penalty = 0
    for request, record in zip(prompts(), clean):
        inputs = tok.apply_chat_template(request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
        ids = {rp: lm.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False, repetition_penalty=rp)[0, inputs["input_ids"].shape[1]:]
               for rp in (1.0, 1.5)}
        assert record["response"] == tok.decode(ids[1.0], skip_special_tokens=True).strip()
        assert record["n_tokens"] == len(ids[1.0])  # from the server's usage
        assert record["finish_reason"] == ("length" if len(ids[1.0]) == MAX_NEW_TOKENS else "stop")
        changed_by_penalty += not ids[1.5].equal(ids[1.0])
    assert changed_by_penalty >= 6  # the folder's penalty would have changed most answers
    assert {r["finish_reason"] for r in clean} == {"stop", "length"}


def test_transient_faults_are_retried_and_lose_nothing(clean, model, proxy, tmp_path):
    faults = ["429-retry-after", "500", "reset", "cut", "garbage", "abort", "no-usage", "503-retry-after", "429"]
    proxy.script.extend(faults)
    records = generate_records(config(model, proxy.base_url), prompts(), tmp_path, progress=False)
    assert [proxy.counts[f] for f in faults] == [1] * len(faults)
    assert [(r["id"], r["response"], r["finish_reason"]) for r in records] == [(r["id"], r["response"], r["finish_reason"]) for r in clean]
    counted = {question for fault, question in proxy.faulted if fault == "no-usage"}
    for record, reference in zip(records, clean):
        if record["messages"][0]["content"] not in counted:
            assert record["n_tokens"] == reference["n_tokens"]
        else:  # counted with the model folder's tokenizer: never 0
            assert record["n_tokens"] > 0


def test_server_killed_and_restarted_mid_run_loses_and_repeats_nothing(clean, model, served, tmp_path, caplog):
    cfg = config(model, served.base_url, retry_total_s=300.0)
    outcome = run_through_restart(served, lambda: generate_records(cfg, prompts(), tmp_path, progress=False), kill_after=3)
    records = outcome["result"]
    print(f"\nkilled after {outcome['killed_at_answers']} answers; recovered in {outcome['recovery_s']} s; "
          f"server starts {served.start_s} s")
    assert outcome["killed_at_answers"] < len(clean)
    assert [(r["id"], r["response"], r["n_tokens"]) for r in records] == [(r["id"], r["response"], r["n_tokens"]) for r in clean]
    lines = [line for shard in (tmp_path / SHARD_DIR).glob("part-*.jsonl") for line in shard.read_text().splitlines()]
    assert len(lines) == len(clean)  # nothing written twice
    assert "retrying" in caplog.text  # the run did see the server die


def write_stage_config(tmp_path: Path, model: Path, base_url: str, n: int, **engine) -> Path:
    rows = [{"problem": f"question {i}" + "!" * i, "answer": str(i)} for i in range(n)]
    (tmp_path / "prompts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    cfg = {"out_dir": str(tmp_path / "gen"), "prompts": str(tmp_path / "prompts.jsonl"), "progress": False,
           "engine": {"engine": "openai", "model": str(model), "base_url": base_url, "max_new_tokens": MAX_NEW_TOKENS,
                      "retry_total_s": 30.0, **engine}}
    path = tmp_path / "generate.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def micota(config_path: Path, *overrides: str, env: dict | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "micota", "generate", "-c", str(config_path), *overrides],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(SRC), **(env or {})})


def test_fatal_error_mid_run_stops_the_process_within_seconds(model, proxy, tmp_path):
    # 8 requests in flight: 3 answer, 4 generate "for an hour" (held by the proxy), 1 is refused
    # (HTTP 400) once the 3 are back. The process must not wait for the 4.
    questions = [f"question {i}" + "!" * i for i in range(8)]
    held, refused = set(questions[:4]), questions[4]

    def rule(body):
        question = body["messages"][-1]["content"].split("\n")[0]
        if question != refused:
            return None
        deadline = time.monotonic() + 120
        while proxy.counts["answered"] < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        return "400"

    proxy.hold = lambda body: body["messages"][-1]["content"].split("\n")[0] in held
    proxy.rule = rule
    run = micota(write_stage_config(tmp_path, model, proxy.base_url, 8, batch_size=8))
    out, err = run.communicate(timeout=300)
    stopped_after = time.monotonic() - proxy.fault_times[0]
    print(f"\nprocess exited {stopped_after:.1f} s after the fatal answer")
    assert run.returncode == 2 and "HTTP 400" in err, err
    assert stopped_after < 15
    on_disk = read_shards(tmp_path / "gen")
    assert sorted(r["problem"] for r in on_disk.values()) == sorted(set(questions[5:]))  # every finished sample kept
    assert not (tmp_path / "gen" / "manifest.json").exists()


def test_client_killed_then_resumed_with_new_transport_fields_keeps_its_shards(model, served, proxy, tmp_path):
    proxy.delay_s = 2.5  # slow answers: the writer syncs (every 10 s) before the kill
    config_path = write_stage_config(tmp_path, model, proxy.base_url, 12, batch_size=2, request_timeout_s=600.0)
    shard = tmp_path / "gen" / SHARD_DIR / "part-00000.jsonl"
    run = micota(config_path)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and run.poll() is None and (not shard.exists() or shard.read_text().count("\n") < 2):
        time.sleep(0.1)
    run.send_signal(signal.SIGKILL)
    run.communicate(timeout=60)
    answered_before_kill = proxy.counts["answered"]
    kept = shard.read_text()
    kept = kept[: kept.rfind("\n") + 1]  # a line the kill tore is cut off on resume
    assert 2 <= kept.count("\n") < 12
    print(f"\nclient killed with {kept.count(chr(10))} samples synced of {answered_before_kill} answered")
    second = FaultProxy(served.base_url)  # the server moved: new base_url, more in flight, other timeout
    try:
        rerun = micota(config_path, f"engine.base_url={second.base_url}", "engine.batch_size=6", "engine.request_timeout_s=900")
        out, err = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, err
        assert shard.read_text().startswith(kept)  # the first run's samples were resumed, not deleted
        asked = {body["messages"][-1]["content"] for body in second.seen}
        assert len(asked) == 12 - kept.count("\n")  # only the missing samples were asked for
    finally:
        second.close()
    records = [json.loads(line) for line in (tmp_path / "gen" / "data.jsonl").read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted({r["id"] for r in records}) and len(records) == 12


def test_api_key_never_reaches_files_logs_or_errors(model, proxy, tmp_path):
    secret = "sk-micota-test-" + os.urandom(8).hex()
    proxy.script.extend(["500-echo", "500-echo", "401-echo"])  # a server that quotes the key back, then refuses it
    run = micota(write_stage_config(tmp_path, model, proxy.base_url, 2, batch_size=1, api_key_env="MICOTA_TEST_KEY"),
                 env={"MICOTA_TEST_KEY": secret})
    out, err = run.communicate(timeout=300)
    assert f"Bearer {secret}" in proxy.authorizations  # the key was sent ...
    assert run.returncode == 2 and "HTTP 401" in err and "<api key>" in err  # ... echoed back, and redacted
    written = [p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file()]
    assert not [text for text in [out, err, *written] if secret in text]
