"""Parity of ``ptfunc.tokenize.BertTokenizer`` with the reference BERT tokenizers.

References (tolerance: ids equal exactly, unless a test documents a known difference):

- "fast": ``transformers.BertTokenizer`` 5.x, backed by the Rust ``tokenizers`` library,
  built from the vocabulary file;
- "slow": ``transformers.BertTokenizerLegacy`` 5.x, today's Python implementation;
- "1.0": ``pytorch_transformers.BertTokenizer`` 1.0.0 (``encode`` = no special tokens).

Vocabularies and corpora come from the shared fixtures (``shared_fixtures``).
"""

from __future__ import annotations

import functools
import pickle
import unicodedata
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ptfunc.tokenize import BasicTokenizer, BertTokenizer, WordpieceTokenizer, load_vocab

transformers = pytest.importorskip("transformers")
ptt = pytest.importorskip("pytorch_transformers")
HFBert = transformers.BertTokenizer
HFBertLegacy = getattr(transformers, "BertTokenizerLegacy", None)

VOCABS = {"bert-base-uncased": True, "bert-base-cased": False, "bert-base-chinese": True}
CORPORA = [
    "bert_sample_text.txt",
    "botchan.txt",
    "ptb.test.txt",
    "tinyshakespeare.txt",
    "wikitext-2.test.txt",
]
FAST_CHARS = 100_000  # characters per corpus compared line by line with the Rust reference
PY_CHARS = 25_000  # ... and with the (slower) Python references
HYPOTHESIS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


@pytest.fixture(scope="module")
def fixtures(shared_fixtures: Path) -> Path:
    return shared_fixtures


@functools.cache
def _tokenizers(vocab_file: str, lower: bool, **options):
    opts = {k: list(v) if isinstance(v, tuple) else v for k, v in options.items()}
    ours = BertTokenizer(vocab_file, do_lower_case=lower, **opts)
    fast = HFBert(
        vocab=vocab_file,
        do_lower_case=lower,
        **{k: v for k, v in opts.items() if k in ("strip_accents", "tokenize_chinese_chars")},
    )
    slow = HFBertLegacy(vocab_file, do_lower_case=lower, **opts) if HFBertLegacy else None
    old = None
    if "strip_accents" not in opts:
        old = ptt.BertTokenizer(vocab_file, do_lower_case=lower, **opts)
    return ours, fast, slow, old


def refs(fixtures: Path, vocab: str = "bert-base-uncased", lower: bool | None = None, **options):
    lower = VOCABS[vocab] if lower is None else lower
    return _tokenizers(str(fixtures / vocab / "vocab.txt"), lower, **options)


def ids_fast(fast, text: str) -> list[int]:
    return fast.encode(text, add_special_tokens=False)


def ids_slow(slow, text: str) -> list[int]:
    return slow.convert_tokens_to_ids(slow.tokenize(text))


def ids_old(old, text: str) -> list[int]:
    return old.encode(text)  # 1.0: tokenize + convert_tokens_to_ids, no special tokens


def is_nfc(text: str) -> bool:
    return unicodedata.is_normalized("NFC", text)


# --------------------------------------------------------------------------- corpora


@pytest.mark.parametrize("corpus", CORPORA)
@pytest.mark.parametrize("vocab", list(VOCABS))
def test_corpus_ids_equal_references(fixtures, vocab, corpus):
    """Line by line vs fast (first 100k characters), slow and 1.0 (first 25k); the whole
    file at once vs fast. Exact ids."""
    ours, fast, slow, old = refs(fixtures, vocab)
    text = (fixtures / "corpora" / corpus).read_text(encoding="utf-8")
    chinese = vocab == "bert-base-chinese"
    for line in text[:FAST_CHARS].split("\n"):
        assert ours.encode(line, add_special_tokens=False) == ids_fast(fast, line), line
    for line in text[:PY_CHARS].split("\n"):
        got = ours.encode(line, add_special_tokens=False)
        if slow is not None:
            assert got == ids_slow(slow, line), line
        if chinese:  # 1.0 reads this vocab with splitlines(): same tokens, shifted ids
            assert ours.tokenize(line) == old.tokenize(line), line
        else:
            assert got == ids_old(old, line), line
    assert ours.encode(text, add_special_tokens=False) == ids_fast(fast, text)


def test_chinese_vocab_is_split_on_newline_only(fixtures):
    """Reference: the fixture's README (U+2028 at line 344, '##'+U+2028 at line 13503)."""
    vocab = load_vocab(fixtures / "bert-base-chinese" / "vocab.txt")
    assert len(vocab) == 21128
    assert vocab["\u2028"] == 343 and vocab["##\u2028"] == 13502
    ours, fast, _, old = refs(fixtures, "bert-base-chinese")
    assert len(ours) == 21128
    assert ours.convert_tokens_to_ids("中") == fast.convert_tokens_to_ids("中")
    # pytorch-transformers 1.0's splitlines() shifts every later id by one: a 1.0 bug
    assert old.vocab["中"] == vocab["中"] + 1


# --------------------------------------------------------------------------- edge cases

EDGE_TEXTS = [
    "",
    " ",
    "   \t\n\r  ",
    "a\tb\nc\rd\r\ne",
    "\x00hello\x00 world",
    "hel\ufffdlo \ufffd",
    "\x07bell \x1b[0m esc \x7f del \x85 nel",
    "zero\u200bwidth joiner\u200d here\u2060",
    "nbsp\xa0here \u3000ideographic\u2003em space",
    "line\u2028separator\u2029paragraph",
    "café naïve résumé",
    "CAFÉ NAÏVE Ångström",
    "e\u0301cole de\u0301compose\u0301e",
    "Straße İstanbul ǅemal",
    "中文字符测试,以及标点。",
    "日本語のテキストです",
    "한국어 텍스트",
    "Bengali ছজটডণত and Thai ภาษาไทย",
    "emoji 😀👍🏽 👨‍👩‍👧 ❤️",
    "x" * 101,
    "a" * 100,
    "supercalifragilisticexpialidocious unaffable",
    "hello,world!!? ...--",
    "[CLS] hello [SEP]",
    "[CLS]hello[SEP]world[PAD][PAD]",
    "[cls] lower [sep] [MASK]ed [UNK]",
    "don't stop-believing (ok) [x] {y} <z>",
    "$100 + 5% = #1 @home ~ `code` ^ |pipe| \\back",
    "ﬁ ligature ①②③ ²³ ½",
    "\U0001d400\U0001d401 math bold \U00020000 ext-b",
    "Ω K Å compat \uf900\ufa0e",
    "\ud800 lone surrogate",
]


@pytest.mark.parametrize("lower", [True, False], ids=["uncased", "cased"])
@pytest.mark.parametrize("text", EDGE_TEXTS, ids=lambda t: repr(t[:20]))
def test_edge_cases_equal_references(fixtures, text, lower):
    """vs fast (valid Unicode only), slow (NFC text, or lower-cased) and 1.0. Exact ids."""
    vocab = "bert-base-uncased" if lower else "bert-base-cased"
    ours, fast, slow, old = refs(fixtures, vocab)
    got = ours.encode(text, add_special_tokens=False)
    assert got == ids_old(old, text)
    if slow is not None and (lower or is_nfc(text)):
        assert got == ids_slow(slow, text)
    if "\ud800" not in text:  # the Rust backend refuses lone surrogates
        assert got == ids_fast(fast, text)


def test_edge_cases_chinese_vocab(fixtures):
    """CJK, kana, hangul and emoji with bert-base-chinese vs fast and slow."""
    ours, fast, slow, _ = refs(fixtures, "bert-base-chinese")
    for text in EDGE_TEXTS[10:21]:
        got = ours.encode(text, add_special_tokens=False)
        assert got == ids_fast(fast, text)
        if slow is not None:
            assert got == ids_slow(slow, text)


def test_long_words_become_unk(fixtures):
    ours, *_ = refs(fixtures)
    assert ours.tokenize("a" * 101 + " ok") == ["[UNK]", "ok"]
    assert "[UNK]" not in ours.tokenize("a" * 100)
    wp = WordpieceTokenizer(ours.vocab, "[UNK]", max_input_chars_per_word=5)
    assert wp.tokenize("hello worlds") == ["hello", "[UNK]"]


def test_final_sigma_follows_python_lower(fixtures):
    """Documented difference: 1.0 and slow use str.lower() (final 'ς'); fast maps 'Σ'->'σ'."""
    ours, fast, slow, old = refs(fixtures)
    text = "ΟΔΟΣ ΣΑΣ"
    assert ours.tokenize(text) == old.tokenize(text)
    if slow is not None:
        assert ours.tokenize(text) == slow.tokenize(text)
    assert ours.tokenize(text) != fast.tokenize(text)


def test_no_nfc_composition_when_cased(fixtures):
    """Documented difference: slow NFC-composes first; 1.0 and fast (and ptfunc) do not."""
    ours, fast, slow, old = refs(fixtures, "bert-base-cased")
    text = "e\u0301cole \u2126"
    assert ours.encode(text, add_special_tokens=False) == ids_fast(fast, text) == ids_old(old, text)
    if slow is not None:
        assert ours.encode(text, add_special_tokens=False) != ids_slow(slow, text)


@pytest.mark.parametrize(
    ("lower", "strip"), [(False, True), (True, False), (False, None), (True, True)]
)
def test_strip_accents_option(fixtures, lower, strip):
    """``strip_accents`` vs fast and slow (1.0 had no such option)."""
    ours, fast, slow, _ = refs(fixtures, "bert-base-cased", lower=lower, strip_accents=strip)
    for text in ["Café naïve RÉSUMÉ", "Ångström über", "Ελληνικά τόνοι"]:
        got = ours.encode(text, add_special_tokens=False)
        assert got == ids_fast(fast, text)
        if slow is not None:
            assert got == ids_slow(slow, text)


def test_tokenize_chinese_chars_off(fixtures):
    ours, fast, slow, old = refs(fixtures, "bert-base-chinese", tokenize_chinese_chars=False)
    text = "中文 字符测试 a中b"
    got = ours.encode(text, add_special_tokens=False)
    assert got == ids_fast(fast, text)
    if slow is not None:
        assert got == ids_slow(slow, text)
    assert ours.tokenize(text) == old.tokenize(text)


def test_never_split_keeps_tokens_whole(fixtures):
    """vs slow. 1.0 still split never_split tokens on punctuation (its bug; documented)."""
    ours, _, slow, old = refs(fixtures, never_split=("Hello.World", "[FOO]"))
    text = "Say Hello.World now [FOO] ok hello.world"
    assert ours.tokenize(text)[1] == "Hello.World"
    assert "[FOO]" in ours.tokenize(text)
    if slow is not None:
        assert ours.tokenize(text) == slow.tokenize(text)
        assert ours.encode(text, add_special_tokens=True) == slow.encode(text)
    assert ours.tokenize(text) != old.tokenize(text)
    basic = BasicTokenizer(never_split=["Don't"])
    assert basic.tokenize("Don't don't") == ["Don't", "don", "'", "t"]


def test_do_basic_tokenize_off(fixtures):
    ours, _, slow, old = refs(fixtures, do_basic_tokenize=False)
    text = "hello, world unaffable Hello"
    assert ours.tokenize(text) == old.tokenize(text)
    if slow is not None:
        assert ours.tokenize(text) == slow.tokenize(text)


def test_added_tokens_equal_references(fixtures):
    """Added tokens are matched before WordPiece, by all four tokenizers alike."""
    V = str(fixtures / "bert-base-uncased" / "vocab.txt")
    ours, fast, slow, old = (
        BertTokenizer(V),
        HFBert(vocab=V),
        HFBertLegacy(V) if HFBertLegacy else None,
        ptt.BertTokenizer(V),
    )
    assert ours.add_tokens(["newword", "hello", "zq-zq"]) == 2  # 'hello' is in the vocab
    fast.add_tokens(["newword", "zq-zq"])
    old.add_tokens(["newword", "hello", "zq-zq"])
    text = "a newword, hello newwordnewword xnewwordx zq-zq! [SEP]"
    expected = ours.encode(text, add_special_tokens=False)
    assert ours.tokenize(text) == old.tokenize(text)
    assert expected == old.encode(text)
    assert expected == ids_fast(fast, text)
    if slow is not None:
        slow.add_tokens(["newword", "zq-zq"])
        assert expected == ids_slow(slow, text)
    assert len(ours) == len(old) == len(fast) == 30524


# --------------------------------------------------------------------------- random text

_ASCII = st.characters(min_codepoint=0, max_codepoint=127)


@functools.cache
def _stable_alphabet() -> list[str]:
    """Characters whose category is the same in Unicode 3.2 and in this Python's database,
    without private use, surrogates and 'Σ': the Rust backend's Unicode tables are older
    than Python's, and it lower-cases 'Σ' without the final-sigma rule."""
    old = unicodedata.ucd_3_2_0
    return [
        c
        for c in map(chr, range(0x110000))
        if old.category(c) not in ("Cn", "Co", "Cs")
        and old.category(c) == unicodedata.category(c)
        and c != "\u03a3"
    ]


@pytest.mark.parametrize("lower", [True, False], ids=["uncased", "cased"])
def test_random_unicode_vs_pytorch_transformers_1_0(fixtures, lower):
    """Any str (surrogates, unassigned code points...) vs 1.0. Exact ids."""
    ours, _, _, old = refs(fixtures, "bert-base-uncased" if lower else "bert-base-cased")

    @HYPOTHESIS
    @given(st.text(st.one_of(_ASCII, st.characters()), max_size=40))
    def check(text):
        assert ours.encode(text, add_special_tokens=False) == ids_old(old, text)

    check()


@pytest.mark.parametrize("lower", [True, False], ids=["uncased", "cased"])
def test_random_unicode_vs_transformers_fast(fixtures, lower):
    """Valid, long-assigned Unicode vs the Rust backend. Exact ids."""
    ours, fast, _, _ = refs(fixtures, "bert-base-uncased" if lower else "bert-base-cased")
    chars = st.sampled_from(_stable_alphabet())

    @HYPOTHESIS
    @given(st.text(st.one_of(_ASCII, chars, chars), max_size=40))
    def check(text):
        assert ours.encode(text, add_special_tokens=False) == ids_fast(fast, text)

    check()


@pytest.mark.skipif(HFBertLegacy is None, reason="transformers has no BertTokenizerLegacy")
@pytest.mark.parametrize("lower", [True, False], ids=["uncased", "cased"])
def test_random_unicode_vs_transformers_slow(fixtures, lower):
    """NFC text (the slow tokenizer composes first) vs the Python reference. Exact ids."""
    ours, _, slow, _ = refs(fixtures, "bert-base-uncased" if lower else "bert-base-cased")

    @HYPOTHESIS
    @given(st.text(st.one_of(_ASCII, st.characters(exclude_categories=["Cs"])), max_size=40))
    def check(text):
        if not lower:  # cased: compare where NFC (after dropping controls) changes nothing
            text = unicodedata.normalize("NFC", text)
            kept = "".join(c for c in text if c in "\t\n\r" or unicodedata.category(c)[0] != "C")
            assume(is_nfc(kept))
        assert ours.encode(text, add_special_tokens=False) == ids_slow(slow, text)

    check()


# --------------------------------------------------------------------------- encode / batch


def test_encode_pairs_and_token_types_equal_transformers(fixtures):
    """encode / __call__ with pairs vs ``transformers.BertTokenizer(...)`` outputs."""
    ours, fast, _, _ = refs(fixtures)
    lines = (fixtures / "corpora" / "botchan.txt").read_text(encoding="utf-8").split("\n")[:200]
    lines = [line for line in lines if line.strip()]
    firsts, seconds = lines[0::2], lines[1::2]
    firsts = firsts[: len(seconds)]
    for a, b in zip(firsts[:40], seconds[:40]):
        assert ours.encode(a, b, add_special_tokens=True) == fast.encode(a, b)
        assert ours.encode(a, add_special_tokens=True) == fast.encode(a)
        assert ours(a, b) == dict(fast(a, b))
    got = ours(firsts, seconds)
    want = fast(firsts, seconds)
    assert got == {k: want[k] for k in ("input_ids", "token_type_ids", "attention_mask")}


_WORDS = "alpha beta gamma delta epsilon zeta eta theta".split()


def _text(n: int) -> str:
    return " ".join(_WORDS[:n])


@pytest.mark.parametrize("strategy", ["longest_first", True, "only_first", "only_second"])
def test_truncation_grid_equals_transformers(fixtures, strategy):
    """Every length pair and max_length vs ``transformers.BertTokenizer``; where the Rust
    backend raises, ptfunc raises ValueError."""
    ours, fast, _, _ = refs(fixtures)
    for len_a in range(0, 6):
        for len_b in range(0, 6):
            for max_length in range(3, 14):
                a, b = _text(len_a), _text(len_b)
                try:
                    want = fast([a], [b], truncation=strategy, max_length=max_length)
                except Exception:  # the Rust backend refuses: ptfunc must refuse too
                    with pytest.raises(ValueError):
                        ours([a], [b], truncation=strategy, max_length=max_length)
                    continue
                got = ours([a], [b], truncation=strategy, max_length=max_length)
                assert got == dict(want), (len_a, len_b, max_length)
            if strategy != "only_second":
                single = ours([_text(len_a)], truncation=strategy, max_length=3)
                assert single == dict(fast([_text(len_a)], truncation=strategy, max_length=3))


@pytest.mark.filterwarnings("ignore:`max_length` is ignored")
@pytest.mark.parametrize("padding", [True, "longest", "max_length", False])
@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("truncation", [None, False, True, "only_first"])
def test_padding_and_truncation_equal_transformers(fixtures, padding, side, truncation):
    ours, fast, _, _ = refs(fixtures)
    texts = ["short", "a somewhat longer sentence, with punctuation!", "", "two words"]
    pairs = ["pair one", "p", "an empty first text", "x y z w"]
    for kwargs in ({}, {"text_pair": pairs}):
        for max_length in (None, 12, 30):
            if padding == "max_length" and max_length is None:
                continue
            if truncation == "only_first" and "text_pair" not in kwargs:
                continue
            options = dict(
                padding=padding, padding_side=side, max_length=max_length, truncation=truncation
            )
            want = dict(fast(texts, kwargs.get("text_pair"), **options))
            got = ours(texts, kwargs.get("text_pair"), **options)
            assert got == want, options


def test_special_tokens_mask_and_no_special_tokens_equal_transformers(fixtures):
    ours, fast, _, _ = refs(fixtures)
    texts, pairs = ["a b", "hello there world"], ["c d e", "x"]
    for add in (True, False):
        options = dict(add_special_tokens=add, return_special_tokens_mask=True, padding=True)
        assert ours(texts, pairs, **options) == dict(fast(texts, pairs, **options))
        assert ours(texts, **options) == dict(fast(texts, **options))
    assert ours.get_special_tokens_mask([5, 6], [7]) == [1, 0, 0, 1, 0, 1]
    built = ours.build_inputs_with_special_tokens([5, 6], [7])
    mask = ours.get_special_tokens_mask(built, already_has_special_tokens=True)
    assert mask == [1, 0, 0, 1, 0, 1]


def test_return_tensors_pt(fixtures):
    ours, fast, _, _ = refs(fixtures)
    texts = ["hello world", "a longer sentence than the first"]
    got = ours(texts, padding=True, return_tensors="pt")
    want = fast(texts, padding=True, return_tensors="pt")
    for key in ("input_ids", "token_type_ids", "attention_mask"):
        assert got[key].dtype == torch.int64
        assert torch.equal(got[key], want[key])
    single = ours("hello world", "pair", return_tensors="pt")
    assert single["input_ids"].shape == (1, 6)
    want = fast("hello world", "pair", return_tensors="pt")
    assert torch.equal(single["input_ids"], want["input_ids"])
    with pytest.raises(ValueError, match="padding=True"):
        ours(texts, return_tensors="pt")
    assert ours([], return_tensors="pt")["input_ids"].shape == (0, 0)


def test_batch_errors(fixtures):
    ours, *_ = refs(fixtures)
    with pytest.raises(TypeError, match="list of str"):
        ours.batch_encode("a single text")
    with pytest.raises(TypeError, match="int"):
        ours([1, 2])
    with pytest.raises(ValueError, match="text_pairs has 1"):
        ours(["a", "b"], ["c"])
    with pytest.raises(ValueError, match="padding"):
        ours(["a"], padding="sideways")
    with pytest.raises(ValueError, match="truncation"):
        ours(["a"], truncation="middle", max_length=3)
    with pytest.raises(ValueError, match="max_length"):
        ours(["a b c"], truncation=True, max_length=1)  # no room for [CLS] and [SEP]
    with pytest.raises(ValueError, match="max_length"):
        ours(["a"], padding="max_length")  # no max_length and no max_len
    with pytest.raises(ValueError, match="only_second"):
        ours(["a b c d"], truncation="only_second", max_length=4)
    with pytest.raises(ValueError, match="return_tensors"):
        ours(["a"], return_tensors="np")


def test_max_len_from_config_drives_truncation_and_padding(fixtures):
    V = str(fixtures / "bert-base-uncased" / "vocab.txt")
    ours = BertTokenizer(V, model_max_length=8)
    fast = HFBert(vocab=V, model_max_length=8)
    texts = ["one two three four five six seven eight nine", "short"]
    for options in ({"truncation": True}, {"padding": "max_length", "truncation": True}):
        assert ours(texts, **options) == dict(fast(texts, **options))
    assert ours.max_len == ours.model_max_length == 8


# --------------------------------------------------------------------------- decode


def test_decode_equals_references(fixtures):
    """decode vs 1.0 (same clean-up rules), vs slow without clean-up, and vs fast with
    clean-up (its Rust decoder always cleans up) where the text has no ' do not', which
    only 1.0's rules (and ptfunc's) turn into "don't"."""
    ours, fast, slow, old = refs(fixtures)
    lines = (fixtures / "corpora" / "botchan.txt").read_text(encoding="utf-8").split("\n")[:300]
    for line in lines:
        ids = ours.encode(line)
        assert ours.decode(ids) == old.decode(ids)
        skipped = ours.decode(ids, skip_special_tokens=True)
        assert skipped == old.decode(ids, skip_special_tokens=True)
        if slow is not None:
            raw = ours.decode(ids, clean_up_tokenization_spaces=False)
            assert raw == slow.decode(ids, clean_up_tokenization_spaces=False)
        if " do not" not in ours.decode(ids, clean_up_tokenization_spaces=False):
            assert ours.decode(ids) == fast.decode(ids, clean_up_tokenization_spaces=True)
    assert ours.decode(ours.encode("I do not know", add_special_tokens=True)) == (
        "[CLS] i don't know [SEP]"
    )
    ids = ours.encode("Hello, world!", add_special_tokens=True)
    assert ours.decode(torch.tensor(ids)) == ours.decode(tuple(ids)) == "[CLS] hello, world! [SEP]"
    assert ours.decode(ids, skip_special_tokens=True) == "hello, world!"
    assert ours.convert_ids_to_tokens(torch.tensor(7592)) == "hello"


def test_decode_errors(fixtures):
    ours, *_ = refs(fixtures)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ours.decode([101, len(ours)])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        ours.convert_ids_to_tokens(-1)
    with pytest.raises(TypeError, match="dtype"):
        ours.decode(torch.tensor([1.0, 2.0]))
    with pytest.raises(ValueError, match="shape"):
        ours.decode(torch.tensor([[101, 102]]))
    with pytest.raises(TypeError, match="str"):
        ours.decode(["hello"])
    with pytest.raises(TypeError, match="float"):
        ours.decode([1.5])
    rows = torch.tensor([[101, 7592, 102]])
    assert ours.batch_decode(rows, skip_special_tokens=True) == ["hello"]


# --------------------------------------------------------------------------- files


def test_save_and_reload_keep_added_and_special_tokens(fixtures, tmp_path):
    """Round trip (1.0 lost added tokens and never added additional_special_tokens), and
    ``transformers`` (fast and slow) read the saved directory to the same ids."""
    V = fixtures / "bert-base-uncased" / "vocab.txt"
    tok = BertTokenizer(V, model_max_length=128)
    assert tok.add_tokens(["newword", "zzqx"]) == 2
    assert tok.add_special_tokens({"additional_special_tokens": ["<ent>", "</ent>"]}) == 2
    paths = tok.save_pretrained(tmp_path)
    assert {Path(p).name for p in paths} == {
        "vocab.txt",
        "special_tokens_map.json",
        "added_tokens.json",
        "tokenizer_config.json",
    }
    assert (tmp_path / "vocab.txt").read_bytes() == V.read_bytes()
    text = "a newword<ent>b zzqx </ent> Hello"
    expected = tok.encode(text, add_special_tokens=True)
    assert expected[2:8] == [30522, 30524, 1038, 30523, 30525, 7592]

    again = BertTokenizer.from_pretrained(tmp_path)
    assert again.encode(text, add_special_tokens=True) == expected
    assert again.additional_special_tokens == ["<ent>", "</ent>"]
    assert again.max_len == 128 and len(again) == len(tok) == 30526
    assert again.decode(expected, skip_special_tokens=True) == "a newword b zzqx hello"

    for cls in filter(None, (HFBert, HFBertLegacy)):
        hf = cls.from_pretrained(str(tmp_path))
        assert hf.encode(text) == expected, cls.__name__
        assert hf.model_max_length == 128


def test_reads_directories_saved_by_references(fixtures, tmp_path):
    V = str(fixtures / "bert-base-uncased" / "vocab.txt")
    text = "a newword <ent> b"
    old = ptt.BertTokenizer(V)
    old.add_tokens(["newword"])
    old.save_pretrained(str(tmp_path))  # added_tokens.json = {"30522": "newword"} (1.0 bug)
    ours = BertTokenizer.from_pretrained(tmp_path)
    assert ours.convert_tokens_to_ids("newword") == 30522
    if HFBertLegacy is not None:
        slow = HFBertLegacy(V, model_max_length=64)
        slow.add_tokens(["newword"])
        slow.add_special_tokens({"additional_special_tokens": ["<ent>"]})
        slow.save_pretrained(str(tmp_path / "slow"))
        ours = BertTokenizer.from_pretrained(tmp_path / "slow")
        assert ours.encode(text, add_special_tokens=True) == slow.encode(text)
        assert ours.additional_special_tokens == ["<ent>"] and ours.max_len == 64
    ours = BertTokenizer.from_pretrained(V, do_lower_case=False)  # a vocabulary file
    assert ours.tokenize("Hello world") == ["[UNK]", "world"] and len(ours) == 30522


def test_from_pretrained_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        BertTokenizer.from_pretrained(tmp_path)
    with pytest.raises(OSError, match="bert-base-uncased"):
        BertTokenizer.from_pretrained("bert-base-uncased")  # offline, empty cache (conftest)
    with pytest.raises(FileNotFoundError, match="vocab"):
        BertTokenizer(tmp_path / "missing.txt")


def test_pickle_round_trip(fixtures):
    ours, *_ = refs(fixtures)
    ours.tokenize("warm the cache up")
    copy = pickle.loads(pickle.dumps(ours))
    text = "Pickled tokenizers, café 中文 [SEP] too"
    assert copy.encode(text, "pair") == ours.encode(text, "pair")
    assert len(pickle.dumps(ours)) < 2 * len(pickle.dumps(ours.vocab)) + 200_000


def test_constructor_type_errors(fixtures):
    V = fixtures / "bert-base-uncased" / "vocab.txt"
    with pytest.raises(TypeError, match="do_lower_case"):
        BertTokenizer(V, do_lower_case="yes")
    with pytest.raises(TypeError, match="never_split"):
        BertTokenizer(V, never_split="[FOO]")
    with pytest.raises(TypeError, match="do_lowercase"):
        BertTokenizer(V, do_lowercase=False)
    with pytest.raises(TypeError, match="text must be a str"):
        BertTokenizer(V).tokenize(b"bytes")


def test_char_classes_equal_per_character_definitions():
    """The regex classes vs pytorch-transformers 1.0's per-character functions, on every
    BMP code point and every 7th astral one."""
    from ptfunc.tokenize import _unicode

    chars = [chr(cp) for cp in [*range(0x10000), *range(0x10000, 0x110000, 7)]]
    ref = ptt.tokenization_bert.BasicTokenizer()
    classes = _unicode.unicode_classes()
    everything = "".join(chars)
    cleaned = ref._clean_text(everything)
    is_space = ptt.tokenization_bert._is_whitespace
    ours = classes.clean(everything)
    assert "".join(" " if is_space(c) else c for c in ours) == cleaned
    assert classes.space_cjk(everything) == ref._tokenize_chinese_chars(everything)
    assert classes.strip_accents(everything) == ref._run_strip_accents(everything)
    visible = [c for c in cleaned.split() for c in c]
    glued = "x".join(visible)
    assert classes.split_words(glued) == ref._run_split_on_punc(glued)


def test_vocab_with_repeated_line_round_trips(tmp_path):
    """Ids are line numbers; a repeated token maps to its last line (as in transformers)."""
    lines = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "a", "##c"]
    (tmp_path / "vocab.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    tok = BertTokenizer(tmp_path / "vocab.txt")
    assert tok.vocab_size == len(tok) == 9 and tok.convert_tokens_to_ids("a") == 7
    assert tok.convert_ids_to_tokens([5, 7, 8]) == ["a", "a", "##c"]
    assert tok.tokenize("ac abc") == ["a", "##c", "[UNK]"]
    tok.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "vocab.txt").read_text() == (tmp_path / "vocab.txt").read_text()
