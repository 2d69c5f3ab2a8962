"""Parity of ``ptfunc.tokenize.PreTrainedTokenizerFast`` with ``transformers``' on the same files.

Reference: ``transformers.PreTrainedTokenizerFast`` 5.x (``TokenizersBackend``) loaded
from the same directory (``AutoTokenizer`` too for the real fixtures); tolerance: ids,
tokens, masks and decoded text equal exactly.

Tokenizers under test, each saved as ``tokenizer.json`` + ``tokenizer_config.json``:

- four trained here with the ``tokenizers`` trainers on the shared corpora: a byte-level
  BPE with Llama 3's split regex and post-processor, a Llama-2-style BPE with byte
  fallback and a Metaspace pre-tokenizer (left padding), a BERT-like WordPiece (pairs,
  token types, clean-up) and a Unigram with a Metaspace pre-tokenizer;
- the real ``tokenizer.json`` fixtures (bert-base-uncased, tiny-gpt2, xlnet-base-cased).

Everything that needs the corpora skips cleanly when the shared fixtures are absent.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
import torch

from ptfunc.tokenize import PreTrainedTokenizerFast, TokenizerFileNotFoundError
from ptfunc.tokenize.auto import load_tokenizer, tokenizer_class_for

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
from tokenizers import (  # noqa: E402
    Regex,
    Tokenizer,
    decoders,
    models,
    normalizers,
    pre_tokenizers,
    processors,
    trainers,
)

HF = transformers.PreTrainedTokenizerFast
CORPORA = [
    "bert_sample_text.txt",
    "botchan.txt",
    "ptb.test.txt",
    "tinyshakespeare.txt",
    "wikitext-2.test.txt",
]
TRAIN_LINES = 600  # lines per corpus the trainers see
CHECK_LINES = 1000  # lines per corpus compared with transformers
REAL_LINES = 500  # ... for the real (larger) tokenizer.json fixtures
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
EDGE_CASES = [
    "",
    " ",
    "   x  ",
    "\t\n\n a\r\nb",
    "Hello world",
    "I'm you're they'll DON'T",
    "3.14159 and 1,000,000 x2",
    "😀 👍🏽 🇫🇷 👨‍👩‍👧",
    "中文字符测试 日本語のテキスト 한국어",
    "café naïve résumé Ångström e\u0301",
    "\x00\x01\x07\x1b[31m\x7f \u200b\ufeff\u00ad",
    "\u3000x\u00a0y\u2028z",
    "caf\udce9 lone surrogate",
]


def _lines(fixtures: Path, count: int) -> list[str]:
    out = []
    for name in CORPORA:
        text = (fixtures / "corpora" / name).read_text(encoding="utf-8")
        out += [line for line in text.split("\n")[:count]]
    return out


def _specials_in_text(tok: HF) -> list[str]:
    names = [t for t in tok.all_special_tokens]
    return [f"a {names[0]} b{names[-1]}c", f"{names[0]}{names[0]} x", f" {names[-1]} "]


# ---------------------------------------------------------------------- trained tokenizers


def _byte_level(text: list[str]) -> tuple[Tokenizer, dict]:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    trainer = trainers.BpeTrainer(
        vocab_size=1500,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(text, trainer)
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single="<|begin_of_text|> $A",
                pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                special_tokens=[("<|begin_of_text|>", bos)],
            ),
        ]
    )
    config = {
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|eot_id|>",
        "pad_token": "<|end_of_text|>",
        "model_max_length": 131072,
        "clean_up_tokenization_spaces": True,  # ignored for BPE, as in transformers
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    return tok, config


def _llama2(text: list[str]) -> tuple[Tokenizer, dict]:
    tok = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>", fuse_unk=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(
        replacement="▁", prepend_scheme="first", split=False
    )
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    trainer = trainers.BpeTrainer(
        vocab_size=1200, special_tokens=["<unk>", "<s>", "</s>", *byte_tokens], show_progress=False
    )
    tok.train_from_iterator(text, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B:1", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    config = {
        "add_bos_token": True,  # both readers ignore it: tokenizer.json's post-processor wins
        "add_eos_token": False,
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "</s>",
        "padding_side": "left",
        "legacy": False,
        "model_max_length": 4096,
        "added_tokens_decoder": {
            "0": {"content": "<unk>", "lstrip": False, "normalized": False, "rstrip": False,
                  "single_word": False, "special": True},
            "1": {"content": "<s>", "lstrip": False, "normalized": False, "rstrip": False,
                  "single_word": False, "special": True},
            "2": {"content": "</s>", "lstrip": False, "normalized": False, "rstrip": False,
                  "single_word": False, "special": True},
        },
        "tokenizer_class": "LlamaTokenizer",
    }  # fmt: skip
    return tok, config


def _wordpiece(text: list[str]) -> tuple[Tokenizer, dict]:
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(
        vocab_size=1500, special_tokens=specials, show_progress=False
    )
    tok.train_from_iterator(text, trainer)
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    config = {
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "unk_token": "[UNK]",
        "mask_token": "[MASK]",
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        "clean_up_tokenization_spaces": True,
        "model_max_length": 512,
    }
    return tok, config


def _unigram(text: list[str]) -> tuple[Tokenizer, dict]:
    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=800,
        special_tokens=["<pad>", "</s>", "<unk>"],
        unk_token="<unk>",
        show_progress=False,
    )
    tok.train_from_iterator(text[: len(text) // 2], trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>",
        pair="$A </s> $B:1 </s>:1",
        special_tokens=[("</s>", tok.token_to_id("</s>"))],
    )
    config = {"eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"}
    return tok, config


BUILDERS = {
    "byte-level": _byte_level,
    "llama2": _llama2,
    "wordpiece": _wordpiece,
    "unigram": _unigram,
}


@pytest.fixture(scope="module")
def lines(shared_fixtures: Path) -> list[str]:
    return _lines(shared_fixtures, CHECK_LINES)


@pytest.fixture(scope="module")
def trained(shared_fixtures: Path, tmp_path_factory) -> dict[str, Path]:
    text = _lines(shared_fixtures, TRAIN_LINES)
    out = {}
    for kind, build in BUILDERS.items():
        tok, config = build(text)
        directory = tmp_path_factory.mktemp(kind)
        tok.save(str(directory / "tokenizer.json"))
        (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
        out[kind] = directory
    return out


@pytest.fixture(params=list(BUILDERS))
def pair(request, trained):
    """(ours, transformers') loaded from the same directory."""
    directory = trained[request.param]
    return PreTrainedTokenizerFast.from_pretrained(directory), HF.from_pretrained(str(directory))


def test_ids_match_on_corpora(pair, lines):
    ours, hf = pair
    for special in (False, True):
        assert (
            ours.batch_encode(lines, add_special_tokens=special)["input_ids"]
            == (hf(lines, add_special_tokens=special)["input_ids"])
        )
    for line in lines[::25]:  # the one-text path too
        assert ours.encode(line) == hf.encode(line, add_special_tokens=False), line
        assert ours.encode(line, add_special_tokens=True) == hf.encode(line), line
        assert ours.tokenize(line) == hf.tokenize(line), line


def test_edge_cases_and_special_tokens_in_text(pair):
    ours, hf = pair
    for text in EDGE_CASES + _specials_in_text(hf):
        # ptfunc reads a lone surrogate as U+FFFD (the Rust library refuses it)
        ref = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in text)
        ids = ours.encode(text, add_special_tokens=True)
        assert ids == hf.encode(ref), repr(text)
        assert ours.tokenize(text) == hf.tokenize(ref), repr(text)
        for skip in (False, True):
            assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(
                ids, skip_special_tokens=skip
            ), repr(text)


def test_decode_matches(pair, lines):
    ours, hf = pair
    rows = hf(lines[:3000])["input_ids"]
    for skip in (False, True):
        assert ours.batch_decode(rows, skip_special_tokens=skip) == hf.batch_decode(
            rows, skip_special_tokens=skip
        )
        for row in rows[::50]:
            assert ours.decode(row, skip_special_tokens=skip) == hf.decode(
                row, skip_special_tokens=skip
            )
            assert ours.decode(torch.tensor(row), skip_special_tokens=skip) == hf.decode(
                row, skip_special_tokens=skip
            )
    row = rows[3]
    for clean in (False, True):
        assert ours.decode(row, clean_up_tokenization_spaces=clean) == hf.decode(
            row, clean_up_tokenization_spaces=clean
        )


@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_and_truncation(pair, lines, side):
    ours, hf = pair
    batch = [line for line in lines[:200] if line][:24]
    options = [
        {"padding": True},
        {"padding": "max_length", "max_length": 40, "truncation": True},
        {"padding": True, "max_length": 16, "truncation": True, "pad_to_multiple_of": 8},
        {"padding": "longest", "return_special_tokens_mask": True},
    ]
    for option in options:
        got = ours(batch, padding_side=side, return_tensors="pt", **option)
        want = hf(batch, padding_side=side, return_tensors="pt", **option)
        assert set(got) == set(want), option
        for key in want:
            assert torch.equal(got[key], want[key]), (option, key)
    got = ours(batch, max_length=9)  # max_length alone truncates (no padding)
    assert got["input_ids"] == hf(batch, max_length=9)["input_ids"]
    pairs = batch[1:] + batch[:1]
    for limit in (11, 30):
        got = ours(batch, pairs, truncation=True, max_length=limit, return_token_type_ids=True)
        want = hf(batch, pairs, truncation=True, max_length=limit, return_token_type_ids=True)
        assert got["input_ids"] == want["input_ids"]
        assert got["token_type_ids"] == want["token_type_ids"]


def test_padding_side_from_config(trained):
    ours = PreTrainedTokenizerFast.from_pretrained(trained["llama2"])
    hf = HF.from_pretrained(str(trained["llama2"]))
    assert ours.padding_side == hf.padding_side == "left"
    got = ours(["a b c d e", "a"], padding=True)
    assert got == {k: list(v) for k, v in hf(["a b c d e", "a"], padding=True).items()}
    assert got["attention_mask"][1][0] == 0  # the short prompt is padded on the left
    assert PreTrainedTokenizerFast.from_pretrained(trained["wordpiece"]).padding_side == "right"
    forced = PreTrainedTokenizerFast.from_pretrained(trained["wordpiece"], padding_side="left")
    assert forced.padding_side == "left"


def test_vocabulary_and_special_tokens(pair):
    ours, hf = pair
    assert ours.vocab_size == hf.vocab_size and len(ours) == len(hf)
    assert ours.get_vocab() == hf.get_vocab()
    assert ours.get_added_vocab() == hf.get_added_vocab()
    assert ours.special_tokens_map == hf.special_tokens_map
    assert ours.all_special_tokens == hf.all_special_tokens
    assert ours.all_special_ids == hf.all_special_ids
    for name in ("bos", "eos", "unk", "sep", "pad", "cls", "mask"):
        assert getattr(ours, f"{name}_token") == getattr(hf, f"{name}_token"), name
        assert getattr(ours, f"{name}_token_id") == getattr(hf, f"{name}_token_id"), name
    assert ours.model_max_length == min(hf.model_max_length, 10**12)
    tokens = hf.convert_ids_to_tokens(list(range(len(hf))))
    assert ours.convert_ids_to_tokens(list(range(len(ours)))) == tokens
    assert ours.convert_tokens_to_ids(tokens) == hf.convert_tokens_to_ids(tokens)
    assert ours.num_special_tokens_to_add() == hf.num_special_tokens_to_add()
    assert ours.num_special_tokens_to_add(pair=True) == hf.num_special_tokens_to_add(pair=True)


def test_add_tokens_matches(pair):
    ours, hf = pair
    from tokenizers import AddedToken

    assert ours.add_tokens(["<new>", "zebra crossing"]) == hf.add_tokens(
        ["<new>", "zebra crossing"]
    )
    assert ours.add_tokens(AddedToken("<strip>", lstrip=True, rstrip=True)) == hf.add_tokens(
        AddedToken("<strip>", lstrip=True, rstrip=True)
    )
    added = {"additional_special_tokens": ["<tool>", "<end>"], "pad_token": "<pad2>"}
    assert ours.add_special_tokens(added) == hf.add_special_tokens(added)
    assert len(ours) == len(hf)
    assert ours.additional_special_tokens == hf.extra_special_tokens == ["<tool>", "<end>"]
    assert ours.pad_token_id == hf.pad_token_id
    text = "a<new>b zebra crossing x <strip> y<tool> <end>z <pad2>"
    ids = ours.encode(text, add_special_tokens=True)
    assert ids == hf.encode(text)
    assert ours.tokenize(text) == hf.tokenize(text)
    for skip in (False, True):
        assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(
            ids, skip_special_tokens=skip
        )
    assert ours.all_special_ids == hf.all_special_ids


def test_config_added_tokens_and_missing_special_tokens(trained, tmp_path, lines):
    (tmp_path / "tokenizer.json").write_bytes((trained["llama2"] / "tokenizer.json").read_bytes())
    size = json.loads((trained["llama2"] / "tokenizer.json").read_text())["model"]["vocab"]
    flags = {"single_word": False, "normalized": False, "special": False}
    config = {
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",  # in neither the vocabulary nor the added tokens
        "image_token": "<image>",  # a model-specific named token
        "additional_special_tokens": ["<extra_0>"],
        "added_tokens_decoder": {
            "2": {"content": "</s>", "lstrip": True, "rstrip": True, **flags, "special": True},
            str(len(size)): {"content": "<tool>", "lstrip": False, "rstrip": True, **flags},
        },
    }
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    ours = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    hf = HF.from_pretrained(str(tmp_path))
    assert ours.get_added_vocab() == hf.get_added_vocab() and len(ours) == len(hf)
    assert {i: t.__getstate__() for i, t in ours.added_tokens().items()} == {
        i: t.__getstate__() for i, t in hf.added_tokens_decoder.items()
    }
    assert ours.pad_token_id == hf.pad_token_id
    assert ours.model_specific_special_tokens == {"image_token": "<image>"}
    assert ours.all_special_tokens == hf.all_special_tokens
    texts = ["a </s> b<tool> c", "x <image> <extra_0><pad> y", *lines[:50]]
    assert ours.batch_encode(texts)["input_ids"] == hf(texts)["input_ids"]
    for skip in (False, True):
        got = ours.batch_decode(ours.batch_encode(texts)["input_ids"], skip_special_tokens=skip)
        assert got == hf.batch_decode(hf(texts)["input_ids"], skip_special_tokens=skip)


def test_save_round_trip(pair, tmp_path, lines):
    ours, hf = pair
    ours.add_special_tokens({"additional_special_tokens": ["<extra>"]})
    ours.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"tokenizer.json", "tokenizer_config.json"}
    again = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    theirs = HF.from_pretrained(str(tmp_path))  # transformers reads ptfunc's files
    sample = [*lines[:300], "x <extra> y"]
    want = ours.batch_encode(sample)["input_ids"]
    assert again.batch_encode(sample)["input_ids"] == want
    assert theirs(sample)["input_ids"] == want
    assert again.special_tokens_map == ours.special_tokens_map
    # transformers 5 lists the additional special tokens apart from the named ones
    named = {k: v for k, v in ours.special_tokens_map.items() if k != "additional_special_tokens"}
    assert theirs.special_tokens_map == named
    assert theirs.extra_special_tokens == ours.additional_special_tokens
    assert again.padding_side == theirs.padding_side == ours.padding_side
    assert again.model_max_length == ours.model_max_length
    assert again.tokenizer_config() == ours.tokenizer_config()
    assert pickle.loads(pickle.dumps(ours)).batch_encode(sample)["input_ids"] == want


def test_add_bos_eos_given_on_load(trained, lines):
    directory = str(trained["byte-level"])
    ours = PreTrainedTokenizerFast.from_pretrained(directory, add_eos_token=True)
    hf = HF.from_pretrained(directory, add_eos_token=True)
    sample = lines[:100]
    assert ours.batch_encode(sample)["input_ids"] == hf(sample)["input_ids"]
    ours.add_bos_token = True
    hf.add_bos_token = True
    assert ours.batch_encode(sample, sample)["input_ids"] == hf(sample, sample)["input_ids"]
    assert ours.add_bos_token and ours.add_eos_token


def test_tokenizer_json_padding_and_truncation_settings(trained, tmp_path):
    backend = Tokenizer.from_file(str(trained["wordpiece"] / "tokenizer.json"))
    backend.enable_padding(pad_id=0, pad_token="[PAD]", direction="left")
    backend.enable_truncation(max_length=7)
    backend.save(str(tmp_path / "tokenizer.json"))
    ours = PreTrainedTokenizerFast.from_pretrained(tmp_path)
    hf = HF.from_pretrained(str(tmp_path))
    texts = ["a b c d e f g h i j k", "a"]
    assert ours.pad_token == hf.pad_token == "[PAD]"
    assert ours.padding_side == hf.padding_side == "left"
    assert ours(texts)["input_ids"] == hf(texts)["input_ids"]  # no padding unless asked
    assert ours(texts, padding=True)["input_ids"] == hf(texts, padding=True)["input_ids"]
    ours.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "tokenizer.json").read_text(encoding="utf-8"))
    original = json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))
    assert saved["padding"] == original["padding"] and saved["truncation"] == original["truncation"]


def test_auto_picks_the_class(trained, tmp_path, shared_fixtures):
    for directory in trained.values():
        assert tokenizer_class_for(directory) is PreTrainedTokenizerFast
    assert type(load_tokenizer(trained["unigram"])) is PreTrainedTokenizerFast
    # a family's name in the config, but only tokenizer.json: the family's files are absent
    (tmp_path / "tokenizer.json").write_bytes(
        (trained["byte-level"] / "tokenizer.json").read_bytes()
    )
    (tmp_path / "tokenizer_config.json").write_text('{"tokenizer_class": "GPT2Tokenizer"}')
    assert tokenizer_class_for(tmp_path) is PreTrainedTokenizerFast
    # directories with the family's own vocabulary files keep their class
    assert tokenizer_class_for(shared_fixtures / "tiny-gpt2").__name__ == "GPT2Tokenizer"
    assert tokenizer_class_for(shared_fixtures / "bert-base-uncased").__name__ == "BertTokenizer"
    assert tokenizer_class_for(tmp_path, "tokenizer-json") is PreTrainedTokenizerFast


def test_repo_ids_from_a_hub(trained, shared_fixtures, monkeypatch):
    from _hub_server import FakeHub

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    tokenizer_json = (trained["byte-level"] / "tokenizer.json").read_bytes()
    gpt2 = shared_fixtures / "tiny-gpt2"
    with FakeHub() as fake:
        monkeypatch.setenv("HF_ENDPOINT", fake.url)
        config = {"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|eot_id|>"}
        fake.add_repo(
            "org/chatty",
            {
                "tokenizer.json": tokenizer_json,
                "tokenizer_config.json": json.dumps(config).encode(),
                "chat_template.jinja": b"{{ messages[0].content }}{{ eos_token }}",
                "config.json": b'{"model_type": "qwen2"}',
            },
        )
        only_json = {"tokenizer_class": "GPT2Tokenizer"}
        fake.add_repo(
            "org/gpt2-json",
            {
                "tokenizer.json": tokenizer_json,
                "tokenizer_config.json": json.dumps(only_json).encode(),
            },
        )
        names = ("tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json")
        fake.add_repo("org/gpt2-both", {name: (gpt2 / name).read_bytes() for name in names})
        tok = PreTrainedTokenizerFast.from_pretrained("org/chatty")
        assert tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == (
            "hi<|eot_id|>"
        )
        assert type(load_tokenizer("org/chatty")) is PreTrainedTokenizerFast
        assert type(load_tokenizer("org/gpt2-json")) is PreTrainedTokenizerFast
        assert type(load_tokenizer("org/gpt2-both")).__name__ == "GPT2Tokenizer"


# ---------------------------------------------------------------------- real tokenizer.json files


@pytest.mark.parametrize("name", ["bert-base-uncased", "tiny-gpt2", "xlnet-base-cased"])
def test_real_tokenizer_json_fixtures(shared_fixtures, name):
    directory = shared_fixtures / name
    if not (directory / "tokenizer.json").is_file():
        pytest.skip(f"{directory / 'tokenizer.json'} not in the shared fixtures")
    lines = _lines(shared_fixtures, REAL_LINES) + EDGE_CASES[:-1]
    ours = PreTrainedTokenizerFast.from_pretrained(directory)
    hf = HF.from_pretrained(str(directory))
    auto = transformers.AutoTokenizer.from_pretrained(str(directory))  # the model's own class
    for special in (False, True):
        got = ours.batch_encode(lines, add_special_tokens=special)["input_ids"]
        assert got == hf(lines, add_special_tokens=special)["input_ids"]
    assert got == auto(lines)["input_ids"], type(auto).__name__
    for skip in (False, True):
        assert ours.batch_decode(got, skip_special_tokens=skip) == hf.batch_decode(
            got, skip_special_tokens=skip
        )
    assert ours.special_tokens_map == hf.special_tokens_map and len(ours) == len(hf)


# ---------------------------------------------------------------------- errors


def test_missing_tokenizer_json(tmp_path):
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ValueError, match=r"has no tokenizer\.json"):
        PreTrainedTokenizerFast.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):  # the same error is a FileNotFoundError too
        PreTrainedTokenizerFast.from_pretrained(tmp_path)
    with pytest.raises(TokenizerFileNotFoundError, match="no directory or file"):
        PreTrainedTokenizerFast.from_pretrained(tmp_path / "nowhere")
    with pytest.raises(ValueError, match="needs tokenizer_file or tokenizer_object"):
        PreTrainedTokenizerFast()


@pytest.mark.parametrize(
    "content", ['{"version": "1.0", "model": ', "not json at all", '{"version": "1.0"}', "[]"]
)
def test_broken_tokenizer_json(tmp_path, content):
    (tmp_path / "tokenizer.json").write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer\.json is not valid JSON or not a tokenizers"):
        PreTrainedTokenizerFast.from_pretrained(tmp_path)


def test_broken_config_and_bad_arguments(trained, tmp_path):
    (tmp_path / "tokenizer.json").write_bytes(
        (trained["wordpiece"] / "tokenizer.json").read_bytes()
    )
    (tmp_path / "tokenizer_config.json").write_text("{oops", encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer_config\.json .*not valid UTF-8 JSON"):
        PreTrainedTokenizerFast.from_pretrained(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text('{"padding_side": "up"}', encoding="utf-8")
    with pytest.raises(ValueError, match="padding_side must be 'right' or 'left'"):
        PreTrainedTokenizerFast.from_pretrained(tmp_path)
    tok = PreTrainedTokenizerFast.from_pretrained(trained["wordpiece"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([len(tok)])
    with pytest.raises(TypeError):
        tok.encode(b"bytes")
    with pytest.raises(ValueError, match="max_length"):
        tok(["a b c d e f"], ["g h"], truncation="only_second", max_length=4)
    no_pad = PreTrainedTokenizerFast.from_pretrained(trained["unigram"], pad_token=None)
    assert no_pad.pad_token is None
    with pytest.raises(ValueError, match="pad token"):
        no_pad(["a", "a b c"], padding=True)
    assert no_pad(["a b", "a b"], padding=True)["input_ids"][0]  # nothing to pad: fine
    with pytest.raises(NotImplementedError, match="add_special_tokens=True"):
        tok.build_inputs_with_special_tokens([1, 2])
    with pytest.raises(ValueError, match="no chat template"):
        tok.apply_chat_template([{"role": "user", "content": "hi"}])
