"""Tokenizers with the pytorch-transformers 1.0 API, plus batch encoding to tensors.

One module per tokenizer family; :mod:`.base` holds the API they share;
:mod:`.tokenizer_json` reads any Hugging Face ``tokenizer.json`` and :mod:`.chat_template`
renders chat templates.
"""

from __future__ import annotations

from .base import PreTrainedTokenizer, clean_up_tokenization
from .bert import BasicTokenizer, BertTokenizer, WordpieceTokenizer, load_vocab
from .chat_template import apply_chat_template, render_chat_template
from .gpt2 import GPT2Tokenizer, bytes_to_unicode
from .openai import OpenAIGPTTokenizer
from .tokenizer_json import PreTrainedTokenizerFast, TokenizerFileNotFoundError
from .transfo_xl import LMOrderedIterator, TransfoXLTokenizer, batchify
from .xlm import XLMTokenizer
from .xlnet import XLNetTokenizer

__all__ = [
    "BasicTokenizer",
    "BertTokenizer",
    "PreTrainedTokenizer",
    "WordpieceTokenizer",
    "clean_up_tokenization",
    "load_vocab",
    "GPT2Tokenizer",
    "OpenAIGPTTokenizer",
    "bytes_to_unicode",
    "LMOrderedIterator",
    "TransfoXLTokenizer",
    "batchify",
    "XLMTokenizer",
    "XLNetTokenizer",
    "PreTrainedTokenizerFast",
    "TokenizerFileNotFoundError",
    "apply_chat_template",
    "render_chat_template",
]

from .train_bpe import train_bpe, train_gpt2_tokenizer  # noqa: E402

__all__ += ["train_bpe", "train_gpt2_tokenizer"]
