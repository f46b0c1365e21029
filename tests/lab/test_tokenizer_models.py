import json

import pytest

from micota.errors import MicotaError
from micota.lab.models import LAB_MODEL_SIZES, build_model, count_parameters
from micota.lab.solutions import write_solution
from micota.lab.task import format_user_turn, parse_problem


def _chat(style="long"):
    problem = parse_problem("Compute 3+5*2-7 mod 10, left to right.")
    return [
        {"role": "user", "content": format_user_turn(problem.text)},
        {"role": "assistant", "content": write_solution(problem, style)},
    ]


def test_tokenizer_round_trips_lab_and_foreign_text(lab_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lab_tokenizer_dir)
    for text in ("Compute 3+5*2-7 mod 10.", "Find $\\int_0^1 x^2\\,dx$ — 测试 ∑", "\\boxed{42}"):
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    digits = tok.convert_ids_to_tokens(tok("12345", add_special_tokens=False)["input_ids"])
    assert digits == ["1", "2", "3", "4", "5"]  # one token per digit, as Qwen2.5
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|endoftext|>")
    assert len(tok) == 320


def test_chat_template_is_qwen_style_with_assistant_mask(lab_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lab_tokenizer_dir)
    messages = _chat()
    text = tok.apply_chat_template(messages, tokenize=False)
    assert text == (
        f"<|im_start|>user\n{messages[0]['content']}<|im_end|>\n"
        f"<|im_start|>assistant\n{messages[1]['content']}<|im_end|>\n"
    )
    prompt = tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True)
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    out = tok.apply_chat_template(messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"]) if m]
    assert tok.decode(masked) == messages[1]["content"] + "<|im_end|>"  # EOS is in the labels


@pytest.mark.parametrize("style", ["direct", "short", "long"])
def test_generation_prompt_tokens_are_a_prefix_of_the_chat_tokens(lab_tokenizer_dir, style):
    # Otherwise the first response token differs between training (merged across "assistant\n")
    # and generation (which starts right after it), and SFT's prompt mask lands one token off.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lab_tokenizer_dir)
    messages = _chat(style)
    prompt = tok(tok.apply_chat_template(messages[:1], tokenize=False, add_generation_prompt=True), add_special_tokens=False)
    full = tok(tok.apply_chat_template(messages, tokenize=False), add_special_tokens=False)
    assert full["input_ids"][: len(prompt["input_ids"])] == prompt["input_ids"]


def test_vllm_cpu_head_widths(lab_tokenizer_dir):
    # vLLM's CPU attention accepts head widths 32, 64, 80, 96, 112, 128, 160, ... only.
    from transformers import AutoTokenizer

    from micota.lab.models import lab_model_config

    tok = AutoTokenizer.from_pretrained(lab_tokenizer_dir)
    for name in LAB_MODEL_SIZES:
        config = lab_model_config(name, tok)
        assert config.hidden_size // config.num_attention_heads in (32, 64, 80, 96, 112, 128), name


def test_model_builds_and_loads(lab_tokenizer_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    folder = build_model("student", lab_tokenizer_dir, tmp_path / "student", seed=0)
    assert (folder / "model.safetensors").is_file() and (folder / "tokenizer.json").is_file()
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.model_type == "qwen2" and model.config.vocab_size == 320
    eos = json.loads((folder / "generation_config.json").read_text())["eos_token_id"]
    assert 2 in eos  # <|im_end|> id: the third special token
    assert count_parameters(model) < 300_000


def test_ta_is_clearly_larger_than_student(lab_tokenizer_dir):
    from transformers import AutoTokenizer, Qwen2ForCausalLM

    from micota.lab.models import lab_model_config

    tok = AutoTokenizer.from_pretrained(lab_tokenizer_dir)
    sizes = {name: count_parameters(Qwen2ForCausalLM(lab_model_config(name, tok))) for name in LAB_MODEL_SIZES}
    assert sizes["ta"] > 3 * sizes["student"]
    assert sizes["student-tiny"] < sizes["student"] < sizes["student-large"] < sizes["ta"]


def test_unknown_size_names_the_choices(lab_tokenizer_dir, tmp_path):
    with pytest.raises(MicotaError, match="Available: student"):
        build_model("huge", lab_tokenizer_dir, tmp_path / "x")
