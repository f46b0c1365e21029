"""Child process for :mod:`micota.grade.symbolic`: reads (op, gold, answer) requests on stdin.

It parses LaTeX only (math-verify's ``LatexExtractionConfig``; never ``ExprExtractionConfig``,
whose ``parse_expr`` evals text), caches parsed golds, and answers ``(bool | None, detail)``.
Each request carries a budget enforced here with ``SIGALRM`` (this is the child's main thread, so
the alarm works), which stops pure-Python sympy loops without losing the warm process; the
parent still kills the child if it overruns (a C-level big-integer operation ignores signals).
A memory limit bounds what sympy may allocate.
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import struct
import sys

MEMORY_LIMIT_BYTES = 3 * 1024**3
FLOAT_ROUNDING = 10  # math-verify's default 6 accepts 0.142857 for 1/7
_HEADER = struct.Struct("!I")


class _Alarm(BaseException):
    """Raised by SIGALRM in this process's main thread (BaseException: sympy's ``except Exception``
    blocks must not swallow it)."""


def _on_alarm(signum, frame):
    raise _Alarm


def _limit_memory() -> None:
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    except (ImportError, ValueError, OSError):  # not POSIX, or a lower hard limit already set
        pass


@functools.lru_cache(maxsize=4096)
def _parse(text: str):
    from math_verify import parse
    from math_verify.parser import LatexExtractionConfig, NormalizationConfig

    config = LatexExtractionConfig(
        boxed_match_priority=0,
        normalization_config=NormalizationConfig(basic_latex=True, units=True, malformed_operators=True,
                                                 nits=True, boxed="all"),
    )
    return parse(f"${text}$", extraction_config=[config], parsing_timeout=None)


def _equal(gold: str, answer: str) -> tuple[bool | None, str]:
    from math_verify import verify

    gold_parsed, answer_parsed = _parse(gold), _parse(answer)
    if not gold_parsed:
        return None, "gold could not be parsed"
    if not answer_parsed:
        return None, "answer could not be parsed"
    same = verify(gold_parsed, answer_parsed, float_rounding=FLOAT_ROUNDING, timeout_seconds=None)
    return bool(same), "symbolically equal" if same else "not equivalent (symbolic)"


def _reply(out, value) -> None:
    payload = pickle.dumps(value)
    out.write(_HEADER.pack(len(payload)) + payload)
    out.flush()


def _read(stream, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data is not None and len(data) == size else None


def main() -> None:
    """Serve requests until stdin closes."""
    _limit_memory()
    sys.setrecursionlimit(5000)
    signal.signal(signal.SIGALRM, _on_alarm)
    _equal("\\frac{x+1}{2}", "(x+1)/2")  # load parser and grammar before "ready": not charged to a case
    _parse.cache_clear()

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = open(os.devnull, "w")  # stray prints from libraries must not corrupt the pipe
    _reply(stdout, "ready")
    while (header := _read(stdin, _HEADER.size)) is not None:
        body = _read(stdin, _HEADER.unpack(header)[0])
        if body is None:
            break
        _op, gold, answer, budget_s = pickle.loads(body)  # from our parent process only
        signal.setitimer(signal.ITIMER_REAL, max(budget_s, 0.01))
        try:
            result = _equal(gold, answer)
        except _Alarm:
            result = (None, f"timed out after {budget_s:.2f}s in symbolic comparison")
        except RecursionError:
            result = (None, "expression nested too deeply")
        except MemoryError:
            result = (None, "memory limit reached in symbolic comparison")
        except Exception as exc:  # noqa: BLE001 - any sympy failure means "could not decide"
            result = (None, f"symbolic comparison failed: {type(exc).__name__}")
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        _reply(stdout, result)


if __name__ == "__main__":
    main()
