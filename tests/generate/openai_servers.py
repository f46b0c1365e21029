"""Real OpenAI-compatible servers for the openai engine's tests, and a fault-injecting proxy.

The servers are other people's code (``transformers serve``, vLLM's OpenAI server) serving
tiny model folders built here; each runs on loopback and is stopped by the test that starts it.
"""

from __future__ import annotations

import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Optional

from tests.conftest import build_tiny_model

THINK_TOKENS = ("<think>", "</think>")


def build_chatty_model(out_dir: Path, *, hidden: int = 32, think: bool = False) -> Path:
    """A tiny chat model whose greedy output varies with the prompt and often ends on its own.

    A random init with the default std (0.02) repeats one token forever; weights drawn with
    std 0.5 give varied text, and doubling the end token's (tied) embedding makes about half
    of short prompts stop before 40 tokens (measured: 8 of 12 prompts). ``think`` adds
    ``<think>``/``</think>`` as ordinary tokens (as DeepSeek-R1's tokenizer has them) and makes
    ``</think>`` likely, so vLLM's ``deepseek_r1`` reasoning parser finds both parts.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build_tiny_model(out_dir, hidden=hidden)
    tok = AutoTokenizer.from_pretrained(out_dir)
    model = AutoModelForCausalLM.from_pretrained(out_dir)
    if think:
        tok.add_tokens(list(THINK_TOKENS))
        model.resize_token_embeddings(len(tok))
    torch.manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.normal_(0.0, 0.5)
        model.model.embed_tokens.weight[tok.eos_token_id] *= 2.0
        if think:
            model.model.embed_tokens.weight[tok.convert_tokens_to_ids(THINK_TOKENS[1])] *= 2.0
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)
    return out_dir


# ----- servers -----

OFFLINE_ENV = {"HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_UPDATE_CHECK": "1", "TRANSFORMERS_OFFLINE": "1",
               "HF_HUB_DISABLE_TELEMETRY": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    """A server command run in its own process group on a loopback port; ``kill`` is SIGKILL to the group."""

    def __init__(self, argv: list[str], port: int, log_path: Path, *, env: Optional[dict] = None, ready_s: float = 300.0):
        self.argv, self.port, self.log_path, self.ready_s = argv, port, log_path, ready_s
        self.env = {**os.environ, **OFFLINE_ENV, **(env or {})}
        self.proc: Optional[subprocess.Popen] = None
        self.start_s: list[float] = []  # seconds each start took until /health answered

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> "ServerProcess":
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        while time.monotonic() - started < self.ready_s:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log tail:\n{self.log_tail()}")
            if self.healthy():
                self.start_s.append(round(time.monotonic() - started, 1))
                return self
            time.sleep(0.25)
        self.stop()
        raise RuntimeError(f"server not healthy after {self.ready_s} s; log tail:\n{self.log_tail()}")

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL the whole process group (vLLM's engine core and workers too), as a crash would."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        self._signal(signal.SIGTERM, wait_s=15.0)

    def _signal(self, sig: int, wait_s: float = 10.0) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            self.proc.wait(10) if self._killpg(signal.SIGKILL) else None
        except ProcessLookupError:
            pass
        self._killpg(signal.SIGKILL)  # members that outlived the leader (vLLM's engine core)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.healthy():
            time.sleep(0.1)

    def _killpg(self, sig: int) -> bool:
        try:
            os.killpg(self.proc.pid, sig)
            return True
        except ProcessLookupError:
            return False

    def answered(self) -> int:
        """Chat completions the server answered with 200 so far (from its uvicorn access log)."""
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return text.count('"POST /v1/chat/completions HTTP/1.1" 200')

    def log_tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


def transformers_server(model: Path, log_path: Path, port: Optional[int] = None) -> ServerProcess:
    """``transformers serve`` pinned to a local model folder (loaded offline, on CPU)."""
    argv = [sys.executable, "-c", "import sys; from transformers.cli.transformers import main; sys.argv[0] = 'transformers'; main()",
            "serve", str(model), "--host", "127.0.0.1", "--port", str(port or free_port()), "--device", "cpu"]
    return ServerProcess(argv, int(argv[argv.index("--port") + 1]), log_path)


def vllm_server(python: Path, model: Path, log_path: Path, *extra: str, port: Optional[int] = None) -> ServerProcess:
    """vLLM's OpenAI server from the CPU venv (eager mode starts fastest; 1 GiB of KV cache is plenty)."""
    port = port or free_port()
    argv = [str(python), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--enforce-eager",
            "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32", "--max-model-len", "512", *extra]
    src = Path(__file__).resolve().parents[2] / "src"
    return ServerProcess(argv, port, log_path, env={"VLLM_CPU_KVCACHE_SPACE": "1", "PYTHONPATH": str(src)})


# ----- a fault-injecting proxy -----

FAULTS = ("429", "429-retry-after", "500", "503-retry-after", "reset", "cut", "garbage", "abort", "no-usage", "400",
          "401-echo", "500-echo")


class FaultProxy:
    """A loopback HTTP proxy in front of a real server that answers some requests with a fault.

    ``script`` holds fault names (:data:`FAULTS`) served to the next requests in order; ``rule``
    (body -> fault name or None) picks faults per request; ``delay_s`` holds every forwarded
    answer back a while (to widen the window for a kill); ``hold`` keeps matching requests
    waiting until the proxy is closed (an hour-long generation). Counts what it did.
    """

    def __init__(self, upstream: str):
        self.upstream = urllib.parse.urlsplit(upstream)
        self.script: collections.deque[str] = collections.deque()
        self.rule: Optional[Callable[[dict], Optional[str]]] = None
        self.hold: Optional[Callable[[dict], bool]] = None
        self.delay_s = 0.0
        self.counts: collections.Counter = collections.Counter()
        self.seen: list[dict] = []
        self.authorizations: list[Optional[str]] = []
        self.faulted: list[tuple[str, str]] = []  # (fault, question) served
        self.fault_times: list[float] = []  # monotonic time of each fault answer sent
        self.lock = threading.Lock()
        self.closing = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - http.server's naming
                proxy.handle(self)

            def log_message(self, *args):
                pass

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.closing.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        raw = handler.rfile.read(int(handler.headers["Content-Length"]))
        body = json.loads(raw)
        with self.lock:
            self.seen.append(body)
            self.authorizations.append(handler.headers.get("Authorization"))
            self.counts["requests"] += 1
            fault = self.script.popleft() if self.script else None
        fault = fault or (self.rule(body) if self.rule else None)  # a rule may wait for the run to get somewhere
        with self.lock:
            if fault:
                self.counts[fault] += 1
                self.faulted.append((fault, body["messages"][-1]["content"]))
        if self.hold and self.hold(body):
            self.counts["held"] += 1
            self.closing.wait(600)
            return
        if fault in ("429", "500", "400"):
            _reply(handler, int(fault), b'{"error": "injected"}')
            self.fault_times.append(time.monotonic())
            return
        if fault in ("429-retry-after", "503-retry-after"):
            return _reply(handler, int(fault[:3]), b'{"error": "busy"}', {"Retry-After": "1"})
        if fault in ("401-echo", "500-echo"):  # a server that quotes the credentials it was sent
            echo = json.dumps({"error": f"key: {handler.headers.get('Authorization')}"}).encode()
            return _reply(handler, int(fault[:3]), echo)
        if fault == "reset":
            handler.close_connection = True
            handler.connection.shutdown(socket.SHUT_RDWR)
            return
        status, headers, data = self.forward(raw, handler.headers)
        time.sleep(self.delay_s)
        if fault and status != 200:  # faults of the answer need an answer: serve this one to a later request
            with self.lock:
                self.counts[fault] -= 1
                self.faulted.remove((fault, body["messages"][-1]["content"]))
                self.script.appendleft(fault)
            fault = None
        if fault == "cut":  # promise the whole answer, send half, hang up (IncompleteRead)
            handler.send_response(status)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data[: len(data) // 2])
            handler.close_connection = True
            return
        if fault == "garbage":
            data = data[: len(data) // 2]
        elif fault in ("abort", "no-usage") and status == 200:
            answer = json.loads(data)
            if fault == "abort":
                answer["choices"][0]["finish_reason"] = "abort"
            answer.pop("usage", None)
            data = json.dumps(answer).encode()
        with self.lock:
            self.counts["answered"] += status == 200 and fault is None
        _reply(handler, status, data, {k: v for k, v in headers if k.lower() == "retry-after"})

    def forward(self, raw: bytes, headers) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=600)
        try:
            conn.request("POST", self.upstream.path.rstrip("/") + "/chat/completions", body=raw,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        except OSError:
            return 502, [], b'{"error": "upstream unreachable"}'
        finally:
            conn.close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):  # a client that hung up (a cancelled request) is expected
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def _reply(handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: Optional[dict] = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)


# ----- a run that outlives its server -----


def run_through_restart(server: ServerProcess, run: Callable[[], object], *, kill_after: int, limit_s: float = 600.0) -> dict:
    """Call ``run()`` in a thread; SIGKILL the server once ``kill_after`` more answers went out, restart it.

    Returns ``result`` (what ``run`` returned), ``killed_at_answers`` and ``recovery_s`` (from the
    kill until the run finished, the restart included).
    """
    base, outcome = server.answered(), {}

    def target():
        try:
            outcome["result"] = run()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    deadline = time.monotonic() + limit_s
    thread.start()
    while server.answered() - base < kill_after and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    if not thread.is_alive():
        raise AssertionError(f"the run ended before the kill: {outcome.get('error')}")
    server.kill()
    killed = time.monotonic()
    outcome["killed_at_answers"] = server.answered() - base
    server.start()
    thread.join(max(1.0, deadline - time.monotonic()))
    if thread.is_alive():
        raise AssertionError(f"the run did not finish within {limit_s} s of starting")
    if "error" in outcome:
        raise outcome["error"]
    outcome["recovery_s"] = round(time.monotonic() - killed, 1)
    return outcome
