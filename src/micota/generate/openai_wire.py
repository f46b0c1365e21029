"""What the openai engine sends and reads: request bodies per server dialect, answers, HTTP.

Sampling must be explicit (a served model's ``generation_config.json`` must not change what
"greedy" means), but the OpenAI chat API has no ``top_k`` or ``repetition_penalty``. Servers
take them differently, so request bodies are rows of :data:`DIALECTS`, tried in order: a
server that rejects a dialect's extra fields (HTTP 400/422 naming them) gets the next row.
Measured against the real servers (tests/generate/test_openai_servers.py): vLLM 0.32 takes
top-level ``top_k``/``repetition_penalty``; ``transformers serve`` (5.24) answers 422
"Unexpected fields" to them but takes a ``generation_config`` JSON string, which replaces the
model's generation config (a folder with ``repetition_penalty: 1.5`` generated with 1.5 from a
plain request and with 1.0 through ``generation_config``).
"""

from __future__ import annotations

import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Any, Callable, Optional

from micota.errors import MicotaError
from micota.generate.engine import THINK_TEMPLATE
from micota.generate.retry import TransientError, retry_after_seconds

CONNECT_TIMEOUT_S = 30.0  # opening a connection; the answer itself may take request_timeout_s
# OpenAI's finish reasons (and vLLM's "eos" spelling) that mean a finished sample. Anything
# else, e.g. vLLM's "abort" (the request was cancelled, e.g. by a server shutdown), is a failure.
FINISH_REASONS = {"stop": "stop", "eos": "stop", "length": "length"}


@dataclass(frozen=True)
class Dialect:
    """One way of sending the sampling parameters the OpenAI chat API lacks."""

    name: str
    extra_fields: Callable[[dict[str, Any]], dict[str, Any]]  # sampling params -> fields beyond the chat API
    neutral_only: bool = False  # usable only when top_k and repetition_penalty are off (it cannot send them)


def _top_level(sampling: dict[str, Any]) -> dict[str, Any]:
    return {"top_k": sampling["top_k"], "repetition_penalty": sampling["repetition_penalty"]}


def _generation_config(sampling: dict[str, Any]) -> dict[str, Any]:
    # transformers' own default top_k is 50; 0 turns it off.
    config = {"do_sample": sampling["temperature"] > 0, "top_k": max(sampling["top_k"], 0),
              "repetition_penalty": sampling["repetition_penalty"]}
    return {"generation_config": json.dumps(config)}


DIALECTS: tuple[Dialect, ...] = (
    Dialect("vllm", _top_level),  # vLLM, SGLang: sampling extensions as top-level fields
    Dialect("transformers", _generation_config),  # `transformers serve`: a generation_config JSON string
    Dialect("openai", lambda sampling: {}, neutral_only=True),  # hosted APIs: the chat API's fields only
)


def request_body(model: str, messages: list[dict[str, str]], sampling: dict[str, Any], dialect: Dialect) -> dict[str, Any]:
    """The JSON body of one ``/chat/completions`` request (non-streaming, one choice)."""
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": sampling["max_new_tokens"],
        "temperature": sampling["temperature"],
        "top_p": sampling["top_p"],
        "seed": sampling["seed"],
        **({"stop": sampling["stop"]} if sampling["stop"] else {}),
    }
    return {**body, **dialect.extra_fields(sampling)}


def is_neutral(sampling: dict[str, Any]) -> bool:
    """True when the sampling needs nothing beyond the chat API (no top-k, no repetition penalty)."""
    return sampling["top_k"] <= 0 and sampling["repetition_penalty"] == 1.0


def rejects_fields(status: int, detail: str, dialect: Dialect, sampling: dict[str, Any]) -> bool:
    """True when an HTTP error says the server does not accept this dialect's extra fields."""
    return status in (400, 422) and any(name in detail for name in dialect.extra_fields(sampling))


@dataclass(frozen=True)
class Answer:
    """The useful part of a chat completion."""

    content: str
    reasoning: Optional[str]  # vLLM's `reasoning` (0.32) / `reasoning_content` (older vLLM, SGLang); None if absent
    finish_reason: str  # "stop" | "length"
    completion_tokens: Optional[int]  # None when the server sent no usable `usage`


def parse_answer(data: bytes) -> Answer:
    """Read a 200 answer; a body that is not a finished chat completion is a :class:`TransientError`."""
    try:
        answer = json.loads(data)
        choice = answer["choices"][0]
        message = choice["message"]
        content = message.get("content") or ""
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise TransientError(f"the answer is not a chat completion: {data[:200]!r}") from None
    finish = FINISH_REASONS.get(choice.get("finish_reason"))
    if finish is None:
        raise TransientError(f"the server did not finish the sample (finish_reason {choice.get('finish_reason')!r})")
    reasoning = message.get("reasoning_content")
    if reasoning is None:
        reasoning = message.get("reasoning")
    tokens = (answer.get("usage") or {}).get("completion_tokens")
    usable = isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0
    return Answer(content, reasoning if isinstance(reasoning, str) else None, finish, tokens if usable else None)


def join_reasoning(template: str, reasoning: str, content: str) -> str:
    """The response as the model wrote it: reasoning and answer joined by the chat template's markup.

    Newlines at the seams are trimmed the way Qwen3's and QwQ's chat templates render an
    assistant turn with ``reasoning_content`` (``'<think>\\n' + reasoning.strip('\\n') +
    '\\n</think>\\n\\n' + content.lstrip('\\n')``); DeepSeek-R1-distill models write the same
    markup (their template opens ``<think>\\n`` in the generation prompt). Without an answer the
    thought is left open: vLLM's parsers send no content both when the model never closed its
    reasoning (cut off by ``max_new_tokens``, or ended inside it) and when it ended right after
    ``</think>``; the first is the common case, and a closing tag the model did not write would
    make an unfinished thought look finished. (Measured on vLLM 0.32's ``deepseek_r1`` parser:
    tests/generate/test_openai_vllm.py.)

    >>> join_reasoning(THINK_TEMPLATE, "\\n3 + 4 = 7\\n", "\\n\\nThe answer is 7.")
    '<think>\\n3 + 4 = 7\\n</think>\\n\\nThe answer is 7.'
    >>> join_reasoning(THINK_TEMPLATE, "3 + 4 = ", "")
    '<think>\\n3 + 4 = '
    """
    head, rest = template.split("{reasoning}")
    if not content:
        return head + reasoning.lstrip("\n")
    middle, tail = rest.split("{content}")
    return head + reasoning.strip("\n") + middle + content.lstrip("\n") + tail


def check_reasoning_template(template: str) -> None:
    """Fail unless the template holds ``{reasoning}`` once, then ``{content}`` once."""
    if template.count("{reasoning}") != 1 or template.count("{content}") != 1 or template.index("{reasoning}") > template.index("{content}"):
        raise MicotaError(f"engine.reasoning_template must contain {{reasoning}} once and then {{content}} once, got {template!r}. "
                          f"The default is {THINK_TEMPLATE!r}.")


def error_detail(status: int, headers: http.client.HTTPMessage, data: bytes) -> TransientError | str:
    """An HTTP error: retryable ones (408, 429, 5xx) as :class:`TransientError`, others as the server's message."""
    detail = data.decode("utf-8", errors="replace")[:500]
    if status in (408, 429) or status >= 500:
        return TransientError(f"HTTP {status}: {detail}", retry_after_seconds(headers.get("Retry-After")))
    return detail


def post_json(url: urllib.parse.SplitResult, body: bytes, headers: dict[str, str], timeout_s: float,
              register: Callable[[http.client.HTTPConnection], None],
              unregister: Callable[[http.client.HTTPConnection], None]) -> tuple[int, http.client.HTTPMessage, bytes]:
    """POST ``body`` and read the whole answer; transport failures raise :class:`TransientError`.

    ``register`` is called with the connection before it opens and again once it is open, so
    another thread can shut its socket down to cancel the request; it may raise to abort.
    """
    port = url.port or (443 if url.scheme == "https" else 80)
    connect_timeout = min(CONNECT_TIMEOUT_S, timeout_s)
    if url.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(url.hostname, port, timeout=connect_timeout,
                                                                        context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(url.hostname, port, timeout=connect_timeout)
    register(conn)
    try:
        try:
            conn.connect()
        except TimeoutError:
            raise TransientError(f"could not connect within {connect_timeout:g} s") from None
        register(conn)  # now with a socket to shut down
        conn.sock.settimeout(timeout_s)
        conn.request("POST", url.path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.headers, response.read()
    except TimeoutError:
        raise TransientError(f"no answer within {timeout_s:g} s (engine.request_timeout_s)", timed_out=True) from None
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, IncompleteRead, RemoteDisconnected, ...
        raise TransientError(f"{type(exc).__name__}: {exc}") from None
    finally:
        unregister(conn)
        conn.close()
