"""Fixtures of the evaluate tests: small lab benchmark files (id, problem, answer = 2i)."""

from __future__ import annotations

import json

import pytest


@pytest.fixture()
def lab_rows(tmp_path):
    """``lab_rows(n)``: the path of a lab benchmark with problems lab-0 … lab-(n-1)."""

    def make(n: int):
        path = tmp_path / f"lab-{n}.jsonl"
        rows = [{"id": f"lab-{i}", "problem": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(n)]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        return path

    return make


@pytest.fixture()
def lab_file(lab_rows):
    return lab_rows(4)


# Where the generation writer looks its engines up: the one seam the fake engines of these tests replace.
ENGINE_LOADER = "micota.generate.parallel.load_engine"


@pytest.fixture()
def use_engine(monkeypatch):
    """``use_engine(factory)``: the writer builds every engine as ``factory(config)`` (the real loader is
    ``micota.generate.engine.load_engine``)."""

    def install(factory):
        monkeypatch.setattr(ENGINE_LOADER, factory)

    return install
