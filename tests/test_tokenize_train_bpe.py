"""Tests of the byte-level BPE trainer (ptfunc.tokenize.train_bpe)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ptfunc.tokenize import GPT2Tokenizer, bytes_to_unicode
from ptfunc.tokenize.train_bpe import train_bpe, train_gpt2_tokenizer

SMALL_CORPUS = [
    "The quick brown fox jumps over the lazy dog.\n",
    "the the the theory of the thermal theme, they thought.\n",
    "Naïve café: 3.14 * 2 = 6.28; 東京 and 東京 again, ünïcödé ünïcödé!\n",
    "It's, we're, they've, I'm, you'll, he'd -- don't   stop\t\ttabs\n",
    "aaaa aaaa aaaa bbbb bbbb abab abab abab\n",
] * 3


def _corpus_lines(shared_fixtures: Path) -> list[str]:
    path = shared_fixtures / "corpora" / "tinyshakespeare.txt"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _reference(texts, vocab_size, min_frequency=2, specials=("<|endoftext|>",)):
    """Merges and vocabulary of the Rust ``tokenizers`` BpeTrainer, configured as ours."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    raw = json.loads(tok.to_str())["model"]["merges"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in raw]
    return tok.get_vocab(), merges


def test_hand_computed_example():
    # words: "aaab", "Ġaaab", "Ġab" (Ġ = byte-level space), once each
    # pairs: (a,a)=4 (a,b)=3 (Ġ,a)=2 -> merge a+a
    # then (a,b)=3 (aa,a)=2 (Ġ,aa)=1 (Ġ,a)=1 -> merge a+b
    # then (aa,ab)=2 (Ġ,aa)=1 (Ġ,ab)=1 -> merge aa+ab; the rest occur once < 2
    encoder, merges = train_bpe(["aaab aaab ab"], 1000)
    assert merges == [("a", "a"), ("a", "b"), ("aa", "ab")]
    assert len(encoder) == 256 + 3 + 1
    assert [encoder[t] for t in ("aa", "ab", "aaab", "<|endoftext|>")] == [256, 257, 258, 259]
    # the 256 byte symbols come first, in GPT-2's order
    assert sorted(encoder, key=encoder.get)[:256] == sorted(bytes_to_unicode().values())
    # vocab_size bounds the number of merges (specials count)
    assert train_bpe(["aaab aaab ab"], 258)[1] == [("a", "a")]
    # min_frequency=1 lets single occurrences merge
    assert len(train_bpe(["aaab aaab ab"], 1000, min_frequency=1)[1]) > 3


def test_tie_break_smallest_ids():
    # "ab" and "cd" both occur twice: the pair with the smaller ids (a, b) goes first
    _, merges = train_bpe(["cd ab cd ab"], 1000, special_tokens=())
    assert merges[:2] == [("a", "b"), ("c", "d")]


def test_vocab_size_too_small():
    with pytest.raises(ValueError, match="at least 257"):
        train_bpe(["hello"], 256)
    with pytest.raises(ValueError, match="at least 258"):
        train_bpe(["hello"], 257, special_tokens=("<a>", "<b>"))
    assert len(train_bpe(["hello"], 256, special_tokens=())[0]) == 256


def test_special_tokens_at_end_and_cut_from_text():
    encoder, merges = train_bpe(
        ["xy<|endoftext|>xy<|endoftext|>"], 1000, special_tokens=("<|endoftext|>", "<pad>")
    )
    assert merges == [("x", "y")]
    assert encoder["<|endoftext|>"] == len(encoder) - 2
    assert encoder["<pad>"] == len(encoder) - 1


@pytest.mark.parametrize("vocab_size", [260, 300, 400])
def test_matches_rust_tokenizers_small(vocab_size):
    """Merges agree exactly with the ``tokenizers`` BpeTrainer.

    Both break count ties by the smallest (left id, right id) pair, ids being assigned in
    the same relative order (bytes by code point, then merged tokens in creation order),
    so the merge lists are identical, not just their prefixes. Only the ids differ: the
    reference puts special tokens first, we put them last (as GPT-2 does).
    """
    ref_vocab, ref_merges = _reference(SMALL_CORPUS, vocab_size)
    encoder, merges = train_bpe(SMALL_CORPUS, vocab_size)
    assert merges == ref_merges
    assert set(encoder) == set(ref_vocab)


def test_matches_rust_tokenizers_corpus(shared_fixtures):
    lines = _corpus_lines(shared_fixtures)[:8000]
    ref_vocab, ref_merges = _reference(lines, 1024, min_frequency=3)
    encoder, merges = train_bpe(lines, 1024, min_frequency=3)
    assert merges == ref_merges
    assert set(encoder) == set(ref_vocab)


def test_deterministic():
    first = train_bpe(SMALL_CORPUS, 400)
    second = train_bpe(iter(list(SMALL_CORPUS)), 400)
    assert first == second
    assert list(first[0].items()) == list(second[0].items())


@pytest.fixture(scope="module")
def small_tokenizer() -> GPT2Tokenizer:
    return train_gpt2_tokenizer(SMALL_CORPUS, 400)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=60))
def test_round_trip_arbitrary_unicode(small_tokenizer, text):
    ids = small_tokenizer.encode(text)
    assert small_tokenizer.decode(ids, clean_up_tokenization_spaces=False) == text


def test_round_trip_corpus_lines(small_tokenizer):
    for line in SMALL_CORPUS:
        assert (
            small_tokenizer.decode(small_tokenizer.encode(line), clean_up_tokenization_spaces=False)
            == line
        )


def test_writes_files_and_reloads(tmp_path):
    tok = train_gpt2_tokenizer(SMALL_CORPUS, 350, tmp_path / "out")
    vocab_file = tmp_path / "out" / "vocab.json"
    merges_file = tmp_path / "out" / "merges.txt"
    assert vocab_file.is_file() and merges_file.is_file()
    again = GPT2Tokenizer(vocab_file, merges_file)
    assert again.encoder == tok.encoder
    assert again.bpe.merges == tok.bpe.merges
    text = SMALL_CORPUS[2]
    assert again.encode(text) == tok.encode(text)


def test_tinyshakespeare_compresses_and_round_trips(shared_fixtures):
    lines = _corpus_lines(shared_fixtures)
    tok = train_gpt2_tokenizer(lines, 2048)
    assert tok.vocab_size == 2048
    text = "".join(lines)
    ids = tok.encode(text)
    assert len(text.encode("utf-8")) / len(ids) > 2.5  # about 2.9 at 2048 tokens
    for line in lines[:500:7]:
        assert tok.decode(tok.encode(line), clean_up_tokenization_spaces=False) == line
    assert tok.decode(ids, clean_up_tokenization_spaces=False) == text
