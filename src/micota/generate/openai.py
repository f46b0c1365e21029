"""Engine for OpenAI-compatible chat servers: ``vllm serve``, SGLang, TGI, llama.cpp, hosted APIs.

The fast way to generate 16K-token CoT at scale is a vLLM server; this engine sends
``/chat/completions`` requests to one (``base_url``), ``batch_size`` at a time in flight,
and yields completions as they arrive. The server applies the chat template. Transient
failures (connection errors, HTTP 429/5xx) are retried with backoff; a 4xx answer is a
configuration error and stops the run with the server's message. Only the standard library
is used, so the engine needs no extra install.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any, Iterator, Sequence

from micota.errors import MicotaError
from micota.generate.engine import Completion, EngineConfig, GenerationRequest

_RETRIABLE = {408, 429, 500, 502, 503, 504}


class OpenAIEngine:
    """Chat completions from an OpenAI-compatible HTTP server."""

    def __init__(self, config: EngineConfig):
        base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise MicotaError("engine.base_url: the openai engine needs the server URL, e.g. http://localhost:8000/v1 "
                              "(or set OPENAI_BASE_URL).")
        self.config = config
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key = os.environ.get(config.api_key_env, "")

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        pending = list(requests)[::-1]
        with ThreadPoolExecutor(max_workers=self.config.batch_size) as pool:
            running: set[Future] = set()
            while pending or running:
                while pending and len(running) < self.config.batch_size:
                    running.add(pool.submit(self._complete, pending.pop()))
                finished, running = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    yield future.result()

    def _complete(self, request: GenerationRequest) -> Completion:
        body = self._payload(request)
        answer = self._post_with_retries(body)
        try:
            choice = answer["choices"][0]
            text = choice["message"]["content"] or ""
            tokens = int(answer.get("usage", {}).get("completion_tokens", 0))
        except (KeyError, IndexError, TypeError, ValueError):
            raise MicotaError(f"{self.url}: the answer to request {request.id!r} is not a chat completion: {str(answer)[:200]}") from None
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        return Completion(id=request.id, text=text, n_tokens=tokens, finish_reason=finish)

    def _payload(self, request: GenerationRequest) -> dict[str, Any]:
        return {
            "model": self.config.model,
            "messages": request.messages,
            "max_tokens": self.config.max_new_tokens,
            "temperature": self.config.temperature,
            "top_p": self.config.top_p,
            "seed": self.config.seed,
        }

    def _post_with_retries(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.api_key}"} if self.api_key else {})}
        max_retries = 4 if self.config.max_retries is None else self.config.max_retries
        for attempt in range(max_retries + 1):
            try:
                http = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(http, timeout=self.config.request_timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                if exc.code not in _RETRIABLE or attempt == max_retries:
                    detail = exc.read().decode(errors="replace")[:300]
                    raise MicotaError(f"{self.url}: HTTP {exc.code} from the server: {detail}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                if attempt == max_retries:
                    raise MicotaError(f"{self.url}: no answer after {attempt + 1} tries ({exc}). Is the server running?") from None
            time.sleep(min(30.0, 0.5 * 2**attempt))
        raise AssertionError("unreachable")
