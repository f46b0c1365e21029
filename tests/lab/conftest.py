"""Lab fixtures: one tokenizer built per test session (~1 s)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def lab_tokenizer_dir(tmp_path_factory) -> Path:
    from micota.lab.tokenizer import build_tokenizer

    out = tmp_path_factory.mktemp("lab-tokenizer")
    build_tokenizer(out, vocab_size=320)
    return out
