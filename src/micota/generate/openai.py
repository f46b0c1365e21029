"""Engine for OpenAI-compatible chat servers: ``vllm serve``, SGLang, ``transformers serve``, hosted APIs.

The fast way to generate 16K-token CoT at scale is a vLLM server; this engine keeps
``batch_size`` requests in flight across the whole prompt set (``continuous``: the writer hands
it every pending request) and yields completions as they arrive, so the writer streams them to
disk. It is built to outlast its server:

* transient failures (connection refused or reset, timeouts, a cut-off or garbled answer,
  HTTP 408/429/5xx, a sample the server aborted) are retried with jittered exponential backoff
  for ``retry_total_s`` (a vLLM restart takes minutes), honouring ``Retry-After``
  (:mod:`micota.generate.retry`);
* any other 4xx is a configuration error: the run stops at once with the server's message;
  in-flight requests are cancelled (their sockets shut, so the server aborts them) instead of
  being waited for, and every completion already received is yielded first, so the writer
  keeps it;
* a server's separate reasoning text (vLLM ``--reasoning-parser``) is joined into the
  response as the chat template writes it, kept apart, or dropped (``reasoning``);
* a server that sends no token counts gets them counted with the model's tokenizer.

Only the standard library speaks HTTP, so the engine needs no extra install. The API key is
read from the environment variable ``api_key_env`` and never written to a message or file.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import random
import socket
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from micota.errors import MicotaError
from micota.generate.engine import Completion, EngineConfig, GenerationRequest
from micota.generate.openai_wire import (
    DIALECTS, Answer, check_reasoning_template, error_detail, is_neutral, join_reasoning,
    parse_answer, post_json, rejects_fields, request_body)
from micota.generate.retry import RetryClock, TransientError

log = logging.getLogger(__name__)
STOP_GRACE_S = 2.0  # after a fatal error, wait this long for answers already on the wire, then stop
LOG_EVERY_S = 10.0  # at most one retry warning per this many seconds (hundreds of requests fail together)


class _Cancelled(Exception):
    """The run is stopping; a worker leaves quietly."""


class OpenAIEngine:
    """Chat completions from an OpenAI-compatible HTTP server."""

    continuous = True  # keeps batch_size requests in flight over the whole prompt set

    def __init__(self, config: EngineConfig):
        base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
        if not base_url:
            raise MicotaError("engine.base_url: the openai engine needs the server URL, e.g. http://localhost:8000/v1 "
                              "(or set OPENAI_BASE_URL).")
        self.url = base_url.rstrip("/") + "/chat/completions"
        self._target = urllib.parse.urlsplit(self.url)
        if self._target.scheme not in ("http", "https") or not self._target.hostname:
            raise MicotaError(f"engine.base_url must be an http(s) URL such as http://localhost:8000/v1, got {base_url!r}.")
        self.template = config.reasoning_template
        check_reasoning_template(self.template)
        self.config = config
        self.sampling = config.sampling_params()
        self._api_key = os.environ.get(config.api_key_env, "")
        self._dialect = 0  # index into DIALECTS; moves on when a server rejects a dialect's fields
        self._lock = threading.Lock()
        self._tokenizer: Any = None

    # ----- scheduling -----

    def generate(self, requests: Sequence[GenerationRequest]) -> Iterator[Completion]:
        """Yield a completion per request as they finish; on a fatal error, yield what arrived, then raise."""
        flight = _Flight(requests)
        workers = [threading.Thread(target=self._work, args=(flight,), daemon=True, name=f"openai-{i}")
                   for i in range(min(self.config.batch_size, len(requests)))]
        for worker in workers:
            worker.start()
        try:
            for _ in range(len(requests)):
                outcome = flight.results.get()
                if isinstance(outcome, BaseException):
                    flight.cancel(workers, grace_s=STOP_GRACE_S)
                    yield from flight.received()
                    raise outcome
                yield outcome
        finally:
            flight.cancel(workers, grace_s=0.0)  # done, failed, interrupted or abandoned: nothing keeps running

    def _work(self, flight: _Flight) -> None:
        while (request := flight.next_request()) is not None:
            try:
                flight.results.put(self._complete(request, flight))
            except _Cancelled:
                return
            except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread, which raises it
                flight.results.put(exc)
                return

    # ----- one request -----

    def _complete(self, request: GenerationRequest, flight: _Flight) -> Completion:
        clock = RetryClock(self.config.retry_total_s, self.config.max_retries, random.Random())
        while True:
            started = time.monotonic()
            try:
                return self._completion(request, self._attempt(request, flight))
            except TransientError as exc:
                if flight.stop.is_set():
                    raise _Cancelled from None
                wait = clock.next_wait(exc, time.monotonic() - started)
                if wait is None:
                    raise MicotaError(self._redact(
                        f"{self.url}: request {request.id!r} failed {clock.retries + 1} times over {clock.elapsed_s():.0f} s "
                        f"(last: {exc}). Is the server running? Retries are bounded by engine.retry_total_s="
                        f"{self.config.retry_total_s:g} and engine.max_retries={self.config.max_retries}; raise them to wait longer."
                    )) from None
                flight.note_retry(self.url, self._redact(str(exc)), self.config.retry_total_s)
                if flight.stop.wait(wait):
                    raise _Cancelled from None

    def _attempt(self, request: GenerationRequest, flight: _Flight) -> Answer:
        """One POST; retries immediately with the next dialect when the server rejects the fields."""
        while True:
            index = self._dialect
            sampling = self.sampling if request.seed is None else {**self.sampling, "seed": request.seed}
            body = request_body(self.config.model, request.messages, sampling, DIALECTS[index])
            status, headers, data = post_json(self._target, json.dumps(body).encode(), self._headers(),
                                              self.config.request_timeout_s, flight.register, flight.unregister)
            if status == 200:
                return parse_answer(data)
            detail = error_detail(status, headers, data)
            if isinstance(detail, TransientError):
                raise detail
            if not (rejects_fields(status, detail, DIALECTS[index], sampling) and self._next_dialect(index)):
                raise MicotaError(self._redact(f"{self.url}: HTTP {status} from the server for request {request.id!r}: {detail}"))

    def _next_dialect(self, rejected: int) -> bool:
        """Move past a rejected dialect (once, whichever thread sees it first); False when none is left."""
        with self._lock:
            if self._dialect == rejected:
                following = [i for i in range(rejected + 1, len(DIALECTS)) if is_neutral(self.sampling) or not DIALECTS[i].neutral_only]
                if not following:
                    return False
                self._dialect = following[0]
                log.info("%s rejected the %s request fields; sending the %s dialect instead",
                         self.url, DIALECTS[rejected].name, DIALECTS[self._dialect].name)
            return True

    def _completion(self, request: GenerationRequest, answer: Answer) -> Completion:
        mode, reasoning, text = self.config.reasoning, answer.reasoning, answer.content
        if mode == "join" and reasoning is not None:
            text = join_reasoning(self.template, reasoning, answer.content)
        tokens = answer.completion_tokens
        if tokens is None:
            counted = text if mode == "join" or reasoning is None else reasoning + answer.content
            tokens = self._count_tokens(counted, answer.finish_reason)
        return Completion(id=request.id, text=text, n_tokens=tokens, finish_reason=answer.finish_reason,
                          reasoning=reasoning if mode == "field" else None)

    def _headers(self) -> dict[str, str]:
        return {"Content-Type": "application/json", **({"Authorization": f"Bearer {self._api_key}"} if self._api_key else {})}

    def _redact(self, text: str) -> str:
        return text.replace(self._api_key, "<api key>") if self._api_key else text

    # ----- token counts for servers that send no `usage` -----

    def _count_tokens(self, text: str, finish_reason: str) -> int:
        """Tokens of the returned text, plus the end-of-sequence token a stopped sample also generated.

        An estimate (the server may have cut a stop string), but never 0: a sample is at least one token.
        """
        with self._lock:
            if self._tokenizer is None:
                self._tokenizer = self._load_tokenizer()
        ids = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        return max(1, len(ids) + (finish_reason == "stop"))

    def _load_tokenizer(self) -> Any:
        source = self.config.tokenizer or (self.config.model if Path(self.config.model).is_dir() else None)
        if source is None:
            raise MicotaError(f"engine.tokenizer: {self.url} sent no `usage` token counts, so micota counts tokens with the "
                              f"model's tokenizer, but engine.model {self.config.model!r} is not a local folder. Set "
                              f"engine.tokenizer to the served model's tokenizer (a local folder or a cached hub id).")
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(source, trust_remote_code=self.config.trust_remote_code)
        except (OSError, ValueError) as exc:
            raise MicotaError(f"engine.tokenizer: cannot load a tokenizer from {source!r} to count tokens ({exc}).") from None


class _Flight:
    """The shared state of one ``generate`` call: work left, results, open connections, the stop flag."""

    def __init__(self, requests: Sequence[GenerationRequest]):
        self.todo = collections.deque(requests)
        self.results: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self._connections: set = set()
        self._lock = threading.Lock()
        self._last_log, self._retries_since_log = 0.0, 0

    def next_request(self) -> Optional[GenerationRequest]:
        try:
            return None if self.stop.is_set() else self.todo.popleft()
        except IndexError:
            return None

    def register(self, connection: Any) -> None:
        with self._lock:
            if self.stop.is_set():
                raise _Cancelled
            self._connections.add(connection)

    def unregister(self, connection: Any) -> None:
        with self._lock:
            self._connections.discard(connection)

    def cancel(self, workers: list[threading.Thread], grace_s: float) -> None:
        """Stop every worker: no new requests, open sockets shut (which wakes blocked reads), retry waits cut."""
        with self._lock:
            self.stop.set()
            self.todo.clear()
            open_sockets = [c.sock for c in self._connections if c.sock is not None]
        for sock in open_sockets:
            try:
                # the server sees the disconnect and aborts the generation (vLLM 0.32:
                # with_cancellation in vllm/entrypoints/serve/utils/api_utils.py)
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + grace_s
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))

    def received(self) -> Iterator[Completion]:
        """Completions that arrived but were not yet handed on (after a fatal error)."""
        while True:
            try:
                outcome = self.results.get_nowait()
            except queue.Empty:
                return
            if isinstance(outcome, Completion):
                yield outcome

    def note_retry(self, url: str, error: str, budget_s: float) -> None:
        """Log retries, at most once per LOG_EVERY_S (a restart fails every in-flight request at once)."""
        with self._lock:
            self._retries_since_log += 1
            if time.monotonic() - self._last_log < LOG_EVERY_S:
                return
            count, self._retries_since_log, self._last_log = self._retries_since_log, 0, time.monotonic()
        log.warning("%s: %s; retrying (%d tries failed since the last note; each request retries for up to %g s)",
                    url, error, count, budget_s)
