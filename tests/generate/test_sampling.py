"""Greedy is greedy: a model's generation_config.json does not change what the hf engine samples."""

from __future__ import annotations

import json
import shutil

import pytest

from micota.generate import EngineConfig, GenerationRequest, load_engine
from micota.generate.run import GenerateConfig, run
from micota.generate.sampling import effective_sampling, request_seed
from micota.jsonl import read_jsonl


@pytest.fixture(scope="module")
def instruct_style_model(varied_model, tmp_path_factory):
    """The tiny model with Qwen2.5-Instruct's kind of generation_config.json (repetition_penalty 1.1)."""
    folder = tmp_path_factory.mktemp("instruct") / "model"
    shutil.copytree(varied_model, folder)
    config = json.loads((folder / "generation_config.json").read_text())
    config.update(repetition_penalty=1.1, do_sample=False)
    (folder / "generation_config.json").write_text(json.dumps(config))
    return folder


def texts(model, **settings):
    requests = [GenerationRequest(id=f"p{i}", messages=[{"role": "user", "content": f"What is {i} + 4? Wait, verify."}]) for i in range(6)]
    engine = load_engine(EngineConfig(model=str(model), max_new_tokens=24, batch_size=6, **settings))
    return {c.id: c.text for c in engine.generate(requests)}


def test_generation_config_repetition_penalty_is_not_applied_unless_asked(varied_model, instruct_style_model):
    plain = texts(varied_model)
    assert texts(instruct_style_model) == plain  # greedy, penalty 1.0: the model's 1.1 is ignored
    with_defaults = texts(instruct_style_model, use_generation_config=True)
    assert with_defaults != plain  # applying the model's 1.1 changes the text, so the check above can fail


def test_effective_sampling_reads_model_defaults_only_for_unset_fields(instruct_style_model):
    base = EngineConfig(model=str(instruct_style_model))
    assert effective_sampling(base)["repetition_penalty"] == 1.0
    assert effective_sampling(base.model_copy(update={"use_generation_config": True}))["repetition_penalty"] == 1.1
    explicit = EngineConfig(model=str(instruct_style_model), use_generation_config=True, repetition_penalty=1.0)
    assert effective_sampling(explicit)["repetition_penalty"] == 1.0  # a recipe's own value wins
    qwen = {"do_sample": True, "temperature": 0.7, "top_p": 0.8, "top_k": 20, "repetition_penalty": 1.05}
    sampled = effective_sampling(EngineConfig(model="m", use_generation_config=True), qwen)
    assert (sampled["temperature"], sampled["top_p"], sampled["top_k"]) == (0.7, 0.8, 20)


def test_stage_records_and_manifest_carry_effective_parameters(instruct_style_model, tmp_path):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"problem": "What is 1 + 1?", "answer": "2"}) + "\n")
    for use, penalty in ((False, 1.0), (True, 1.1)):
        out = tmp_path / f"gen-{use}"
        manifest = run(GenerateConfig(out_dir=out, prompts=prompts, progress=False,
                                      engine=EngineConfig(model=str(instruct_style_model), max_new_tokens=4, use_generation_config=use)))
        assert manifest.metrics["sampling"]["repetition_penalty"] == penalty
        assert read_jsonl(out / "data.jsonl")[0]["sampling"]["repetition_penalty"] == penalty


def test_sampled_hf_output_does_not_depend_on_batch_neighbours(tiny_model):
    requests = [GenerationRequest(id=f"p{i}", messages=[{"role": "user", "content": "What is 3 + 4?"}]) for i in range(4)]
    cfg = EngineConfig(model=str(tiny_model), max_new_tokens=10, batch_size=2, temperature=1.0)
    first = {c.id: c.text for c in load_engine(cfg).generate(requests)}
    again = {c.id: c.text for c in load_engine(cfg).generate(requests)}
    assert first == again  # each batch is seeded from its request ids
    assert len(set(first.values())) > 1  # the same prompt, different samples: it really samples
    assert request_seed(0, "p1", 7) == 7


def test_stop_strings_cut_the_text_and_count_tokens_like_vllm(varied_model):
    requests = [GenerationRequest(id="a", messages=[{"role": "user", "content": "What is 3 + 4?"}])]
    free = next(iter(load_engine(EngineConfig(model=str(varied_model), max_new_tokens=20)).generate(requests)))
    stop = free.text[3:5]
    assert len(stop) == 2 and stop.strip(), f"pick another slice of {free.text!r}"
    cut = next(iter(load_engine(EngineConfig(model=str(varied_model), max_new_tokens=20, stop=[stop])).generate(requests)))
    assert cut.finish_reason == "stop" and cut.text == free.text[: free.text.find(stop)]
    assert 1 <= cut.n_tokens <= free.n_tokens
