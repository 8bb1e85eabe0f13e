"""A tiny causal LM built on the spot (no download): a word-level tokenizer over a small
vocabulary and a randomly initialised 2-layer Llama. Enough for a real ``Trainer`` or TRL
``GRPOTrainer`` to run a few steps on a CPU in seconds.
"""

from __future__ import annotations

from typing import Any

WORDS = ["what", "is", "one", "two", "three", "four", "five", "plus", "minus", "equals"]
WORDS += ["yes", "no", "the", "answer"]
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>"]


def tokenizer() -> Any:
    """A ``PreTrainedTokenizerFast`` over ``WORDS`` with pad/unk/bos/eos and a chat-free
    whitespace pre-tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIAL, *WORDS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
    )


def model(tok: Any, seed: int = 0, hidden: int = 32, layers: int = 2) -> Any:
    """A random Llama sized to ``tok`` (2 layers of 32: about 30k parameters)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    return LlamaForCausalLM(config)


def sentences(n: int) -> list[str]:
    """``n`` short sentences over ``WORDS`` (a deterministic cycle)."""
    return [" ".join(WORDS[(i + j) % len(WORDS)] for j in range(6)) for i in range(n)]


def lm_dataset(tok: Any, n: int) -> Any:
    """``n`` tokenized sentences: a causal-LM training set for ``Trainer``."""
    from datasets import Dataset

    data = Dataset.from_dict({"text": sentences(n)})
    return data.map(lambda b: tok(b["text"]), batched=True, remove_columns=["text"])
