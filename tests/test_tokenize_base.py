"""``ptfunc.tokenize.PreTrainedTokenizer``: the API shared by all tokenizers.

Most tests use a tiny word-level tokenizer defined here, so they check the base class
alone. References: pytorch-transformers 1.0.0 (``clean_up_tokenization``, its
``add_special_tokens`` / ``added_tokens.json`` bugs, which ptfunc fixes), and the Rust
``tokenizers`` truncation rule (checked end to end in test_tokenize_bert.py). Exact
equality throughout.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ptfunc.tokenize import PreTrainedTokenizer, _encoding, clean_up_tokenization

WORDS = ["<pad>", "<unk>", "hello", "world", "the", "cat", "sat", ".", ","]


class WordTokenizer(PreTrainedTokenizer):
    """Whitespace-separated words over a fixed list; no special-token template."""

    vocab_files_names = {"vocab_file": "words.txt"}

    def __init__(self, vocab_file: Any = None, lowercase: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if vocab_file is None:
            self.words = list(WORDS)
        else:
            self.words = Path(vocab_file).read_text(encoding="utf-8").split("\n")[:-1]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.lowercase = lowercase

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def _tokenize(self, text: str) -> list[str]:
        return (text.lower() if self.lowercase else text).split()

    def _convert_token_to_id(self, token: str) -> int | None:
        return self.index.get(token)

    def _convert_id_to_token(self, index: int) -> str | None:
        return self.words[index] if 0 <= index < len(self.words) else None

    def _vocabulary_files(self) -> dict[str, str | bytes]:
        return {"words.txt": "".join(w + "\n" for w in self.words)}

    def _init_config(self) -> dict[str, Any]:
        return {"lowercase": self.lowercase}


class RawPieces(WordTokenizer):
    """Returns each piece between added tokens as one token, to show what _tokenize gets."""

    def _tokenize(self, text: str) -> list[str]:
        return [text]


class KeepSpaces(RawPieces):
    strip_around_added_tokens = False  # as byte-level BPE (GPT-2) needs


def make(**kwargs: Any) -> WordTokenizer:
    return WordTokenizer(unk_token="<unk>", pad_token="<pad>", **kwargs)


# --------------------------------------------------------------------------- special tokens


def test_special_tokens_unset_are_none_and_silent(caplog):
    tok = WordTokenizer()
    with caplog.at_level(logging.DEBUG):
        for name in PreTrainedTokenizer.SPECIAL_TOKENS_ATTRIBUTES[:-1]:
            assert getattr(tok, name) is None
            assert getattr(tok, name + "_id") is None
        assert tok.additional_special_tokens == []
        assert tok.special_tokens_map == {}
        assert tok.all_special_tokens == [] and tok.all_special_ids == []
    assert caplog.records == []


def test_special_token_attributes_and_ids():
    tok = make(cls_token="hello", sep_token="world", additional_special_tokens=["cat", "hello"])
    assert tok.pad_token == "<pad>" and tok.pad_token_id == 0 and tok.unk_token_id == 1
    assert tok.cls_token_id == 2 and tok.sep_token_id == 3
    assert tok.additional_special_tokens_ids == [5, 2]
    assert tok.special_tokens_map == {
        "unk_token": "<unk>",
        "sep_token": "world",
        "pad_token": "<pad>",
        "cls_token": "hello",
        "additional_special_tokens": ["cat", "hello"],
    }
    # attribute order, each token once
    assert tok.all_special_tokens == ["<unk>", "world", "<pad>", "hello", "cat"]
    assert tok.all_special_ids == [1, 3, 0, 2, 5]
    tok.mask_token = {"content": "the", "lstrip": False}  # Hugging Face's dict form
    assert tok.mask_token == "the" and tok.mask_token_id == 4
    added_token = pytest.importorskip("tokenizers").AddedToken("cat", lstrip=True)
    tok.mask_token = added_token  # a Hugging Face AddedToken object
    assert tok.mask_token == "cat"
    tok.mask_token = None
    assert "mask_token" not in tok.special_tokens_map
    with pytest.raises(TypeError, match="bos_token must be a str"):
        tok.bos_token = 3
    with pytest.raises(TypeError, match="additional_special_tokens must be a list"):
        tok.additional_special_tokens = "cat"


def test_constructor_errors():
    with pytest.raises(TypeError, match="unexpected keyword.*'lower_case'"):
        WordTokenizer(lower_case=True)
    with pytest.raises(ValueError, match="disagree"):
        WordTokenizer(max_len=5, model_max_length=6)
    with pytest.raises(TypeError, match="max_len must be an int"):
        WordTokenizer(max_len="512")
    assert WordTokenizer(model_max_length=7).max_len == 7
    assert WordTokenizer(model_max_length=int(1e30)).max_len == int(1e12)  # HF's "no limit"


# --------------------------------------------------------------------------- added tokens


def test_add_tokens():
    tok = make()
    assert len(tok) == 9
    assert tok.add_tokens(["hello", "new", "", "new", "other"]) == 2  # in vocab / empty / repeat
    assert tok.added_tokens_encoder == {"new": 9, "other": 10}
    assert tok.added_tokens_decoder == {9: "new", 10: "other"}
    assert tok.add_tokens("third") == 1 and tok.convert_tokens_to_ids("third") == 11
    assert tok.add_tokens([]) == 0 and len(tok) == 12
    assert tok.get_vocab()["other"] == 10 and tok.get_vocab()["cat"] == 5
    with pytest.raises(TypeError, match="tokens to add must be str"):
        tok.add_tokens([3])


def test_add_special_tokens_expands_lists(shared_fixtures):
    """The fixed 1.0 bug: pytorch-transformers 1.0 added nothing for a list value."""
    ptt = pytest.importorskip("pytorch_transformers")
    old = ptt.BertTokenizer(str(shared_fixtures / "bert-base-uncased" / "vocab.txt"))
    assert old.add_special_tokens({"additional_special_tokens": ["<e1>", "<e2>"]}) == 0

    tok = make()
    assert (
        tok.add_special_tokens(
            {
                "additional_special_tokens": ["<e1>", "<e2>"],
                "bos_token": "<s>",
                "cls_token": "hello",
            }
        )
        == 3
    )
    assert tok.additional_special_tokens == ["<e1>", "<e2>"]
    assert tok.convert_tokens_to_ids(["<e1>", "<e2>", "<s>"]) == [9, 10, 11]
    assert tok.bos_token_id == 11 and tok.cls_token_id == 2
    assert tok.tokenize("hello<e1>cat <s>") == ["hello", "<e1>", "cat", "<s>"]
    with pytest.raises(ValueError, match="not a special-token attribute"):
        tok.add_special_tokens({"begin_token": "<b>"})


# --------------------------------------------------------------------------- tokenize


def test_tokenize_splits_on_added_tokens_longest_first():
    tok = RawPieces(unk_token="<unk>")
    tok.add_tokens(["ab", "abc"])
    tok.add_special_tokens({"sep_token": "[SEP]"})
    assert tok.tokenize("xx abcd ab [SEP]yy") == ["xx", "abc", "d", "ab", "[SEP]", "yy"]
    assert tok.tokenize("  spaced   ") == ["spaced"]
    assert tok.tokenize("") == [] and tok.tokenize("abc") == ["abc"]
    # 1.0 behaviour: the text around an added token is stripped
    assert tok.tokenize("one ab two") == ["one", "ab", "two"]


def test_tokenize_can_keep_spaces_around_added_tokens():
    tok = KeepSpaces(unk_token="<unk>")
    tok.add_tokens(["ab"])
    assert tok.tokenize("one ab two") == ["one ", "ab", " two"]
    assert tok.tokenize("ab ab") == ["ab", " ", "ab"]


def test_tokenize_type_error():
    with pytest.raises(TypeError, match="text must be a str; got bytes"):
        make().tokenize(b"hello")
    with pytest.raises(TypeError, match="NoneType"):
        make().encode(None)


# --------------------------------------------------------------------------- ids


def test_convert_tokens_to_ids(caplog):
    tok = make(max_len=3)
    assert tok.convert_tokens_to_ids("cat") == 5
    assert tok.convert_tokens_to_ids(["cat", "dog"]) == [5, 1]  # unknown -> unk
    with caplog.at_level(logging.WARNING):
        assert tok.convert_tokens_to_ids(["the"] * 4) == [4] * 4  # warns, does not truncate
    assert "longer than the specified maximum" in caplog.text
    no_unk = WordTokenizer()
    with pytest.raises(ValueError, match="'dog' is not in the vocabulary"):
        no_unk.convert_tokens_to_ids(["dog"])
    with pytest.raises(TypeError, match="tokens must be str"):
        tok.convert_tokens_to_ids(["cat", 5])


@pytest.mark.parametrize(
    "ids",
    [
        [2, 3],
        (2, 3),
        torch.tensor([2, 3]),
        torch.tensor([2, 3], dtype=torch.int32),
        np.array([2, 3]),
        [np.int64(2), torch.tensor(3)],
    ],
    ids=["list", "tuple", "tensor", "int32", "numpy", "mixed"],
)
def test_convert_ids_to_tokens_inputs(ids):
    assert make().convert_ids_to_tokens(ids) == ["hello", "world"]


def test_convert_ids_to_tokens_scalars_and_errors():
    tok = make()
    tok.add_tokens(["new"])
    assert tok.convert_ids_to_tokens(9) == "new"
    assert tok.convert_ids_to_tokens(torch.tensor(2)) == "hello"
    assert tok.convert_ids_to_tokens(np.int64(3)) == "world"
    assert tok.convert_ids_to_tokens([0, 2, 1], skip_special_tokens=True) == ["hello"]
    with pytest.raises(ValueError, match="token id 10 is outside the vocabulary.*0 to 9"):
        tok.convert_ids_to_tokens([2, 10])
    with pytest.raises(ValueError, match="outside"):
        tok.convert_ids_to_tokens(-1)
    with pytest.raises(TypeError, match="bool"):
        tok.convert_ids_to_tokens([True])
    with pytest.raises(TypeError, match="float"):
        tok.convert_ids_to_tokens(2.0)
    with pytest.raises(TypeError, match="dtype"):
        tok.convert_ids_to_tokens(np.array([1.0]))
    with pytest.raises(ValueError, match="shape"):
        tok.convert_ids_to_tokens(np.zeros((2, 2), dtype=np.int64))


def test_decode_and_clean_up():
    tok = make()
    ids = tok.encode("hello , the cat sat .")
    assert tok.decode(ids) == "hello, the cat sat."
    assert tok.decode(ids, clean_up_tokenization_spaces=False) == "hello , the cat sat ."
    assert tok.decode(torch.tensor([0, 2, 0]), skip_special_tokens=True) == "hello"
    assert tok.batch_decode([[2], (3,)]) == ["hello", "world"]
    with pytest.raises(ValueError, match="2-D"):
        tok.batch_decode(torch.tensor([2, 3]))


@pytest.mark.parametrize(
    "text",
    [
        "i do not know , he 's here .",
        "it is n't ! you 're right ? ' quoted ' i 'm , we 've",
        "no change",
        "do not",
        " do not",
        "a . b .. c ?!",
    ],
)
def test_clean_up_tokenization_equals_pytorch_transformers_1_0(text):
    ptt = pytest.importorskip("pytorch_transformers")
    assert clean_up_tokenization(text) == ptt.tokenization_utils.clean_up_tokenization(text)


# --------------------------------------------------------------------------- encoding


def test_encode_without_template():
    tok = make()
    assert tok.num_special_tokens_to_add() == tok.num_special_tokens_to_add(pair=True) == 0
    assert tok.encode("hello world") == [2, 3]
    assert tok.encode("hello", "the cat") == [2, 4, 5]
    assert tok.encode_plus("hello", "the cat") == {
        "input_ids": [2, 4, 5],
        "token_type_ids": [0, 1, 1],
        "attention_mask": [1, 1, 1],
    }
    assert tok("hello", "the cat") == tok.encode_plus("hello", "the cat")
    assert tok.encode("the cat sat", max_length=2) == [4, 5]
    assert tok.get_special_tokens_mask([2, 3]) == [0, 0]
    assert tok.get_special_tokens_mask([0, 3], already_has_special_tokens=True) == [1, 0]


def test_batch_encode_padding_and_tensors():
    tok = make()
    batch = tok.batch_encode(["hello", "the cat sat"], padding=True, return_tensors="pt")
    assert batch["input_ids"].dtype == torch.int64
    assert batch["input_ids"].tolist() == [[2, 0, 0], [4, 5, 6]]
    assert batch["attention_mask"].tolist() == [[1, 0, 0], [1, 1, 1]]
    left = tok(
        ["hello", "the cat sat"],
        padding="max_length",
        max_length=4,
        padding_side="left",
        return_token_type_ids=False,
        return_attention_mask=False,
    )
    assert left == {"input_ids": [[0, 0, 0, 2], [0, 4, 5, 6]]}
    masked = tok(
        ["hello"], ["cat"], return_special_tokens_mask=True, padding="max_length", max_length=3
    )
    assert masked["special_tokens_mask"] == [[0, 0, 1]]
    assert masked["token_type_ids"] == [[0, 1, 0]]
    tok.padding_side = "left"
    assert tok(["hello", "the cat"], padding=True)["input_ids"] == [[0, 2], [4, 5]]


def test_batch_encode_needs_pad_token():
    tok = WordTokenizer(unk_token="<unk>")
    assert tok(["hello", "hello world"])["input_ids"] == [[2], [2, 3]]  # nothing to pad
    assert tok(["hello", "world"], padding=True)["input_ids"] == [[2], [3]]  # equal lengths
    with pytest.raises(ValueError, match="pad_token is not set"):
        tok(["hello", "hello world"], padding=True)


def test_truncate_rules():
    """Unit table of ``_encoding.truncate`` (end-to-end vs the Rust backend in the BERT tests)."""
    a, b = list(range(5)), list(range(10, 15))
    assert _encoding.truncate(a, b, 5, "longest_first") == (a[:2], b[:3])  # odd id to second
    assert _encoding.truncate(a, b[:2], 5, "longest_first") == (a[:3], b[:2])
    assert _encoding.truncate(a[:2], b, 5, "longest_first") == (a[:2], b[:3])
    assert _encoding.truncate(a, None, 3, "longest_first") == (a[:3], None)
    assert _encoding.truncate(a, b, 0, "only_first") == ([], [])
    assert _encoding.truncate(a, b, 7, "only_first") == (a[:2], b)
    assert _encoding.truncate(a, b, 7, "only_second") == (a, b[:2])
    assert _encoding.truncate(a, b, 10, "only_second") == (a, b)
    with pytest.raises(ValueError, match="too few"):
        _encoding.truncate(a, b, 5, "only_second")
    with pytest.raises(ValueError, match="max_length is too small"):
        _encoding.truncate(a, b, -1, "longest_first")


# --------------------------------------------------------------------------- files


def saved(tmp_path: Path) -> tuple[WordTokenizer, Path]:
    tok = make(lowercase=True, max_len=64)
    tok.add_tokens(["new"])
    tok.add_special_tokens({"additional_special_tokens": ["<e1>"], "bos_token": "<s>"})
    tok.save_pretrained(tmp_path)
    return tok, tmp_path


def test_save_pretrained_files_and_round_trip(tmp_path):
    tok, path = saved(tmp_path)
    assert sorted(os.listdir(path)) == [
        "added_tokens.json",
        "special_tokens_map.json",
        "tokenizer_config.json",
        "words.txt",
    ]
    assert json.loads((path / "added_tokens.json").read_text()) == {"new": 9, "<e1>": 10, "<s>": 11}
    config = json.loads((path / "tokenizer_config.json").read_text())
    assert config["lowercase"] is True and config["model_max_length"] == 64
    assert config["tokenizer_class"] == "WordTokenizer"

    again = WordTokenizer.from_pretrained(path)
    text = "HELLO new<e1> <s>cat"
    assert again.encode(text) == tok.encode(text) == [2, 9, 10, 11, 5]
    assert again.special_tokens_map == tok.special_tokens_map
    assert again.max_len == 64 and len(again) == 12
    assert WordTokenizer.from_pretrained(path, lowercase=False).encode("HELLO") == [1]  # override
    assert WordTokenizer.from_pretrained(path, unk_token="cat").unk_token == "cat"


def test_reads_hugging_face_and_1_0_file_forms(tmp_path):
    (tmp_path / "words.txt").write_text("".join(w + "\n" for w in WORDS))
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "Whatever",
                "max_len": 8,
                "clean_up_tokenization_spaces": True,
                "unk_token": {"content": "<unk>", "lstrip": False},
                "extra_special_tokens": [{"content": "<e1>", "special": True}],
                "added_tokens_decoder": {"0": {"content": "<pad>"}, "10": {"content": "<e1>"}},
            }
        )
    )
    (tmp_path / "added_tokens.json").write_text(json.dumps({"9": "new"}))  # 1.0 wrote {id: token}
    tok = WordTokenizer.from_pretrained(tmp_path)
    assert tok.unk_token == "<unk>" and tok.max_len == 8
    assert tok.additional_special_tokens == ["<e1>"]
    assert tok.added_tokens_encoder == {"new": 9, "<e1>": 10}
    (tmp_path / "added_tokens.json").write_text(json.dumps({"new": 12}))
    with pytest.raises(ValueError, match="expected 9"):
        WordTokenizer.from_pretrained(tmp_path)


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no directory or file at"):
        WordTokenizer.from_pretrained(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match="has no words.txt"):
        WordTokenizer.from_pretrained(tmp_path)
    _, path = saved(tmp_path)
    (path / "special_tokens_map.json").write_text('{"unk_token": ')  # truncated file
    with pytest.raises(ValueError, match="special_tokens_map.json.*not valid"):
        WordTokenizer.from_pretrained(path)
    with pytest.raises(NotADirectoryError):
        make().save_pretrained(path / "words.txt")


def _snapshot(path: Path) -> dict[str, bytes]:
    return {name: (path / name).read_bytes() for name in sorted(os.listdir(path))}


@pytest.mark.parametrize("failure", ["json.dumps", "os.replace", "os.fsync"])
def test_failed_save_leaves_previous_files(tmp_path, monkeypatch, failure):
    tok, path = saved(tmp_path)
    before = _snapshot(path)
    tok.add_tokens(["newer"])
    tok.lowercase = False

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    module, name = failure.split(".")
    monkeypatch.setattr({"json": json, "os": os}[module], name, boom)
    with pytest.raises(OSError, match="disk full"):
        tok.save_pretrained(path)
    monkeypatch.undo()
    assert _snapshot(path) == before  # every previous file intact, no temporary left
    assert WordTokenizer.from_pretrained(path).added_tokens_encoder == {
        "new": 9,
        "<e1>": 10,
        "<s>": 11,
    }


def test_pickle_round_trip():
    tok = make()
    tok.add_tokens(["new"])
    tok.tokenize("hello new")  # fills the split cache
    copy = pickle.loads(pickle.dumps(tok))
    assert copy.encode("hello new cat") == tok.encode("hello new cat") == [2, 9, 5]
    copy.add_tokens(["newer"])
    assert copy.tokenize("newer new") == ["newer", "new"]
