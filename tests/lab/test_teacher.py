import pytest

from micota.generate.engine import EngineConfig, GenerationRequest, ScriptedOptions, load_engine
from micota.lab.task import format_user_turn, make_problems, solve
from micota.lab.teacher import ScriptedTeacherEngine


def _requests(n=200):
    problems = make_problems(n, seed=0, split="train")
    return problems, [
        GenerationRequest(id=p.id, messages=[{"role": "user", "content": format_user_turn(p.text)}]) for p in problems
    ]


def _engine(tok, **kw):
    options = ScriptedOptions(style=kw.pop("style", "long"), error_rate=kw.pop("error_rate", 0.0))
    return load_engine(EngineConfig(engine="scripted", model=str(tok), scripted=options, **kw))


def _boxed(text):
    return text.rsplit("\\boxed{", 1)[1].split("}", 1)[0] if "\\boxed{" in text else None


def test_registered_engine_is_the_scripted_teacher(lab_tokenizer_dir):
    assert isinstance(_engine(lab_tokenizer_dir), ScriptedTeacherEngine)


def test_error_rate_is_respected_and_deterministic(lab_tokenizer_dir):
    problems, requests = _requests(400)
    engine = _engine(lab_tokenizer_dir, error_rate=0.3, seed=7)
    first = list(engine.generate(requests))
    again = list(_engine(lab_tokenizer_dir, error_rate=0.3, seed=7).generate(requests))
    assert first == again
    wrong = sum(_boxed(c.text) != str(solve(p)) for p, c in zip(problems, first))
    assert 0.2 < wrong / len(problems) < 0.4
    other_seed = list(_engine(lab_tokenizer_dir, error_rate=0.3, seed=8).generate(requests))
    assert [c.text for c in other_seed] != [c.text for c in first]


def test_error_rate_zero_is_always_right_and_counts_tokens(lab_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lab_tokenizer_dir)
    problems, requests = _requests(50)
    for p, c in zip(problems, _engine(lab_tokenizer_dir, style="short").generate(requests)):
        assert _boxed(c.text) == str(solve(p)) and c.finish_reason == "stop"
        assert c.n_tokens == len(tok(c.text, add_special_tokens=False)["input_ids"]) + 1


def test_truncates_at_max_new_tokens(lab_tokenizer_dir):
    _, requests = _requests(5)
    for c in _engine(lab_tokenizer_dir, max_new_tokens=20).generate(requests):
        assert c.finish_reason == "length" and c.n_tokens == 20 and "\\boxed" not in c.text


def test_non_lab_prompt_gets_no_box(lab_tokenizer_dir):
    request = GenerationRequest(id="x", messages=[{"role": "user", "content": "Prove Fermat's last theorem."}])
    (completion,) = _engine(lab_tokenizer_dir).generate([request])
    assert _boxed(completion.text) is None and completion.finish_reason == "stop"


@pytest.mark.parametrize("style,marker", [("long", "Wait"), ("short", "The answer is"), ("direct", "\\boxed")])
def test_style_is_used(lab_tokenizer_dir, style, marker):
    _, requests = _requests(3)
    assert all(marker in c.text for c in _engine(lab_tokenizer_dir, style=style).generate(requests))
