"""The OpenAI-compatible engine against a loopback server that behaves like `vllm serve`."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from micota.errors import MicotaError
from micota.generate import EngineConfig, GenerationRequest, generate_records


class FakeServer(BaseHTTPRequestHandler):
    failures_left = 0  # answer 503 this many times first (a busy server)
    seen: list[dict] = []

    def do_POST(self):  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeServer.seen.append(body)
        if FakeServer.failures_left > 0:
            FakeServer.failures_left -= 1
            return self._reply(503, {"error": "busy"})
        if body["model"] != "served-model":
            return self._reply(404, {"error": f"model {body['model']} not found"})
        question = body["messages"][-1]["content"]
        text = f"echo: {question}"[: body["max_tokens"]]
        finish = "length" if len(text) == body["max_tokens"] else "stop"
        self._reply(200, {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": finish}],
                          "usage": {"completion_tokens": len(text)}})

    def _reply(self, code: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # keep test output quiet
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    FakeServer.seen, FakeServer.failures_left = [], 0
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


def requests(n: int) -> list[GenerationRequest]:
    return [GenerationRequest(id=f"q{i}", messages=[{"role": "user", "content": f"question {i}" + "!" * i}]) for i in range(n)]


def test_completions_in_request_order_with_finish_reasons(server, tmp_path):
    cfg = EngineConfig(engine="openai", model="served-model", base_url=server, max_new_tokens=20, batch_size=3, max_retries=0)
    records = generate_records(cfg, requests(8), tmp_path, progress=False)
    assert [r["id"] for r in records] == [f"q{i}" for i in range(8)]
    assert records[0]["response"] == "echo: question 0" and records[0]["finish_reason"] == "stop"
    assert records[7]["finish_reason"] == "length" and records[7]["n_tokens"] == 20
    assert FakeServer.seen[0]["temperature"] == 0.0 and FakeServer.seen[0]["max_tokens"] == 20


def test_busy_server_is_retried_and_bad_model_is_a_clear_error(server, tmp_path):
    FakeServer.failures_left = 2
    cfg = EngineConfig(engine="openai", model="served-model", base_url=server, batch_size=1, max_retries=3)
    assert generate_records(cfg, requests(1), tmp_path / "a", progress=False)[0]["response"] == "echo: question 0"
    bad = cfg.model_copy(update={"model": "other"})
    with pytest.raises(MicotaError, match="HTTP 404 .*model other not found"):
        generate_records(bad, requests(1), tmp_path / "b", progress=False)


def test_unreachable_server_names_the_url(tmp_path):
    cfg = EngineConfig(engine="openai", model="m", base_url="http://127.0.0.1:9/v1", max_retries=0)
    with pytest.raises(MicotaError, match=r"127.0.0.1:9/v1/chat/completions: no answer after 1 tries"):
        generate_records(cfg, requests(1), tmp_path, progress=False)
