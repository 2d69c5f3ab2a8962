"""Parity of ``ptfunc.tokenize.OpenAIGPTTokenizer`` with the reference OpenAI GPT tokenizers.

References (tolerance: ids equal exactly):

- "hf": ``transformers.OpenAIGPTTokenizer`` 5.x (Rust ``tokenizers``: ``BertNormalizer``
  (lower-case) + ``BertPreTokenizer`` + BPE with ``</w>``; transformers 5 has no ftfy/spaCy
  path);
- "1.0": ``pytorch_transformers.OpenAIGPTTokenizer`` 1.0.0 with ftfy/spaCy absent, i.e.
  its ``BasicTokenizer(do_lower_case=True)`` fallback.

Vocabulary: the original ``encoder_bpe_40000.json`` + ``vocab_40000.bpe`` (shared fixtures).
"""

from __future__ import annotations

import functools
import json
import logging
import pickle
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptfunc.tokenize import OpenAIGPTTokenizer

transformers = pytest.importorskip("transformers")
ptt = pytest.importorskip("pytorch_transformers")
logging.getLogger("pytorch_transformers").setLevel(logging.ERROR)

CORPORA = [
    "bert_sample_text.txt",
    "botchan.txt",
    "ptb.test.txt",
    "tinyshakespeare.txt",
    "wikitext-2.test.txt",
]
HF_LINES = 1500  # lines per corpus compared with the Rust reference
OLD_LINES = 400  # ... and with the 1.0 Python reference
HYPOTHESIS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)

EDGE_CASES = [
    "",
    " ",
    "\n\n",
    "Hello, World!",
    "Don't STOP believin'...",
    "café NAÏVE Ångström",
    "e\u0301 o\u0308",
    "3.14 1,000,000 x2 --- ...",
    "中文字符 日本語 한국어",
    "😀 ☃ a☃b",
    "\x00\x01\x07\ufffd\u200b",
    "\u3000x\u00a0y",
    "<unk> x<unk>y",
    "hello\tworld\r\nnew line",
    "ﬁ ß İ Σς",
    "a" * 120,
    "supercalifragilisticexpialidocious antidisestablishment",
]


@functools.cache
def _tokenizers(fixtures: str) -> dict[str, object]:
    base = Path(fixtures) / "openai-gpt"
    vocab, merges = str(base / "encoder_bpe_40000.json"), str(base / "vocab_40000.bpe")
    return {
        "ours": OpenAIGPTTokenizer(vocab, merges),
        "hf": transformers.OpenAIGPTTokenizer(vocab, merges),
        "1.0": ptt.OpenAIGPTTokenizer(vocab, merges),
    }


@pytest.fixture(scope="module")
def toks(shared_fixtures: Path) -> dict[str, object]:
    return _tokenizers(str(shared_fixtures))


def _lines(fixtures: Path, name: str, count: int) -> list[str]:
    text = (fixtures / "corpora" / name).read_text(encoding="utf-8")
    return text.split("\n")[:count]


def test_vocabulary(toks):
    ours = toks["ours"]
    assert ours.vocab_size == len(ours) == 40478 and len(ours.bpe.merges) == 40000
    assert ours.unk_token_id == ours.encoder["<unk>"]


@pytest.mark.parametrize("corpus", CORPORA)
def test_corpus_ids_match_hf(toks, shared_fixtures, corpus):
    ours, hf = toks["ours"], toks["hf"]
    for line in _lines(shared_fixtures, corpus, HF_LINES):
        assert ours.encode(line) == hf.encode(line), line


@pytest.mark.parametrize("corpus", CORPORA)
def test_corpus_match_1_0(toks, shared_fixtures, corpus):
    ours, old = toks["ours"], toks["1.0"]
    for line in _lines(shared_fixtures, corpus, OLD_LINES):
        ids = ours.encode(line)
        assert ours.tokenize(line) == old.tokenize(line), line
        assert ids == old.encode(line)
        assert ours.decode(ids) == old.decode(ids)


@pytest.mark.parametrize("text", EDGE_CASES)
def test_edge_cases(toks, text):
    ours, hf, old = toks["ours"], toks["hf"], toks["1.0"]
    ids = ours.encode(text)
    assert ids == hf.encode(text) == old.encode(text)
    assert ours.tokenize(text) == old.tokenize(text)
    assert ours.decode(ids) == old.decode(ids)
    # today's transformers does not clean up spaces by default; the joined text agrees
    assert ours.decode(ids, clean_up_tokenization_spaces=False) == hf.decode(ids)


@functools.cache
def _stable_chars() -> list[str]:
    """Characters assigned with the same category in Unicode 3.2 and in this Python.

    The Rust normalizer's Unicode tables are older than Python's: characters added later
    (e.g. U+1E130, a combining mark since Unicode 12) are kept by it and become ``<unk>``,
    where Python's BasicTokenizer (1.0's and ours) strips them as accents or controls.
    """
    old = unicodedata.ucd_3_2_0
    return [
        c
        for c in map(chr, range(0x30000))
        if old.category(c) not in ("Cn", "Co", "Cs") and old.category(c) == unicodedata.category(c)
    ]


@HYPOTHESIS
@given(st.data())
def test_hf_parity_property(shared_fixtures, data):
    text = data.draw(st.text(st.sampled_from(_stable_chars()), max_size=60))
    toks = _tokenizers(str(shared_fixtures))
    assert toks["ours"].encode(text) == toks["hf"].encode(text)


@HYPOTHESIS
@given(st.text(max_size=40))
def test_1_0_parity_property(shared_fixtures, text):
    toks = _tokenizers(str(shared_fixtures))
    assert toks["ours"].encode(text) == toks["1.0"].encode(text)


def test_unassigned_code_points_follow_1_0(toks):
    """Known difference: an unassigned code point (category Cn) is dropped as a control
    character by 1.0's Python BasicTokenizer (and ours); the Rust BertNormalizer keeps it,
    and it becomes ``<unk>``."""
    ours, hf, old = toks["ours"], toks["hf"], toks["1.0"]
    text = "\u0378a \U000111f5"
    assert ours.encode(text) == old.encode(text) == [ours.encoder["a</w>"]]
    assert hf.encode(text) == [ours.unk_token_id, ours.encoder["a</w>"], ours.unk_token_id]


def test_decode_joins_words(toks):
    ours = toks["ours"]
    ids = ours.encode("Hello, World! Don't go.")
    assert ours.tokenize("Hello, World!") == ["hello</w>", ",</w>", "world</w>", "!</w>"]
    assert ours.decode(ids) == "hello, world! don't go."
    assert ours.decode(ids, clean_up_tokenization_spaces=False) == "hello , world ! don ' t go ."


def test_added_tokens_and_save_reload(shared_fixtures, tmp_path):
    base = shared_fixtures / "openai-gpt"
    ours = OpenAIGPTTokenizer(base / "encoder_bpe_40000.json", base / "vocab_40000.bpe")
    hf = transformers.OpenAIGPTTokenizer(
        str(base / "encoder_bpe_40000.json"), str(base / "vocab_40000.bpe")
    )
    assert ours.add_tokens(["<new>", "hello</w>"]) == 1  # the second is in the vocabulary
    hf.add_tokens(["<new>"])
    assert ours.add_special_tokens({"cls_token": "<cls>", "sep_token": "<sep>"}) == 2
    text = "Hello <new> world<new>again <cls> x <sep>"
    assert ours.tokenize(text) == [
        "hello</w>",
        "<new>",
        "world</w>",
        "<new>",
        "again</w>",
        "<cls>",
        "x</w>",
        "<sep>",
    ]
    assert ours.encode("a <new> b") == hf.encode("a <new> b")
    assert ours.cls_token_id == 40479 and len(ours) == 40481
    ours.save_pretrained(tmp_path)
    assert (tmp_path / "merges.txt").read_bytes() == (base / "vocab_40000.bpe").read_bytes()
    saved = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert saved == json.loads((base / "encoder_bpe_40000.json").read_text(encoding="utf-8"))
    again = OpenAIGPTTokenizer.from_pretrained(tmp_path)
    assert again.added_tokens_encoder == ours.added_tokens_encoder
    assert again.encode(text) == ours.encode(text)
    assert again.decode(again.encode(text)) == "hello <new>world <new>again <cls>x <sep>"
    assert pickle.loads(pickle.dumps(again)).encode(text) == again.encode(text)
