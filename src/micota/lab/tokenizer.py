"""The micro-lab tokenizer: byte-level BPE trained locally on lab text, saved as an HF fast tokenizer.

Byte-level, so any text (real benchmark problems too) still tokenizes. The normaliser and
pre-tokenizer are Qwen2's own (NFC, then its word/digit regex: one token per digit): a lab
model folder is a ``qwen2`` model, and transformers 5 loads the tokenizer of any ``qwen2``
folder as ``Qwen2Tokenizer``, which rebuilds exactly that pre-tokenizer around the saved
vocabulary and merges. Merges learned under any other pre-tokenizer would then be applied to
the wrong pieces (a lab tokenizer that merged whole phrases came back from a model folder
spelling ``Compute`` in 4 tokens), and the lab tokenizer folder, the scripted teacher, TRL and
vLLM would each count different tokens. Special tokens and chat template follow Qwen2.5 so
the lab models are drop-in for the real recipe's code paths. The assistant turn sits inside
``{% generation %}`` so TRL's ``assistant_only_loss`` can mask the prompt.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

from micota.lab.solutions import write_solution
from micota.lab.task import STYLES, format_user_turn, make_problems

IM_START, IM_END, ENDOFTEXT = "<|im_start|>", "<|im_end|>", "<|endoftext|>"
SPECIAL_TOKENS = [ENDOFTEXT, IM_START, IM_END]
_SPECIAL_RE = re.compile("|".join(map(re.escape, SPECIAL_TOKENS)))
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% if message['role'] == 'assistant' %}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}"
    "{{ '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def lab_corpus(n_problems: int = 1000, seed: int = 0) -> list[str]:
    """Texts the BPE merges are learned from: chat-formatted problems in every style, cut at the
    special tokens.

    The encoder splits special tokens off before BPE runs, so the merges must be learned on the
    pieces between them: trained on whole chat strings, 2 of 3 merges went to spelling
    ``<|im_start|>`` and ``Compute`` came out as 4 tokens inside a chat (a 2-step sample was 77
    tokens instead of 45).
    """
    rng = random.Random(seed)
    texts = []
    for problem in make_problems(n_problems, seed=seed, split="train", min_difficulty=1, max_difficulty=5):
        style = rng.choice(STYLES)
        template = rng.choice(("micota_generation", "lab_problem"))  # the merges serve either prompt
        chat = (f"{IM_START}user\n{format_user_turn(problem.text, template)}{IM_END}\n"
                f"{IM_START}assistant\n{write_solution(problem, style)}{IM_END}\n")
        texts.extend(piece for piece in _SPECIAL_RE.split(chat) if piece)
    return texts


def build_tokenizer(out_dir: str | Path, vocab_size: int = 1024, seed: int = 0):
    """Train the lab tokenizer and save it to ``out_dir``; return the ``PreTrainedTokenizerFast``.

    ``vocab_size`` counts the 256 byte symbols and 3 special tokens, so it must be > 259.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX

    if vocab_size <= 256 + len(SPECIAL_TOKENS):
        raise ValueError(f"vocab_size must be > {256 + len(SPECIAL_TOKENS)} (bytes + special tokens), got {vocab_size}")
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()  # as Qwen2Tokenizer builds it (transformers/models/qwen2/tokenization_qwen2.py)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lab_corpus(seed=seed), trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=ENDOFTEXT,
        bos_token=None,
        unk_token=None,
        additional_special_tokens=[IM_START],
        model_max_length=4096,
    )
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out_dir)
    return fast
