"""The openai engine's own logic against a scripted loopback server (fast; the real servers are in
test_openai_servers.py): scheduling, fatal errors, token counts, dialects, retry timing, answers."""

from __future__ import annotations

import json
import random
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from micota.errors import MicotaError
from micota.generate import EngineConfig, GenerationRequest, generate_records
from micota.generate.openai import OpenAIEngine
from micota.generate.openai_wire import error_detail, parse_answer
from micota.generate.retry import RetryClock, TransientError, retry_after_seconds
from micota.generate.writer import read_shards


class FakeServer(BaseHTTPRequestHandler):
    """Answers ``echo: <question>``; class attributes script the behaviour per test."""

    failures_left = 0  # answer 503 this many times first (a busy server)
    seen: list[dict] = []
    usage = True
    reject: tuple[str, ...] = ()  # request fields answered with 422 "Unexpected fields" (like transformers serve)
    delays: dict[str, float] = {}  # question -> seconds before answering
    fatal: dict[str, float] = {}  # question -> answer 400 after this many seconds
    in_flight: list[str] = []
    starts: list[tuple[str, tuple[str, ...]]] = []  # (question, questions in flight when it arrived)
    lock = threading.Lock()

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        question = body["messages"][-1]["content"]
        with FakeServer.lock:
            FakeServer.seen.append(body)
            FakeServer.starts.append((question, tuple(FakeServer.in_flight)))
            FakeServer.in_flight.append(question)
            failing = FakeServer.failures_left > 0
            FakeServer.failures_left -= failing
        try:
            self._answer(body, question, failing)
        finally:
            with FakeServer.lock:
                if question in FakeServer.in_flight:  # a request left over from an earlier test
                    FakeServer.in_flight.remove(question)

    def _answer(self, body: dict, question: str, failing: bool) -> None:
        rejected = sorted(set(FakeServer.reject) & body.keys())
        if failing:
            return self._reply(503, {"error": "busy"})
        if rejected:
            return self._reply(422, {"detail": f"Unexpected fields in the request: {rejected}"})
        if body["model"] != "served-model":
            return self._reply(404, {"error": f"model {body['model']} not found"})
        if question in FakeServer.fatal:
            time.sleep(FakeServer.fatal[question])
            return self._reply(400, {"error": "prompt too long"})
        time.sleep(FakeServer.delays.get(question, 0.0))
        text = f"echo: {question}"[: body["max_tokens"]]
        finish = "length" if len(text) == body["max_tokens"] else "stop"
        answer = {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}]}
        self._reply(200, {**answer, **({"usage": {"completion_tokens": len(text)}} if FakeServer.usage else {})})

    def _reply(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client hung up (a cancelled request)
            pass

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    FakeServer.seen, FakeServer.failures_left, FakeServer.usage, FakeServer.reject = [], 0, True, ()
    FakeServer.delays, FakeServer.fatal, FakeServer.in_flight, FakeServer.starts = {}, {}, [], []
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()
    httpd.server_close()


def requests(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(id=f"q{i}", messages=[{"role": "user", "content": f"question {i}" + "!" * i}]) for i in range(n)]


def engine_config(server: str, **kw) -> EngineConfig:
    return EngineConfig(engine="openai", model="served-model", base_url=server, **{"max_new_tokens": 20, **kw})


def test_completions_in_request_order_with_finish_reasons(server, tmp_path):
    records = generate_records(engine_config(server, batch_size=3, max_retries=0), requests(8), tmp_path, progress=False)
    assert [r["id"] for r in records] == [f"q{i}" for i in range(8)]
    assert records[0]["response"] == "echo: question 0" and records[0]["finish_reason"] == "stop"
    assert records[7]["finish_reason"] == "length" and records[7]["n_tokens"] == 20
    sent = FakeServer.seen[0]
    assert (sent["temperature"], sent["max_tokens"], sent["top_k"], sent["repetition_penalty"]) == (0.0, 20, -1, 1.0)


def test_busy_server_is_retried_and_bad_model_is_a_clear_error(server, tmp_path):
    FakeServer.failures_left = 2
    cfg = engine_config(server, batch_size=1, max_retries=3)
    assert generate_records(cfg, requests(1), tmp_path / "a", progress=False)[0]["response"] == "echo: question 0"
    assert len(FakeServer.seen) == 3
    bad = cfg.model_copy(update={"model": "other"})
    with pytest.raises(MicotaError, match="HTTP 404 .*model other not found"):
        generate_records(bad, requests(1), tmp_path / "b", progress=False)


def test_unreachable_server_names_the_url_and_the_budget(tmp_path):
    cfg = EngineConfig(engine="openai", model="m", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(MicotaError, match=r"127.0.0.1:9/v1/chat/completions: request 'q0' failed 1 times .*Is the server running"):
        generate_records(cfg, requests(1), tmp_path, progress=False)


def test_batch_size_requests_stay_in_flight_across_the_whole_prompt_set(server, tmp_path):
    # One slow request per group of 4: an engine that drained each group of batch_size before
    # starting the next would start only 3 others while a slow one runs; a continuous one keeps
    # the other 3 slots busy with the fast requests throughout.
    reqs = requests(16)
    FakeServer.delays = {r.messages[0]["content"]: (0.8 if i % 4 == 0 else 0.05) for i, r in enumerate(reqs)}
    records = generate_records(engine_config(server, batch_size=4, max_retries=0), reqs, tmp_path, progress=False)
    assert len(records) == 16
    assert max(len(running) for _, running in FakeServer.starts) == 3  # never more than batch_size at once
    slow = reqs[12].messages[0]["content"]  # the writer sends longest prompts first: this slow one starts early
    started_while_slow_ran = [q for q, running in FakeServer.starts if slow in running]
    assert len(started_while_slow_ran) >= 6


def test_fatal_error_stops_at_once_and_yields_what_arrived(server, tmp_path):
    reqs = requests(6)
    FakeServer.delays = {r.messages[0]["content"]: 30.0 for r in reqs[3:]}  # hour-long generations, in small
    FakeServer.fatal = {reqs[2].messages[0]["content"]: 0.5}  # a config error once the fast ones are back
    cfg = engine_config(server, batch_size=6, max_retries=0)
    started = time.monotonic()
    with pytest.raises(MicotaError, match="HTTP 400 .*'q2'.*prompt too long"):
        generate_records(cfg, reqs, tmp_path, progress=False)
    assert time.monotonic() - started < 5  # not the 30 s of the in-flight requests
    assert sorted(read_shards(tmp_path)) == ["q0", "q1"]  # finished samples are on disk


def test_missing_usage_is_counted_with_the_tokenizer(server, tmp_path, tiny_model):
    from transformers import AutoTokenizer

    FakeServer.usage = False
    cfg = engine_config(server, max_retries=0, tokenizer=str(tiny_model), max_new_tokens=200)
    records = generate_records(cfg, requests(3), tmp_path / "a", progress=False)
    tok = AutoTokenizer.from_pretrained(tiny_model)
    for record in records:  # the text's tokens plus the end token the server generated and dropped
        assert record["n_tokens"] == len(tok(record["response"], add_special_tokens=False)["input_ids"]) + 1 > 1
    with pytest.raises(MicotaError, match=r"engine.tokenizer: .*sent no `usage`.*'served-model' is not a local folder"):
        generate_records(engine_config(server, max_retries=0), requests(1), tmp_path / "b", progress=False)


def test_a_server_that_rejects_sampling_fields_gets_the_next_dialect(server, tmp_path):
    FakeServer.reject = ("top_k", "repetition_penalty")  # transformers serve's answer to vLLM's fields
    records = generate_records(engine_config(server, batch_size=2, max_retries=0), requests(4), tmp_path / "a", progress=False)
    assert len(records) == 4 and json.loads(FakeServer.seen[-1]["generation_config"]) == {
        "do_sample": False, "top_k": 0, "repetition_penalty": 1.0}
    FakeServer.reject = ("top_k", "repetition_penalty", "generation_config")  # a hosted API: chat fields only
    assert len(generate_records(engine_config(server, max_retries=0), requests(2), tmp_path / "b", progress=False)) == 2
    assert not {"top_k", "generation_config"} & FakeServer.seen[-1].keys()
    penalised = engine_config(server, max_retries=0, repetition_penalty=1.1)  # cannot be sent: refuse, do not drop it
    with pytest.raises(MicotaError, match="HTTP 422 .*generation_config"):
        generate_records(penalised, requests(1), tmp_path / "c", progress=False)


def test_reasoning_template_is_checked():
    with pytest.raises(MicotaError, match=r"reasoning_template must contain \{reasoning\} once and then \{content\}"):
        OpenAIEngine(EngineConfig(engine="openai", model="m", base_url="http://x/v1", reasoning_template="{content}{reasoning}"))


# ----- retry timing -----


def test_backoff_is_full_jitter_growing_to_a_cap_and_honours_retry_after():
    clock = RetryClock(total_s=1000.0, rng=random.Random(0))
    waits = [clock.next_wait(TransientError("x"), attempt_s=0.01) for _ in range(12)]
    bounds = [min(30.0, 1000.0 / 10, 0.5 * 2**i) for i in range(12)]
    assert all(0 <= w <= b for w, b in zip(waits, bounds)) and max(waits) > 8  # grows, then capped at 30 s
    assert clock.next_wait(TransientError("busy", retry_after_s=45.0), attempt_s=0.01) == 45.0
    assert retry_after_seconds("2") == 2.0 and retry_after_seconds("garbage") is None


def test_budget_and_cap_end_the_retries():
    assert RetryClock(total_s=0.0).next_wait(TransientError("x"), 0.0) is None
    capped = RetryClock(total_s=100.0, max_retries=2)
    assert [capped.next_wait(TransientError("x"), 0.0) is None for _ in range(3)] == [False, False, True]
    short = RetryClock(total_s=0.2, rng=random.Random(0))
    short.next_wait(TransientError("x"), 0.0)
    time.sleep(0.25)
    assert short.next_wait(TransientError("x"), 0.0) is None
    # ... unless the server had worked on the request longer than the whole budget (a new outage),
    # which a timeout never shows
    assert short.next_wait(TransientError("x"), attempt_s=5.0) is not None
    assert short.next_wait(TransientError("x", timed_out=True), attempt_s=50.0) is not None  # same budget as above
    time.sleep(0.25)
    assert short.next_wait(TransientError("x", timed_out=True), attempt_s=50.0) is None


# ----- answers -----


def answer(finish, **message) -> bytes:
    return json.dumps({"choices": [{"message": {"content": "C", **message}, "finish_reason": finish}],
                       "usage": {"completion_tokens": 7}}).encode()


@pytest.mark.parametrize("finish, expected", [("stop", "stop"), ("eos", "stop"), ("length", "length"),
                                              ("abort", None), ("tool_calls", None), (None, None)])
def test_finish_reasons_abort_and_unknown_are_failures(finish, expected):
    if expected is None:
        with pytest.raises(TransientError, match="did not finish"):
            parse_answer(answer(finish))
    else:
        assert parse_answer(answer(finish)).finish_reason == expected


@pytest.mark.parametrize("status, retried", [(408, True), (429, True), (500, True), (502, True), (503, True),
                                             (400, False), (401, False), (404, False), (422, False)])
def test_timeouts_rate_limits_and_server_errors_are_retried_config_errors_are_not(status, retried):
    from email.message import Message

    headers = Message()
    headers["Retry-After"] = "7"
    detail = error_detail(status, headers, b'{"error": "why"}')
    assert isinstance(detail, TransientError) == retried
    assert (detail.retry_after_s == 7.0) if retried else ('"why"' in detail)


def test_answers_read_reasoning_under_either_name_and_reject_garbage():
    assert parse_answer(answer("stop", reasoning_content="R")).reasoning == "R"  # older vLLM, SGLang
    assert parse_answer(answer("stop", reasoning="R")).reasoning == "R"  # vLLM 0.32
    assert parse_answer(answer("stop", reasoning=None)).reasoning is None
    assert parse_answer(answer("stop")).completion_tokens == 7
    for garbage in (b'{"choices": [{"mess', b"<html>502</html>", b'{"error": "x"}', b'{"choices": []}'):
        with pytest.raises(TransientError, match="not a chat completion"):
            parse_answer(garbage)
