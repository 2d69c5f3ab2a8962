"""Parity of ``ptfunc.tokenize.TransfoXLTokenizer`` and ``LMOrderedIterator`` with
pytorch-transformers 1.0.0.

Reference: ``pytorch_transformers.TransfoXLTokenizer`` and
``pytorch_transformers.tokenization_transfo_xl.LMOrderedIterator`` 1.0.0 (today's
``transformers`` 5 no longer has Transformer-XL). Tolerance: vocabularies, symbols, ids
and batches equal exactly.

1.0 splits every line around its special tokens and applies ``add_eos`` to each piece
(an ``<eos>`` before each ``<unk>`` of a line, none on blank lines); we do not copy that
(see the module docstring). The corpus comparisons therefore use 1.0 built without
special tokens (``unk_token=None, eos_token=None, additional_special_tokens=[]``), which
is the original Transformer-XL behaviour; ``test_eos_per_line_not_per_piece`` checks the
difference itself. Corpora (PTB and WikiText-2 test sets, which hold ``<unk>``) come from
the shared fixtures.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from ptfunc.tokenize import LMOrderedIterator, TransfoXLTokenizer, batchify

ptt = pytest.importorskip("pytorch_transformers")
from pytorch_transformers import tokenization_transfo_xl as ptt_txl  # noqa: E402

logging.getLogger("pytorch_transformers").setLevel(logging.ERROR)

CORPORA = ["ptb.test.txt", "wikitext-2.test.txt"]
OPTIONS = {
    "default": {"special": ["<unk>", "<eos>"]},
    "lower-min3": {"special": ["<unk>", "<eos>"], "lower_case": True, "min_freq": 3},
    "max2000": {"special": ["<unk>", "<eos>"], "max_size": 2000},
    "unk-only": {"special": ["<unk>"], "lower_case": True, "min_freq": 2, "max_size": 5000},
}
EOS_MODES = {
    "eos": {"add_eos": True},
    "none": {"add_eos": False},
    "double": {"add_double_eos": True},
}
LINES = 250  # lines per corpus compared with tokenize / convert_tokens_to_ids


def _old(**options):
    """1.0's tokenizer without special-token splitting (the original Transformer-XL)."""
    return ptt.TransfoXLTokenizer(
        **options, unk_token=None, eos_token=None, additional_special_tokens=[]
    )


@functools.cache
def _built(fixtures: str, corpus: str, option: str, count_eos: bool):
    path = os.path.join(fixtures, "corpora", corpus)
    old = _old(**OPTIONS[option])
    old_sents = old.count_file(path, add_eos=count_eos)
    old.build_vocab()
    ours = TransfoXLTokenizer(**OPTIONS[option])
    our_sents = ours.count_file(path, add_eos=count_eos)
    ours.build_vocab()
    return path, old, ours, old_sents == our_sents


@pytest.mark.parametrize(
    ("corpus", "option"),
    [("ptb.test.txt", option) for option in OPTIONS]
    + [("wikitext-2.test.txt", "default"), ("wikitext-2.test.txt", "unk-only")],
)
def test_vocab_and_encode_file_match_1_0(shared_fixtures, corpus, option):
    path, old, ours, same_sents = _built(str(shared_fixtures), corpus, option, True)
    assert same_sents
    assert ours.idx2sym == old.idx2sym
    assert ours.sym2idx == dict(old.sym2idx)
    assert ours.counter == old.counter
    assert len(ours) == len(old)
    assert torch.equal(ours.encode_file(path, ordered=True), old.encode_file(path, ordered=True))


@pytest.mark.parametrize("mode", list(EOS_MODES))
def test_encode_file_modes_match_1_0(shared_fixtures, mode):
    path, old, ours, _ = _built(str(shared_fixtures), "ptb.test.txt", "lower-min3", False)
    got = ours.encode_file(path, **EOS_MODES[mode])
    want = old.encode_file(path, **EOS_MODES[mode])
    assert len(got) == len(want) == 3761
    assert all(g.dtype == torch.int64 and torch.equal(g, w) for g, w in zip(got, want))
    ordered = ours.encode_file(path, ordered=True, **EOS_MODES[mode])
    assert torch.equal(ordered, torch.cat(want))


@pytest.mark.parametrize("corpus", CORPORA)
def test_tokenize_and_ids_on_lines_match_1_0(shared_fixtures, corpus):
    _, old, ours, _ = _built(str(shared_fixtures), corpus, "unk-only", False)
    with open(shared_fixtures / "corpora" / corpus, encoding="utf-8") as handle:
        lines = [next(handle) for _ in range(LINES)]
    for line in lines:
        for mode in EOS_MODES.values():
            tokens = ours.tokenize(line, **mode)
            assert tokens == old.tokenize(line, **mode), line
            assert ours.convert_tokens_to_ids(tokens) == old.convert_tokens_to_ids(tokens)
        assert ours.encode(line) == old.encode(line)
        ids = old.encode(line)
        assert ours.decode(ids) == old.decode(ids)
        assert ours.decode(ids, clean_up_tokenization_spaces=False) == old.decode(
            ids, clean_up_tokenization_spaces=False
        )
    sents = [old.tokenize(line, add_eos=True) for line in lines]
    for got, want in zip(ours.encode_sents(sents), old.encode_sents(sents)):
        assert torch.equal(got, want)
    assert torch.equal(
        ours.encode_sents(sents, ordered=True), old.encode_sents(sents, ordered=True)
    )


def test_count_sents_matches_1_0():
    sents = [["b", "a", "b"], ["c", "a"], ["d", "c", "b", "e"], ["e"]]
    old, ours = (
        _old(special=["<unk>"], min_freq=2),
        TransfoXLTokenizer(special=["<unk>"], min_freq=2),
    )
    old.count_sents(sents)
    ours.count_sents(sents)
    old.build_vocab()
    ours.build_vocab()
    assert ours.idx2sym == old.idx2sym == ["<unk>", "b", "a", "c", "e"]


def test_eos_per_line_not_per_piece():
    """1.0 (with its default special tokens) adds <eos> per piece between specials."""
    old = ptt.TransfoXLTokenizer(special=["<unk>", "<eos>"])
    ours = TransfoXLTokenizer(special=["<unk>", "<eos>"])
    line = " the <unk> cat <unk> sat \n"
    assert old.tokenize(line, add_eos=True) == ["the", "<eos>", "<unk>", "cat", "<eos>", "<unk>",
                                                "sat", "<eos>"]  # fmt: skip
    assert ours.tokenize(line, add_eos=True) == ["the", "<unk>", "cat", "<unk>", "sat", "<eos>"]
    assert ours.tokenize(line, add_eos=True) == _old().tokenize(line, add_eos=True)
    assert old.tokenize(" \n", add_eos=True) == []  # 1.0 drops the blank line's <eos>
    assert ours.tokenize(" \n", add_eos=True) == ["<eos>"] == _old().tokenize(" \n", add_eos=True)
    # glued special tokens stay whole, as in 1.0
    assert ours.tokenize("a<unk>b") == ["a", "<unk>", "b"] == old.tokenize("a<unk>b")


def test_delimiters_and_case():
    comma = TransfoXLTokenizer(delimiter=",")
    assert (
        comma.tokenize(" a,b ,, c \n")
        == ["a", "b ", "", " c"]
        == _old(delimiter=",").tokenize(" a,b ,, c \n")
    )
    chars = TransfoXLTokenizer(delimiter="", lower_case=True)
    assert chars.tokenize(" Ab c\n", add_eos=True) == ["a", "b", " ", "c", "<eos>"]
    ws = TransfoXLTokenizer()
    assert ws.tokenize("\tA  b\u3000c\n") == ["A", "b", "c"]


@pytest.mark.parametrize(
    ("bsz", "bptt", "ext_len"), [(1, 7, None), (4, 35, None), (3, 10, 5), (10, 70, 0), (7, 1, 2)]
)
def test_ordered_iterator_matches_1_0(shared_fixtures, bsz, bptt, ext_len):
    path, _, ours, _ = _built(str(shared_fixtures), "ptb.test.txt", "default", True)
    data = ours.encode_file(path, ordered=True)[:5003]
    old_it = ptt_txl.LMOrderedIterator(data, bsz, bptt, ext_len=ext_len)
    it = LMOrderedIterator(data, bsz, bptt, ext_len=ext_len)
    got, want = list(it), list(old_it)
    assert len(got) == len(want) == len(it)
    assert it.n_batch == old_it.n_batch
    for (d, t, n), (d0, t0, n0) in zip(got, want):
        assert n == n0 and d.shape == d0.shape and t.shape == (bsz, n)
        assert torch.equal(d, d0) and torch.equal(t, t0)
        assert d.is_contiguous() and t.is_contiguous()
    for start in (0, 3):
        for (d, t, n), (d0, t0, n0) in zip(
            it.get_fixlen_iter(start), old_it.get_fixlen_iter(start)
        ):
            assert n == n0 and torch.equal(d, d0) and torch.equal(t, t0)


def test_variable_length_iterator_matches_1_0_given_the_seed(shared_fixtures):
    path, _, ours, _ = _built(str(shared_fixtures), "ptb.test.txt", "default", True)
    data = ours.encode_file(path, ordered=True)[:20000]
    old_it = ptt_txl.LMOrderedIterator(data, 4, 30, ext_len=3)
    it = LMOrderedIterator(data, 4, 30, ext_len=3)
    np.random.seed(1234)
    want = list(old_it.get_varlen_iter())
    got = list(it.get_varlen_iter(rng=1234))
    again = list(it.get_varlen_iter(rng=np.random.RandomState(1234)))
    assert len(got) == len(want) == len(again) > 10
    assert len({n for _, _, n in got}) > 3  # lengths do vary
    for (d, t, n), (d0, t0, n0), (d1, _, _) in zip(got, want, again):
        assert n == n0 and torch.equal(d, d0) and torch.equal(t, t0) and torch.equal(d, d1)


def test_batchify_and_iterator_errors():
    assert batchify(torch.arange(10), 3).tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    with pytest.raises(ValueError, match="1-D"):
        batchify(torch.zeros(2, 3, dtype=torch.int64), 2)
    with pytest.raises(TypeError, match="integer"):
        batchify(torch.zeros(6), 2)
    with pytest.raises(ValueError, match="bsz"):
        LMOrderedIterator(torch.arange(6), 0, 2)
    with pytest.raises(ValueError, match="bptt"):
        LMOrderedIterator(torch.arange(6), 2, 0)
    assert list(LMOrderedIterator(torch.arange(3), 2, 4)) == []  # one column: no target


def _tiny(tmp_path: Path, **options) -> tuple[TransfoXLTokenizer, Path]:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("The cat sat\nthe dog sat on the mat\n\nA cat\n", encoding="utf-8")
    tok = TransfoXLTokenizer(special=["<unk>", "<eos>"], **options)
    tok.count_file(corpus, add_eos=True)
    tok.build_vocab()
    return tok, corpus


def test_save_and_reload_text_vocab(tmp_path):
    tok, corpus = _tiny(tmp_path, lower_case=True)
    tok.add_tokens(["<new>"])
    saved = tmp_path / "saved"
    paths = tok.save_pretrained(saved)
    assert {Path(p).name for p in paths} == {
        "vocab.txt", "special_tokens_map.json", "added_tokens.json", "tokenizer_config.json"
    }  # fmt: skip
    lines = (saved / "vocab.txt").read_text(encoding="utf-8").split("\n")
    assert lines[:-1] == tok.idx2sym and lines[-1] == ""
    again = TransfoXLTokenizer.from_pretrained(saved)
    assert again.idx2sym == tok.idx2sym and again.lower_case and again.special == tok.special
    assert again.added_tokens_encoder == {"<new>": len(tok.idx2sym)}
    text = "The MAT <new> zebra"
    assert again.encode(text) == tok.encode(text)
    assert again.tokenize(text, add_eos=True) == ["the", "mat", "<new>", "zebra", "<eos>"]
    assert torch.equal(
        again.encode_file(corpus, ordered=True), tok.encode_file(corpus, ordered=True)
    )
    # 1.0 reads our vocab.txt as its vocab_file
    old = ptt.TransfoXLTokenizer(vocab_file=str(saved / "vocab.txt"), lower_case=True)
    assert old.idx2sym == tok.idx2sym
    assert TransfoXLTokenizer.from_pretrained(saved / "vocab.txt").idx2sym == tok.idx2sym
    clone = pickle.loads(pickle.dumps(again))
    assert clone.encode(text) == again.encode(text)


def test_character_vocab_saves_as_json(tmp_path):
    tok = TransfoXLTokenizer(special=["<unk>"], delimiter="")
    tok.count_sents([tok.tokenize("ab ba\n")])
    tok.build_vocab()
    assert " " in tok.idx2sym
    tok.save_pretrained(tmp_path)
    assert not (tmp_path / "vocab.txt").exists() and (tmp_path / "vocab.json").is_file()
    again = TransfoXLTokenizer.from_pretrained(tmp_path)
    assert again.idx2sym == tok.idx2sym and again.delimiter == ""
    assert again.encode("abz a") == tok.encode("abz a") == [1, 2, 0, 3, 1]


def test_vocab_file_reading_matches_1_0(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("<unk> 0\nthe 120\ncat 7\nsat\n", encoding="utf-8")
    ours = TransfoXLTokenizer(vocab_file=vocab)
    old = ptt.TransfoXLTokenizer(vocab_file=str(vocab))
    assert ours.idx2sym == old.idx2sym == ["<unk>", "the", "cat", "sat"]
    assert ours.encode("the dog sat") == old.encode("the dog sat") == [1, 0, 3]
    upper = tmp_path / "upper.txt"
    upper.write_text("the\n<UNK>\n", encoding="utf-8")
    assert TransfoXLTokenizer(vocab_file=upper).encode("the x") == [0, 1]
    assert ptt.TransfoXLTokenizer(vocab_file=str(upper)).encode("the x") == [0, 1]


def test_from_pretrained_reads_a_1_0_directory(shared_fixtures, tmp_path):
    corpus = shared_fixtures / "corpora" / "ptb.test.txt"
    old = ptt.TransfoXLTokenizer(special=["<unk>", "<eos>"], lower_case=True, min_freq=2)
    old.count_file(str(corpus), add_eos=True)
    old.build_vocab()
    old.save_pretrained(str(tmp_path))  # vocab.bin = torch.save(tokenizer.__dict__)
    assert (tmp_path / "vocab.bin").is_file()
    ours = TransfoXLTokenizer.from_pretrained(tmp_path)
    assert ours.idx2sym == old.idx2sym and ours.counter == old.counter
    assert ours.lower_case and ours.min_freq == 2 and ours.special == ["<unk>", "<eos>"]
    assert ours.special_tokens_map == old.special_tokens_map
    assert len(ours) == len(old)  # <formula> is not appended: it maps to <unk>, as in 1.0
    for text in ["The Cat sat on <unk> mat", "zzqx <formula> <eos>"]:
        assert ours.encode(text) == old.encode(text)
    # a legacy (pre-zip) torch file, as torch < 1.6 wrote them
    legacy = tmp_path / "legacy" / "vocab.bin"
    legacy.parent.mkdir()
    torch.save(old.__dict__, legacy, _use_new_zipfile_serialization=False)
    assert TransfoXLTokenizer.from_pretrained(legacy.parent).idx2sym == old.idx2sym
    assert TransfoXLTokenizer.from_pretrained(legacy).idx2sym == old.idx2sym


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("legacy", [False, True])
def test_malicious_vocab_bin_is_refused(tmp_path, legacy):
    marker = tmp_path / "pwned"
    state = {"idx2sym": ["<unk>", "a"], "counter": _Exploit(marker)}
    (tmp_path / "d").mkdir()
    torch.save(state, tmp_path / "d" / "vocab.bin", _use_new_zipfile_serialization=not legacy)
    with pytest.raises(ValueError, match="weights_only=True.*convert"):
        TransfoXLTokenizer.from_pretrained(tmp_path / "d")
    assert not marker.exists()
    raw = tmp_path / "raw.bin"
    raw.write_bytes(pickle.dumps(state))  # a plain pickle, not a torch file
    with pytest.raises(ValueError, match="cannot be read safely"):
        TransfoXLTokenizer(pretrained_vocab_file=raw)
    assert not marker.exists()


def test_bad_vocab_bin_content(tmp_path):
    torch.save(["not", "a", "dict"], tmp_path / "list.bin")
    with pytest.raises(ValueError, match="must hold a dict"):
        TransfoXLTokenizer(pretrained_vocab_file=tmp_path / "list.bin")
    torch.save({"idx2sym": ["a", "a"]}, tmp_path / "dup.bin")
    with pytest.raises(ValueError, match="repeats"):
        TransfoXLTokenizer(pretrained_vocab_file=tmp_path / "dup.bin")
    torch.save({"sym2idx": {}}, tmp_path / "none.bin")
    with pytest.raises(ValueError, match="idx2sym"):
        TransfoXLTokenizer(pretrained_vocab_file=tmp_path / "none.bin")


def test_errors(tmp_path):
    no_unk = TransfoXLTokenizer(special=["<eos>"])
    no_unk.count_sents([["a", "b"]])
    no_unk.build_vocab()
    old_no_unk = _old(special=["<eos>"])
    old_no_unk.count_sents([["a", "b"]])
    old_no_unk.build_vocab()
    assert no_unk.encode("a b") == old_no_unk.encode("a b") == [1, 2]
    with pytest.raises(ValueError, match="no <unk>"):
        old_no_unk.encode("a zebra")  # 1.0 raises too, without naming the symbol
    with pytest.raises(ValueError, match="'zebra' is not in the vocabulary"):
        no_unk.encode("a zebra")
    with pytest.raises(ValueError, match="'zebra'"):
        no_unk.encode_sents([["zebra"]])
    bad = tmp_path / "vocab.txt"
    bad.write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no <unk>"):
        TransfoXLTokenizer(vocab_file=bad)
    with pytest.raises(ValueError):
        ptt.TransfoXLTokenizer(vocab_file=str(bad))
    blank = tmp_path / "blank.txt"
    blank.write_text("<unk>\n\nb\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        TransfoXLTokenizer(vocab_file=blank)
    with pytest.raises(FileNotFoundError):
        TransfoXLTokenizer(vocab_file=tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError):
        no_unk.count_file(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match="no directory or file"):
        TransfoXLTokenizer.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="has no vocabulary"):
        TransfoXLTokenizer.from_pretrained(tmp_path / "empty")
    with pytest.raises(ValueError, match="empty"):
        TransfoXLTokenizer().save_pretrained(tmp_path / "out")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        no_unk.decode([0, 7])
    with pytest.raises(TypeError):
        TransfoXLTokenizer(delimiter=3)
    with pytest.raises(TypeError):
        no_unk.tokenize(b"bytes")
