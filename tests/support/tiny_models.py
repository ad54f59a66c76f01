"""Tiny models and tokenizers built on the spot, so tests never download weights.

A byte-level BPE trained in milliseconds on a few sentences stands in for a real tokenizer; 2-layer random
Llama, T5 and BERT models stand in for the real architectures. Everything saves with `save_pretrained` and
reloads through the same `from_pretrained` calls the toolkit uses for Hub models.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Generate an abstract for the title using the following items: retrieval personalization language models.",
    "Generate the review text written by a reviewer who has a given an overall rating of 5.0 for a product.",
    "Generate the content for a reddit post about hiking, cooking, chess and the weather in the mountains.",
    "Complete the text of the following email. title: meeting notes. text: Hi team, please find attached.",
    "\"The quick brown fox\" is a summary for \"jumps over the lazy dog\", and it was great! 123 456 789",
    "Ünïcödé text, emoji 🙂, quotes \" ' and newlines\nare part of real user profiles.",
]

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def make_tokenizer(vocab_size: int = 512, chat: bool = False, model_max_length: int = 2048):
    """A byte-level BPE `PreTrainedTokenizerFast` with <s>, </s>, <pad>, <unk> (and a chat template if asked)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    core.train_from_iterator(CORPUS * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        model_max_length=model_max_length,
    )
    if chat:
        tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def make_causal_lm(directory: str | Path, chat: bool = False, seed: int = 0, **sizes) -> Path:
    """Save a 2-layer random Llama with its tokenizer to `directory`; returns the path. `sizes` override the
    LlamaConfig (e.g. hidden_size=256, num_attention_heads=4 for the head size 64 GPU kernels want)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = make_tokenizer(chat=chat)
    config = LlamaConfig(**{
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
        **sizes,
    })
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_seq2seq_lm(directory: str | Path, seed: int = 0) -> Path:
    """Save a 2-layer random T5 with its tokenizer to `directory`; returns the path."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = make_tokenizer()
    config = T5Config(
        vocab_size=len(tokenizer),
        d_model=32,
        d_ff=64,
        d_kv=8,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        decoder_start_token_id=tokenizer.pad_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,  # tied tiny T5s only ever predict <pad>
    )
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_encoder(directory: str | Path, seed: int = 0) -> Path:
    """Save a 2-layer random BERT encoder (a Contriever stand-in) with its tokenizer to `directory`."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = make_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def make_mamba(directory: str | Path, seed: int = 0) -> Path:
    """Save a 2-layer random Mamba (a recurrent, state-space model) with its tokenizer to `directory`."""
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    tokenizer = make_tokenizer()
    config = MambaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        state_size=4,
        num_hidden_layers=2,
        expand=2,
        conv_kernel=4,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = MambaForCausalLM(config)
    directory = Path(directory)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory
