"""BertConfig reads and writes pytorch-transformers 1.0 and today's transformers config.json."""

from __future__ import annotations

import json

import pytest

from ptfunc.archs import bert

transformers = pytest.importorskip("transformers")
pt = pytest.importorskip("pytorch_transformers")

SMALL = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_act="gelu",
    max_position_embeddings=64,
    type_vocab_size=3,
    layer_norm_eps=1e-6,
)


def test_json_round_trip(tmp_path):
    c = bert.BertConfig(**SMALL, num_labels=5, finetuning_task="mrpc")
    c.to_json_file(tmp_path / "config.json")
    assert bert.BertConfig.from_json_file(tmp_path / "config.json") == c
    assert bert.BertConfig.from_dict(json.loads(c.to_json_string())) == c


def test_reads_seed_config_json(tmp_path):
    seed = pt.BertConfig(
        99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        type_vocab_size=3,
    )
    (tmp_path / "config.json").write_text(seed.to_json_string())
    c = bert.BertConfig.from_json_file(tmp_path)
    for name in (
        "vocab_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "type_vocab_size",
        "layer_norm_eps",
        "initializer_range",
    ):
        assert getattr(c, name) == getattr(seed, name), name
    assert bert.BertConfig.from_dict({"vocab_size_or_config_json_file": 77}).vocab_size == 77


def test_transformers_reads_what_we_write_and_back():
    c = bert.BertConfig(**SMALL, num_labels=3)
    hf = transformers.BertConfig.from_dict(c.to_dict())
    for name, value in SMALL.items():
        assert getattr(hf, name) == value, name
    assert hf.num_labels == 3 and hf.model_type == "bert"
    assert bert.BertConfig.from_dict(hf.to_dict()) == c


def test_unrelated_keys_are_kept_aside_and_written_back():
    d = {
        **SMALL,
        "architectures": ["BertForMaskedLM"],
        "gradient_checkpointing": False,
        "id2label": {"0": "NEG", "1": "POS"},
        "label2id": {"NEG": 0, "POS": 1},
    }
    c = bert.BertConfig.from_dict(d)
    assert c.extra["architectures"] == ["BertForMaskedLM"]
    assert c.num_labels == 2
    out = c.to_dict()
    assert out["architectures"] == ["BertForMaskedLM"] and out["id2label"] == {
        "0": "NEG",
        "1": "POS",
    }


def test_errors_on_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        bert.BertConfig.from_json_file(tmp_path / "config.json")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        bert.BertConfig.from_json_file(tmp_path / "config.json")
    with pytest.raises(TypeError, match="expects a mapping"):
        bert.BertConfig.from_dict([1, 2])
    with pytest.raises(TypeError, match="hidden_size expects int"):
        bert.BertConfig.from_dict({"hidden_size": "big"})


def test_overrides_win():
    c = bert.BertConfig.from_dict(SMALL, num_labels=7, output_attentions=True)
    assert c.num_labels == 7 and c.output_attentions
