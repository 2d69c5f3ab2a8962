"""Hostile text for the six tokenizers (issue 17, points 13 and 15).

Contract checked (ptfunc's own, documented in ``ptfunc/tokenize/base.py``): text is a
``str``, ``bytes`` raise a ``TypeError`` naming the argument and suggesting
``.decode("utf-8", errors="replace")``; a lone surrogate gives exactly the ids of U+FFFD
in its place; vocabulary files that are not UTF-8 raise a ``ValueError`` naming the file;
10,000 added tokens are found by one matcher, built once, with the results of a naive
longest-match scan written here; BPE (GPT-2, OpenAI GPT, XLM, the trainer) gives exactly
the pieces of the classic loop written here ("lowest-rank pair, merge all its occurrences,
repeat", pytorch-transformers 1.0's ``bpe``) and does O(n log n) work in a word's length,
checked by counting rank look-ups, not by timing. Tolerance: exact equality throughout.

The tokenizers are built from tiny vocabularies made here (XLNet from a sentencepiece
model trained here), so no fixture is needed; the BPE comparisons also run on the real
GPT-2 and OpenAI GPT merge tables when the shared fixtures are present.
"""

from __future__ import annotations

import contextlib
import io
import json
import random
import re
import signal
import string
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptfunc.tokenize import (
    BertTokenizer,
    GPT2Tokenizer,
    OpenAIGPTTokenizer,
    TransfoXLTokenizer,
    XLMTokenizer,
    XLNetTokenizer,
    bytes_to_unicode,
    train_bpe,
)

NAMES = ["bert", "bert-wordpiece", "gpt2", "openai", "xlm", "xlnet", "transfo_xl"]
FFFD = "\ufffd"
SURROGATE_TEXTS = [
    "a\ud800b",
    "\udcff",
    "x \ud83d\ude00 y",  # a "pair" held as two code points: two U+FFFD
    "caf\udce9 ok",  # what surrogateescape makes of a Latin-1 byte
    "hello \udfff world \ud800",
]
FUZZ = settings(
    max_examples=25,
    deadline=timedelta(seconds=5),
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
LONG_WORD = 200_000


def _replace_surrogates(text: str) -> str:
    return "".join(FFFD if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)


# --------------------------------------------------------------------------- tiny vocabularies

LETTERS = string.ascii_lowercase
# merges over letters, as OpenAI GPT / XLM write them (the last symbol carries </w>)
EOW_MERGES = [("t", "h"), ("th", "e</w>"), ("h", "e"), ("l", "l"), ("he", "ll"), ("o", "</w>")]


def _eow_vocab(first: list[str]) -> dict[str, int]:
    tokens = [*first, *LETTERS, *(c + "</w>" for c in LETTERS), FFFD, FFFD + "</w>"]
    tokens += [a + b for a, b in EOW_MERGES]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def _gpt2() -> GPT2Tokenizer:
    chars = list(bytes_to_unicode().values())
    merges = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("ï", "¿"), ("ï¿", "½"), ("l", "l")]
    tokens = chars + [a + b for a, b in merges] + ["<|endoftext|>"]
    return GPT2Tokenizer({t: i for i, t in enumerate(tokens)}, merges)


def _bert(basic: bool) -> BertTokenizer:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "x", "y", "hello", "world"]
    words += ["##a", "##b", FFFD, "##" + FFFD, "caf", "ok", "!"]
    return BertTokenizer({w: i for i, w in enumerate(words)}, do_basic_tokenize=basic)


def _transfo_xl() -> TransfoXLTokenizer:
    tok = TransfoXLTokenizer(special=["<unk>", "<eos>"])
    tok.count_sents([["a", "b", FFFD, "hello", "world", "x", "y", "caf" + FFFD, "ok"]])
    tok.build_vocab()
    return tok


def _xlnet_model() -> bytes:
    spm = pytest.importorskip("sentencepiece")
    rng = random.Random(0)
    words = ["hello", "world", "a", "b", "x", "y", "1,000", "café", FFFD, "😀"]
    sentences = [" ".join(rng.choice(words) for _ in range(12)) for _ in range(300)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=60,
        hard_vocab_limit=False,
        character_coverage=1.0,
        control_symbols=["<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>"],
        minloglevel=2,
    )
    return model.getvalue()


@pytest.fixture(scope="module")
def xlnet_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("xlnet") / "spiece.model"
    path.write_bytes(_xlnet_model())
    return path


@pytest.fixture(scope="module")
def build(xlnet_file: Path):
    """name -> a function making a fresh tokenizer of that family."""
    specials = ["<s>", "</s>", "<pad>", "<unk>", *(f"<special{i}>" for i in range(10))]
    return {
        "bert": lambda: _bert(True),
        "bert-wordpiece": lambda: _bert(False),
        "gpt2": _gpt2,
        "openai": lambda: OpenAIGPTTokenizer(_eow_vocab(["<unk>"]), EOW_MERGES),
        "xlm": lambda: XLMTokenizer(_eow_vocab(specials), EOW_MERGES),
        "xlnet": lambda: XLNetTokenizer(xlnet_file),
        "transfo_xl": _transfo_xl,
    }


@pytest.fixture(scope="module")
def shared(build):
    """One tokenizer per family, for the tests that do not change them."""
    return {name: make() for name, make in build.items()}


@contextlib.contextmanager
def _hang_guard(seconds: int) -> Iterator[None]:
    """Turn a hang (a quadratic loop on a long word) into a failure; not a speed check:
    the work takes about a second, the guard fires after ``seconds``."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def fail(*_):
        raise TimeoutError(f"still running after {seconds} s: is the merge loop quadratic?")

    previous = signal.signal(signal.SIGALRM, fail)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------- surrogates, bytes


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("text", SURROGATE_TEXTS)
def test_lone_surrogate_gives_the_ids_of_u_fffd(shared, name, text):
    tok = shared[name]
    clean = _replace_surrogates(text)
    assert tok.tokenize(text) == tok.tokenize(clean)
    assert tok.encode(text) == tok.encode(clean)
    assert tok.encode("ok", text) == tok.encode("ok", clean)
    batch = tok.batch_encode([text, "x"], [clean, text])["input_ids"]
    assert batch == tok.batch_encode([clean, "x"], [clean, clean])["input_ids"]
    assert tok(text)["input_ids"] == tok(clean)["input_ids"]


def test_what_each_family_makes_of_u_fffd(shared):
    """U+FFFD is then an ordinary character: BERT's cleaning drops it (as the original
    BERT does), WordPiece alone finds its piece, GPT-2 encodes its three UTF-8 bytes."""
    assert shared["bert"].tokenize("a\ud800b") == ["a", "##b"]
    assert shared["bert-wordpiece"].tokenize("a\ud800b") == ["a", "##" + FFFD, "##b"]
    gpt2 = shared["gpt2"]
    assert gpt2.tokenize("\ud800") == ["ï¿½"]  # EF BF BD, merged by the tiny vocabulary
    assert gpt2.decode(gpt2.encode("a\ud800b")) == "a\ufffdb"
    assert shared["transfo_xl"].tokenize("caf\udce9") == ["caf" + FFFD]


def test_xlnet_surrogates_never_reach_sentencepiece(shared):
    """sentencepiece's binding raises ``RuntimeError: Unable to cast Python instance``
    for a surrogate; every XLNet path (fast ids, pieces, sampling, pairs) gets U+FFFD."""
    tok = shared["xlnet"]
    clean = "a\ufffdb 1,000"
    for text in ["a\ud800b 1,000", "a\udfffb 1,000"]:
        assert tok.encode(text) == tok.encode(clean)  # the direct-ids path
        assert tok.tokenize(text) == tok.tokenize(clean)
        assert tok.tokenize(text, sample=True, seed=3) == tok.tokenize(clean, sample=True, seed=3)
        assert tok.encode(text, text) == tok.encode(clean, clean)


@pytest.mark.parametrize("name", NAMES)
def test_bytes_raise_type_error_suggesting_decode(shared, name):
    tok = shared[name]
    hint = re.escape('.decode("utf-8", errors="replace")')
    calls = {
        "text": [
            lambda: tok.tokenize(b"hello"),
            lambda: tok.encode(b"hello"),
            lambda: tok.encode_plus(b"hello"),
        ],
        "text_pair": [lambda: tok.encode("hello", b"world")],
        r"texts\[1\]": [lambda: tok.batch_encode(["hello", b"world"])],
        r"text_pairs\[0\]": [lambda: tok.batch_encode(["hello"], [bytearray(b"world")])],
        "texts": [lambda: tok(b"hello")],
    }
    for argument, fns in calls.items():
        for fn in fns:
            with pytest.raises(TypeError, match=f"^{argument} must be .*{argument}{hint}"):
                fn()
    with pytest.raises(TypeError, match="text must be a str; got int"):
        tok.tokenize(3)


def test_trainer_text_input(tmp_path):
    clean = ["caf\ufffd caf\ufffd caf\ufffd", "ab ab ab"]
    assert train_bpe(["caf\udce9 caf\ud800 caf\udfff", "ab ab ab"], 300) == train_bpe(clean, 300)
    with pytest.raises(TypeError, match=re.escape('texts[1].decode("utf-8", errors="replace")')):
        train_bpe(["ok", b"bytes"], 300)


def test_added_tokens_must_be_valid_unicode(build):
    tok = build["bert"]()
    with pytest.raises(ValueError, match="lone surrogate"):
        tok.add_tokens(["okay", "bad\ud800"])
    assert "okay" not in tok.added_tokens_encoder  # all or nothing


# --------------------------------------------------------------------------- fuzz

TEXTS = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=40),  # surrogates included
    st.lists(
        st.sampled_from(
            ["\ud800", "\udfff", "\udc80", "\ud83d\ude00", FFFD, "a", "b", " ", "  ", "\n"]
            + ["é", "😀", "hello", "1,000", "<|endoftext|>", "[SEP]", "<unk>", "<sep>", "\x00"]
        ),
        max_size=15,
    ).map("".join),
)


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(text=TEXTS)
def test_fuzz_encode_never_raises(shared, name, text):
    tok = shared[name]
    ids = tok.encode(text)
    assert all(type(i) is int and 0 <= i < len(tok) for i in ids)
    assert ids == tok.encode(_replace_surrogates(text))
    decoded = tok.decode(ids)
    assert isinstance(decoded, str)
    if name == "gpt2":  # byte-level BPE is lossless
        assert tok.decode(tok.encode(text, add_special_tokens=False)) == _replace_surrogates(text)


# --------------------------------------------------------------------------- files


def test_vocabulary_files_not_utf8_raise_value_error_naming_the_file(tmp_path, xlnet_file):
    bad = tmp_path / "bad"
    bad.mkdir()
    vocab_txt = bad / "vocab.txt"
    vocab_txt.write_bytes(b"[PAD]\n[UNK]\nab\xffc\n")
    with pytest.raises(ValueError, match=r"vocab\.txt is not valid UTF-8 \(line 3, byte 14"):
        BertTokenizer(vocab_txt)
    with pytest.raises(ValueError, match=r"vocab\.txt is not valid UTF-8"):
        TransfoXLTokenizer(vocab_file=vocab_txt)

    good_vocab = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    merges = bad / "merges.txt"
    merges.write_bytes(b"#version: 0.2\na b\n\xc3\x28 c\n")
    for make in [
        lambda: GPT2Tokenizer(good_vocab, merges),
        lambda: OpenAIGPTTokenizer({"a": 0, "<unk>": 1}, merges),
        lambda: XLMTokenizer({"a": 0, "<unk>": 1}, merges),
    ]:
        with pytest.raises(ValueError, match=r"merges\.txt is not valid UTF-8 \(line 3"):
            make()
    vocab_json = bad / "vocab.json"
    vocab_json.write_bytes(b'{"a": 0, "\xff": 1}')
    with pytest.raises(ValueError, match=r"vocab\.json is not valid UTF-8"):
        GPT2Tokenizer(vocab_json, [])
    # valid UTF-8, but a JSON escape makes a token no text can match nor decode can write
    vocab_json.write_text(json.dumps({"a": 0, "b\ud800": 1}), encoding="utf-8")
    with pytest.raises(ValueError, match=r"vocab\.json holds the token 'b\\ud800'"):
        GPT2Tokenizer(vocab_json, [])
    saved = tmp_path / "saved"
    _gpt2().save_pretrained(saved)
    (saved / "added_tokens.json").write_text(json.dumps({"x\udc80": 263}), encoding="utf-8")
    with pytest.raises(ValueError, match="lone surrogate"):
        GPT2Tokenizer.from_pretrained(saved)

    corpus = bad / "corpus.txt"
    corpus.write_bytes(b"hello world\n" * 10 + b"bad \xfe line\n")
    tok = _transfo_xl()
    before = dict(tok.counter)
    with pytest.raises(ValueError, match=r"corpus\.txt is not valid UTF-8 \(line 11"):
        tok.count_file(corpus)
    assert dict(tok.counter) == before  # nothing half-counted
    with pytest.raises(ValueError, match=r"corpus\.txt is not valid UTF-8"):
        tok.encode_file(corpus)

    model = xlnet_file.read_bytes()
    piece = b"\x0a\x03\xe2\x96\x81\x15"  # the piece "▁" (3 bytes), then its score's tag
    assert model.count(piece) == 1
    corrupt = bad / "spiece.model"
    corrupt.write_bytes(model.replace(piece, b"\x0a\x03\xff\xfe\xfd\x15"))
    with pytest.raises(ValueError, match=r"spiece\.model holds a piece that is not valid UTF-8"):
        XLNetTokenizer(corrupt)


# --------------------------------------------------------------------------- added tokens


def _naive_tokenize(tok, text: str) -> list[str]:
    """Reference: at each position the longest added / special token that starts there
    (else move on by one character); the text between goes through ``tokenize`` whole."""
    tokens = set(tok.added_tokens_encoder) | set(tok.all_special_tokens)
    lengths = sorted({len(t) for t in tokens}, reverse=True)
    out: list[str] = []
    gap = i = 0
    while i < len(text):
        for length in lengths:
            if text[i : i + length] in tokens:
                out.extend(tok.tokenize(text[gap:i]))
                out.append(text[i : i + length])
                i = gap = i + length
                break
        else:
            i += 1
    return out + tok.tokenize(text[gap:])


def _many_tokens(count: int, seed: int = 0) -> list[str]:
    """Distinct lower-case strings of 2..9 letters, many of them prefixes of others."""
    rng = random.Random(seed)
    tokens: dict[str, None] = {}
    while len(tokens) < count:
        word = "".join(rng.choice("abcdefghij") for _ in range(rng.randint(4, 9)))
        tokens[word] = tokens[word[: rng.randint(2, len(word) - 1)]] = None
    return list(tokens)[:count]


def _long_text(tokens: list[str], chars: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    parts: list[str] = []
    while sum(map(len, parts)) < chars:
        pick = rng.random()
        if pick < 0.3:
            parts.append(rng.choice(tokens))
        elif pick < 0.6:
            parts.append("".join(rng.choice("abcdefghijxy") for _ in range(rng.randint(1, 8))))
        else:
            parts.append(rng.choice([" ", "  ", ", ", "\n", " hello ", FFFD, "<unk>"]))
    return "".join(parts)


def _widest_branch(pattern: str) -> int:
    """Most alternatives that ``re`` may try at one point of the pattern."""
    parser = getattr(re, "_parser", None)
    if parser is None:  # Python < 3.11
        import sre_parse as parser  # noqa: N813

    widest = 0
    stack = [parser.parse(pattern)]
    while stack:
        item = stack.pop()
        if isinstance(item, (list, tuple)) or hasattr(item, "data"):
            items = item.data if hasattr(item, "data") else item
            if isinstance(item, tuple) and len(item) == 2 and str(item[0]) == "BRANCH":
                widest = max(widest, len(item[1][1]))
            stack.extend(x for x in items if isinstance(x, (list, tuple)) or hasattr(x, "data"))
    return widest


@pytest.mark.parametrize("name", NAMES)
def test_ten_thousand_added_tokens_match_a_naive_scan(build, name):
    tok = build[name]()
    tokens = _many_tokens(10_000)
    new = len(set(tokens) - set(tok.get_vocab()))
    assert tok.add_tokens(tokens) == new > 9_900
    text = _long_text(tokens, 20_000)
    expected = _naive_tokenize(tok, text)
    assert tok.tokenize(text) == expected
    assert tok.encode(text, add_special_tokens=False) == tok.convert_tokens_to_ids(expected)


def test_added_token_matcher_is_built_once(build, monkeypatch):
    from ptfunc.tokenize import _trie

    builds = []
    real = _trie.longest_first_pattern

    def counting(strings):
        builds.append(1)
        return real(strings)

    monkeypatch.setattr(_trie, "longest_first_pattern", counting)
    tok = build["gpt2"]()
    tok.add_tokens(_many_tokens(10_000))
    texts = [_long_text(["abcd", "hello"], 200, seed=s) for s in range(50)]
    first = [tok.encode(t) for t in texts]
    assert len(builds) == 1
    # not O(added tokens) per character: where an alternation would offer ~10,000
    # alternatives at each position, the pattern branches on the next character only
    assert _widest_branch(tok._no_split_pattern().pattern) <= 16
    assert tok.add_tokens(["zzzz"]) == 1  # invalidates
    assert [tok.encode(t) for t in texts] == first
    assert tok.encode("a zzzz b")[2] == len(tok) - 1
    assert len(builds) == 2
    tok.add_special_tokens({"pad_token": "<pad>"})
    tok.encode("x <pad> y")
    tok.encode("x <pad> y")
    assert len(builds) == 3


def test_added_token_precedence_is_unchanged(build):
    """Longest first at the leftmost position; special tokens compete on equal terms."""
    tok = build["bert"]()
    tok.add_tokens(["ab", "abc", "bcd", "c"])
    tok.add_special_tokens({"additional_special_tokens": ["<s1>", "abcd"]})
    assert tok.tokenize("xabcdy") == ["x", "abcd", "y"]
    assert tok.tokenize("abcab c<s1>bcd") == ["abc", "ab", "c", "<s1>", "bcd"]
    assert tok.tokenize("a [SEP]b") == ["a", "[SEP]", "b"]


# --------------------------------------------------------------------------- BPE


def _classic_bpe(ranks: dict[tuple[str, str], int], symbols) -> tuple[str, ...]:
    """The reference loop: lowest-rank pair, merge all its occurrences left to right."""
    word = list(symbols)
    while len(word) > 1:
        pairs = [(ranks[p], p) for p in zip(word, word[1:]) if p in ranks]
        if not pairs:
            break
        _, (first, second) = min(pairs)
        out: list[str] = []
        i = 0
        while i < len(word):
            if i + 1 < len(word) and word[i] == first and word[i + 1] == second:
                out.append(first + second)
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = out
    return tuple(word)


class _CountingRanks(dict):
    """A ranks dict that counts its ``get`` calls (the work of a merge loop)."""

    calls = 0

    def get(self, key, default=None):
        self.calls += 1
        return super().get(key, default)


def _real_tokenizers(fixtures: Path) -> dict[str, object]:
    gpt2, openai = fixtures / "gpt2", fixtures / "openai-gpt"
    encoder = json.loads((openai / "encoder_bpe_40000.json").read_text(encoding="utf-8"))
    merges = (openai / "vocab_40000.bpe").read_text(encoding="utf-8").split("\n")[1:]
    return {
        "gpt2": GPT2Tokenizer(gpt2 / "encoder.json", gpt2 / "vocab.bpe"),
        "openai": OpenAIGPTTokenizer(openai / "encoder_bpe_40000.json", openai / "vocab_40000.bpe"),
        "xlm": XLMTokenizer(encoder, [tuple(m.split()[:2]) for m in merges if m.strip()]),
    }


@pytest.fixture(scope="module")
def real(shared_fixtures: Path) -> dict[str, object]:
    return _real_tokenizers(shared_fixtures)


@pytest.mark.parametrize("name", ["gpt2", "openai", "xlm"])
def test_heap_merge_equals_the_classic_loop_on_random_words(real, name):
    tok = real[name]
    ranks = tok.bpe.ranks
    rng = random.Random(7)
    table = bytes_to_unicode()
    alphabets = [string.ascii_lowercase, "etaoinshrdlu", "ab", "e", string.ascii_letters + "é1"]
    for trial in range(120):
        length = rng.choice([1, 2, 3, 5, 8, 13, 40, 120, 200])
        word = "".join(rng.choice(alphabets[trial % len(alphabets)]) for _ in range(length))
        if name == "gpt2":
            chunk = (" " if trial % 2 else "") + word
            symbols = tuple(table[b] for b in chunk.encode("utf-8"))
            expected = _classic_bpe(ranks, symbols)
            assert tok.bpe.merge(symbols) == expected, chunk
            if word.isalpha():
                assert tok.tokenize(chunk) == list(expected)
        else:
            word = word.lower()
            symbols = (*word[:-1], word[-1] + "</w>")
            expected = _classic_bpe(ranks, symbols)
            assert tok.bpe.merge(symbols) == expected, word
            if word.isalpha() and word.isascii():
                assert tok.tokenize(word) == list(expected)


def test_heap_merge_equals_the_classic_loop_on_adversarial_tables():
    """Merge tables where a merge makes a pair of *lower* rank than its own (a string
    made by two merges): the classic loop finishes the current rank first."""
    from ptfunc.tokenize import _bpe

    rng = random.Random(3)

    def symbol() -> str:
        return "".join(rng.choice("ab") for _ in range(rng.randint(1, 3)))

    for _ in range(300):
        merges = [(symbol(), symbol()) for _ in range(rng.randint(2, 12))]
        bpe = _bpe.BPE(merges)
        for _ in range(8):
            word = "".join(rng.choice("ab") for _ in range(rng.randint(1, 40)))
            assert bpe.merge(word) == _classic_bpe(bpe.ranks, word), (merges, word)
    # the case that needs it: (ab, a) has rank 0, but "ab" only appears at rank 1
    assert _bpe.BPE([("ab", "a"), ("a", "b")]).merge("abab") == ("ab", "ab")


def _deep_merges(seed: int = 0) -> list[tuple[str, str]]:
    """A table that merges random text deeply: every pair of the letters a..h, then every
    pair of the two-letter symbols over a..d (320 merges, in a random order)."""
    rng = random.Random(seed)
    level1 = [(x, y) for x in "abcdefgh" for y in "abcdefgh"]
    rng.shuffle(level1)
    twos = [x + y for x, y in level1 if x in "abcd" and y in "abcd"]
    level2 = [(x, y) for x in twos for y in twos]
    rng.shuffle(level2)
    return level1 + level2


@pytest.mark.parametrize("name", ["gpt2", "openai", "xlm"])
def test_merge_work_is_n_log_n_not_quadratic(build, name):
    """Counted, not timed: rank look-ups while tokenizing 5,000 letters without a space.
    The classic loop rescans the whole word once per merge rank it applies (about 300
    here: 1.5 million look-ups); the heap does a few per symbol."""
    tok = build[name]()
    ranks = {pair: rank for rank, pair in enumerate(_deep_merges())}
    tok.bpe.ranks = counting = _CountingRanks(ranks)
    rng = random.Random(0)
    word = "".join(rng.choice("abcdefgh") for _ in range(5000))
    pieces = tok.tokenize(word)
    assert "".join(pieces).replace("</w>", "") == word
    assert len(pieces) < 0.6 * len(word)  # the table did merge deeply
    assert counting.calls <= 10 * len(word)


def test_two_hundred_thousand_letters_without_a_space(build, real):
    rng = random.Random(5)
    word = "".join(rng.choice(string.ascii_letters) for _ in range(LONG_WORD))
    with _hang_guard(120):
        gpt2 = real["gpt2"]
        ids = gpt2.encode(word)
        assert gpt2.decode(ids) == word
        assert gpt2.bpe.cache.get(word) is None  # megabyte words are not cached
        for name in ("openai", "xlm"):
            tokens = real[name].tokenize(word)
            assert "".join(tokens).replace("</w>", "") == word.lower()
        merges = train_bpe([word], 256 + 1 + 200)[1]
        assert len(merges) == 200
