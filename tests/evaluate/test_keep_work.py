"""Evaluation never throws finished work away: adding or removing a model, or changing a batch size,
regenerates nothing that is done; a change of what the model sees or how it samples does regenerate."""

from __future__ import annotations

import json

import pytest

from micota.evaluate import EvaluateConfig, run
from tests.conftest import build_tiny_model

pytest.importorskip("micota.grade")


@pytest.fixture(scope="module")
def second_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-b") / "model", seed=1)


@pytest.fixture()
def loads(use_engine):
    """The model of every engine the writer loads and the requests it is sent (the real hf engine runs).

    ``loads["die_after"] = (model, n)`` makes that model's engine die like a killed job after n samples.
    """
    from micota.generate.engine import load_engine

    seen = {"models": [], "requests": 0}

    def counting(config):
        seen["models"].append(config.model)
        engine = load_engine(config)
        generate = engine.generate

        def counted(requests):
            seen["requests"] += len(requests)
            for completion in generate(requests):
                model, left = seen.get("die_after", (None, 0))
                if model == config.model:
                    if left == 0:
                        raise KeyboardInterrupt
                    seen["die_after"] = (model, left - 1)
                yield completion

        engine.generate = counted
        return engine

    use_engine(counting)
    return seen


def _config(tmp_path, models, shared_data, **engine):
    return EvaluateConfig(out_dir=str(tmp_path / "eval"), models=models, data_dir=str(shared_data),
                          benchmarks=[{"name": "math500", "limit": 3}, {"name": "gsm8k", "limit": 2}],
                          engine={"max_new_tokens": 5, "batch_size": 4, "device": "cpu", **engine}, progress=False)


def _samples(tmp_path, slug, bench="math500"):
    return (tmp_path / "eval" / "samples" / slug / f"{bench}.jsonl").read_text()


def test_adding_then_removing_a_model_generates_only_the_new_one(tmp_path, tiny_model, second_model, shared_data, loads):
    run(_config(tmp_path, {"A": str(tiny_model)}, shared_data))
    assert loads == {"models": [str(tiny_model)], "requests": 5}
    first = _samples(tmp_path, "A")
    loads["models"].clear(), loads.update(requests=0)

    run(_config(tmp_path, {"A": str(tiny_model), "B": str(second_model)}, shared_data))
    assert loads == {"models": [str(second_model)], "requests": 5}  # A was not generated again
    assert _samples(tmp_path, "A") == first
    results = json.loads((tmp_path / "eval/results.json").read_text())
    assert set(results) == {"A", "B"} and results["B"]["gsm8k"]["n"] == 2
    loads["models"].clear(), loads.update(requests=0)

    run(_config(tmp_path, {"B": str(second_model)}, shared_data))
    assert loads == {"models": [], "requests": 0}
    assert set(json.loads((tmp_path / "eval/results.json").read_text())) == {"B"}
    assert not (tmp_path / "eval/samples/A").exists()  # samples and results follow the config ...
    assert len(list((tmp_path / "eval/generations").iterdir())) == 2  # ... generations are kept for later


def test_batch_sizes_shared_or_per_model_change_nothing(tmp_path, tiny_model, shared_data, loads):
    first = run(_config(tmp_path, {"A": str(tiny_model)}, shared_data))
    loads["models"].clear()
    again = run(_config(tmp_path, {"A": str(tiny_model)}, shared_data, batch_size=1))
    per_model = run(_config(tmp_path, {"A": {"model": str(tiny_model), "engine": {"batch_size": 2}}}, shared_data))
    assert loads["models"] == []
    assert first.config_sha256 == again.config_sha256 == per_model.config_sha256  # the stage is simply done


def test_a_new_stage_config_regrades_without_regenerating(tmp_path, tiny_model, shared_data, loads):
    run(_config(tmp_path, {"A": str(tiny_model)}, shared_data))
    loads["models"].clear()
    cfg = _config(tmp_path, {"A": str(tiny_model)}, shared_data)
    cfg.reflection_markers = ["wait"]  # changes the stage hash, not what the model sees
    run(cfg)
    assert loads["models"] == []
    sample = json.loads(_samples(tmp_path, "A").splitlines()[0])
    assert list(sample["reflection"]) == ["wait"]


@pytest.mark.parametrize("change", [{"max_new_tokens": 4}, {"seed": 7, "temperature": 0.5}, "system_prompt"])
def test_what_the_model_sees_or_how_it_samples_is_generated_again(tmp_path, tiny_model, shared_data, loads, change):
    run(_config(tmp_path, {"A": str(tiny_model)}, shared_data))
    loads["models"].clear(), loads.update(requests=0)
    if change == "system_prompt":
        cfg = _config(tmp_path, {"A": str(tiny_model)}, shared_data)
        cfg.system_prompt = "Think."
    elif "temperature" in change:
        cfg = EvaluateConfig(**{**_config(tmp_path, {"A": str(tiny_model)}, shared_data).model_dump(),
                                "protocol": "sampled", "samples": 2,
                                "engine": {"max_new_tokens": 5, "device": "cpu", **change}})
    else:
        cfg = _config(tmp_path, {"A": str(tiny_model)}, shared_data, **change)
    run(cfg)
    assert loads["models"] == [str(tiny_model)]
    assert loads["requests"] == 5 * cfg.samples


def test_a_killed_second_model_resumes_and_the_first_is_not_redone(tmp_path, tiny_model, second_model, shared_data,
                                                                    loads):
    cfg = _config(tmp_path, {"A": str(tiny_model), "B": str(second_model)}, shared_data, batch_size=1)
    loads["die_after"] = (str(second_model), 2)  # A's 5 samples are done, then B dies after 2 of its 5
    with pytest.raises(KeyboardInterrupt):
        run(cfg)
    loads.pop("die_after")
    loads["models"].clear(), loads.update(requests=0)
    run(cfg)
    assert loads == {"models": [str(second_model)], "requests": 3}
    results = json.loads((tmp_path / "eval/results.json").read_text())
    assert results["A"]["math500"]["n"] == 3 and results["B"]["math500"]["n"] == 3
