"""XLNetConfig files (pytorch-transformers 1.0.0's and transformers 5.23's config.json, as
those libraries write and read them) and bad input to the XLNet models: each gets a
clear error naming what was expected."""

from __future__ import annotations

import json
import re

import pytest
import torch

import ptfunc
from ptfunc.archs import xlnet

CONFIG = xlnet.XLNetConfig(vocab_size=30, d_model=8, n_layer=2, n_head=2, d_inner=16, mem_len=3)
MODEL = xlnet.XLNetLMHeadModel(CONFIG)
PARAMS = MODEL.init(ptfunc.random.key(0))
IDS = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])


def _mems(n=2, length=3, batch=2, d=8):
    return tuple(torch.zeros(length, batch, d) for _ in range(n))


@pytest.mark.parametrize(
    "mems, pattern",
    [
        (_mems(n=1), r"one \(mem_len, batch, d_model\) tensor per layer \(2\), got 1 tensors"),
        (
            torch.zeros(2, 3, 2, 8),
            r"one \(mem_len, batch, d_model\) tensor per layer \(2\), got Tensor",
        ),
        (
            _mems(batch=3),
            r"mems\[0\] must have shape \(mem_len, batch, d_model\) = \(3, 2, 8\), got \(3, 3, 8\)",
        ),
        (_mems(d=6), r"mems\[0\] .* = \(3, 2, 8\), got \(3, 2, 6\)"),
        (
            (torch.zeros(3, 2, 8), torch.zeros(4, 2, 8)),
            r"mems\[1\] .* = \(3, 2, 8\), got \(4, 2, 8\)",
        ),
    ],
    ids=["layers", "stacked", "batch", "width", "lengths"],
)
def test_bad_mems(mems, pattern):
    with pytest.raises(ValueError, match=pattern):
        MODEL.apply(PARAMS, IDS, mems=mems)


def test_bad_permutation_inputs():
    with pytest.raises(
        ValueError,
        match=r"perm_mask must have shape \(batch, seq, seq\) = \(2, 4, 4\), got \(2, 4\)",
    ):
        MODEL.apply(PARAMS, IDS, perm_mask=torch.zeros(2, 4))
    perm = torch.zeros(2, 4, 4)
    with pytest.raises(
        ValueError,
        match=r"target_mapping must have shape \(batch, num_predict, seq\) = "
        r"\(2, num_predict, 4\), got \(2, 1, 3\)",
    ):
        MODEL.apply(PARAMS, IDS, perm_mask=perm, target_mapping=torch.zeros(2, 1, 3))
    with pytest.raises(ValueError, match=r"target_mapping needs a perm_mask.*sees its own target"):
        MODEL.apply(PARAMS, IDS, target_mapping=torch.zeros(2, 1, 4))
    # the explicit opt-in runs
    assert MODEL.apply(
        PARAMS, IDS, perm_mask=perm, target_mapping=torch.zeros(2, 1, 4)
    ).logits.shape == (2, 1, 30)


def test_bad_masks_and_segments():
    with pytest.raises(ValueError, match="either input_mask .* or attention_mask .*, not both"):
        MODEL.apply(PARAMS, IDS, input_mask=torch.zeros(2, 4), attention_mask=torch.ones(2, 4))
    with pytest.raises(
        ValueError, match=r"input_mask/attention_mask must have shape \(batch, seq\) = \(2, 4\)"
    ):
        MODEL.apply(PARAMS, IDS, attention_mask=torch.ones(4))
    with pytest.raises(
        ValueError, match=r"token_type_ids must have shape \(batch, seq\) = \(2, 4\), got \(2, 3\)"
    ):
        MODEL.apply(PARAMS, IDS, token_type_ids=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="token_type_ids must be an integer tensor"):
        MODEL.apply(PARAMS, IDS, token_type_ids=torch.zeros(2, 4))
    with pytest.raises(ValueError, match="head_mask must have shape"):
        MODEL.apply(PARAMS, IDS, head_mask=torch.ones(3, 2))


def test_bad_ids():
    with pytest.raises(ValueError, match=r"input_ids must lie in \[0, 30\).*\[1, 30\]"):
        MODEL.apply(PARAMS, torch.tensor([[1, 30]]))
    with pytest.raises(TypeError, match="input_ids must be an integer tensor"):
        MODEL.apply(PARAMS, IDS.float())
    with pytest.raises(ValueError, match=r"input_ids must have shape \(batch, seq\); got \(4,\)"):
        MODEL.apply(PARAMS, IDS[0])


@pytest.mark.parametrize("name", ["XLNetModel", "XLNetLMHeadModel", "XLNetForQuestionAnswering"])
def test_train_without_key(name):
    model = getattr(xlnet, name)(CONFIG)
    with pytest.raises(ValueError, match=r"train=True\) needs a random key"):
        model.apply(model.init(ptfunc.random.key(0)), IDS, train=True)


def test_bi_data_needs_an_even_batch_and_options_are_checked():
    model = xlnet.XLNetModel(CONFIG.replace(bi_data=True))
    with pytest.raises(ValueError, match="bi_data needs an even batch size .*got 1"):
        model.apply(model.init(ptfunc.random.key(0)), IDS[:1])
    with pytest.raises(TypeError, match=re.escape("unexpected options ['atention_mask']")):
        MODEL.apply(PARAMS, IDS, atention_mask=torch.ones(2, 4))


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        ({"d_model": 10, "n_head": 3}, r"multiple of n_head"),
        ({"attn_type": "causal"}, r"attn_type must be 'bi' or 'uni'"),
        ({"mem_len": -1}, r"mem_len must be None or >= 0"),
        ({"dropout": 1.0}, r"dropout must lie in \[0, 1\)"),
        ({"d_model": "16"}, r"XLNetConfig.d_model expects int"),
        ({"bi_data": 1}, r"bi_data expects bool"),
    ],
)
def test_config_values_are_checked(kwargs, pattern):
    with pytest.raises((TypeError, ValueError), match=pattern):
        xlnet.XLNetConfig(**kwargs)


def test_config_d_head_must_agree():
    d = {**CONFIG.to_dict(), "d_head": 5}
    with pytest.raises(ValueError, match=r"d_head \(5\) must equal d_model // n_head"):
        xlnet.XLNetConfig.from_dict(d)


# -- config files ------------------------------------------------------------------------------

pt = pytest.importorskip("pytorch_transformers")
transformers = pytest.importorskip("transformers")


def test_reads_seed_config_json(tmp_path):
    seed = pt.XLNetConfig(
        77,
        d_model=16,
        n_layer=3,
        n_head=4,
        d_inner=24,
        mem_len=8,
        reuse_len=4,
        bi_data=True,
        clamp_len=5,
        same_length=True,
        attn_type="uni",
        start_n_top=3,
    )
    (tmp_path / "config.json").write_text(seed.to_json_string())
    c = xlnet.XLNetConfig.from_json_file(tmp_path)
    assert c.vocab_size == 77 and c.d_head == 4  # 1.0 writes n_token and d_head
    for name in (
        "d_model",
        "n_layer",
        "n_head",
        "d_inner",
        "mem_len",
        "reuse_len",
        "bi_data",
        "clamp_len",
        "same_length",
        "attn_type",
        "start_n_top",
        "untie_r",
        "ff_activation",
    ):
        assert getattr(c, name) == getattr(seed, name), name
    assert xlnet.XLNetConfig.from_dict({"vocab_size_or_config_json_file": 12}).vocab_size == 12


def test_transformers_reads_what_we_write_and_back():
    c = xlnet.XLNetConfig(
        vocab_size=77,
        d_model=16,
        n_layer=3,
        n_head=4,
        d_inner=24,
        mem_len=8,
        num_labels=3,
        use_mems_train=True,
        summary_type="first",
    )
    theirs = transformers.XLNetConfig.from_dict(c.to_dict())
    for name in (
        "vocab_size",
        "d_model",
        "n_layer",
        "n_head",
        "d_inner",
        "d_head",
        "mem_len",
        "use_mems_train",
        "use_mems_eval",
        "summary_type",
        "num_labels",
    ):
        assert getattr(theirs, name) == getattr(c, name), name
    back = xlnet.XLNetConfig.from_dict(json.loads(theirs.to_json_string()))
    assert back == c
    assert back.extra["pad_token_id"] == 5  # today's keys that concern no model are kept aside
