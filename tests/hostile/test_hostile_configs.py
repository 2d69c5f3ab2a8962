"""Hostile or broken config.json files get a ConfigError (or a TypeError for wrong types)
that names the field, its value and what is allowed (issue 17, point 10).

References: the allowed ranges are ptfunc's contract (``ptfunc/archs/config.py``); the
configs that must keep loading are the defaults of pytorch-transformers 1.0 and of today's
``transformers`` (their own ``to_json_string()``), and the real config.json files of the
test checkpoints and shared fixtures. No numeric tolerance is involved.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ptfunc.archs import bert, gpt2, openai_gpt, transfo_xl, xlm, xlnet
from ptfunc.archs.config import MAX_DIM, MAX_PARAMS, ConfigTypeError
from ptfunc.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

# per architecture: the config class, a small valid config, and its field names for
# (heads, width, layers, vocabulary, an activation-like name field and a bad value for it)
ARCHS = {
    "bert": (
        bert.BertConfig,
        dict(
            vocab_size=30,
            hidden_size=8,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=16,
        ),
        ("num_attention_heads", "hidden_size", "num_hidden_layers", "vocab_size", "hidden_act"),
    ),
    "openai_gpt": (
        openai_gpt.OpenAIGPTConfig,
        dict(vocab_size=30, n_embd=8, n_layer=1, n_head=2),
        ("n_head", "n_embd", "n_layer", "vocab_size", "afn"),
    ),
    "gpt2": (
        gpt2.GPT2Config,
        dict(vocab_size=30, n_embd=8, n_layer=1, n_head=2),
        ("n_head", "n_embd", "n_layer", "vocab_size", "summary_activation"),
    ),
    "transfo_xl": (
        transfo_xl.TransfoXLConfig,
        dict(
            vocab_size=30,
            cutoffs=[10],
            d_model=8,
            d_embed=8,
            n_head=2,
            d_head=4,
            d_inner=16,
            div_val=1,
            n_layer=1,
        ),
        ("n_head", "d_model", "n_layer", "vocab_size", "init"),
    ),
    "xlnet": (
        xlnet.XLNetConfig,
        dict(vocab_size=30, d_model=8, n_layer=1, n_head=2, d_inner=16),
        ("n_head", "d_model", "n_layer", "vocab_size", "ff_activation"),
    ),
    "xlm": (
        xlm.XLMConfig,
        dict(vocab_size=30, emb_dim=8, n_layers=1, n_heads=2),
        ("n_heads", "emb_dim", "n_layers", "vocab_size", "summary_activation"),
    ),
}
NAMES = list(ARCHS)


def refused(arch: str, error: type = ConfigError, **changes) -> str:
    cls, small, _ = ARCHS[arch]
    with pytest.raises(error) as info:
        cls.from_dict({**small, **changes})
    return str(info.value)


@pytest.mark.parametrize("arch", NAMES)
def test_zero_heads_is_a_config_error_not_a_zero_division(arch):
    cls, _, (heads, *_) = ARCHS[arch]
    got = refused(arch, **{heads: 0})
    assert got == f"{cls.__name__}.{heads} must be >= 1 and <= {MAX_DIM}, got 0"


@pytest.mark.parametrize("arch", NAMES)
def test_width_not_divisible_by_the_heads(arch):
    cls, _, (heads, width, *_) = ARCHS[arch]
    if arch == "transfo_xl":  # n_head * d_head need not be d_model; d_model must be even
        got = refused(arch, d_model=9)
        assert got == "TransfoXLConfig.d_model (9) must be a multiple of 2"
        return
    got = refused(arch, **{width: 10, heads: 3})
    assert got == f"{cls.__name__}.{width} (10) must be a multiple of {heads} (3)"


@pytest.mark.parametrize("arch", NAMES)
@pytest.mark.parametrize("which", [2, 3])  # layers, vocabulary
def test_negative_sizes(arch, which):
    cls, _, fields = ARCHS[arch]
    got = refused(arch, **{fields[which]: -1})
    assert got == f"{cls.__name__}.{fields[which]} must be >= 1 and <= {MAX_DIM}, got -1"


@pytest.mark.parametrize("arch", NAMES)
def test_an_absurd_vocabulary_is_refused_unless_allowed(arch):
    cls, small, fields = ARCHS[arch]
    vocab = fields[3]
    got = refused(arch, **{vocab: 10**12})
    assert got == (
        f"{cls.__name__}.{vocab} must be >= 1 and <= {MAX_DIM} "
        "(allow_large=True lifts the upper bound), got 1000000000000"
    )
    # the caller may lift the cap (nothing is allocated by a config)
    config = cls.from_dict({**small, vocab: 10**12}, allow_large=True)
    assert config.vocab_size == 10**12 and config.allow_large
    # ... but a file cannot lift it for them
    with pytest.raises(ConfigError, match="allow_large=True lifts"):
        cls.from_dict({**small, vocab: 10**12, "allow_large": True})
    # and the override is a loading choice, not part of the model's config.json
    assert "allow_large" not in cls.from_dict(small, allow_large=True).to_dict()


@pytest.mark.parametrize("arch", NAMES)
def test_too_many_parameters_in_total_is_refused(arch):
    cls, small, (heads, width, layers, *_) = ARCHS[arch]
    big = {width: 2**15, layers: 2**12}
    if arch == "transfo_xl":
        big.update(d_embed=2**15, d_head=2**14)
    got = refused(arch, **big)
    assert re.match(rf"{cls.__name__} describes about [\d.e+]+ parameters, more than the ", got)
    assert f"{MAX_PARAMS} (2**34) allowed without allow_large=True" in got
    assert cls.from_dict({**small, **big}, allow_large=True).estimated_num_params() > MAX_PARAMS


@pytest.mark.parametrize("arch", NAMES)
def test_an_unknown_activation_or_name(arch):
    cls, _, fields = ARCHS[arch]
    got = refused(arch, **{fields[4]: "gelu2"})
    assert got.startswith(f"{cls.__name__}.{fields[4]} must be ")
    assert got.endswith(", got 'gelu2'")


@pytest.mark.parametrize("arch", NAMES)
@pytest.mark.parametrize("value", ["768", 768.0, True, None, [8]])
def test_wrong_types_name_the_field(arch, value):
    cls, _, (_, width, *_) = ARCHS[arch]
    got = refused(arch, TypeError, **{width: value})
    assert got.startswith(f"{cls.__name__}.{width} expects int, got {value!r}")
    with pytest.raises(ConfigTypeError):  # a ConfigError too
        cls.from_dict({**ARCHS[arch][1], width: value})


@pytest.mark.parametrize("arch", NAMES)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -0.1, 1.0, 10**400])
def test_dropout_and_eps_must_be_finite_and_in_range(arch, value):
    cls, small, _ = ARCHS[arch]
    name = next(n for n in ("hidden_dropout_prob", "resid_pdrop", "dropout") if hasattr(cls(), n))
    got = refused(arch, **{name: value})
    assert got == f"{cls.__name__}.{name} must lie in [0, 1), got {value!r}"


@pytest.mark.parametrize("arch", NAMES)
@pytest.mark.parametrize("text", ["[1, 2]", '"a string"', "null", "3"])
def test_a_json_file_that_is_not_an_object(arch, text, tmp_path):
    cls = ARCHS[arch][0]
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(ConfigError, match=r"config.json must hold a JSON object; got "):
        cls.from_json_file(tmp_path / "config.json")
    with pytest.raises(ConfigError, match="from_dict expects a mapping") as info:
        cls.from_dict(json.loads(text))
    assert isinstance(info.value, TypeError)


def test_broken_json_and_other_shapes_of_trouble(tmp_path):
    (tmp_path / "config.json").write_text("{" * 100_000)
    with pytest.raises(ConfigError, match="not valid JSON"):
        bert.BertConfig.from_json_file(tmp_path)
    with pytest.raises(ConfigError, match="model_type 'bert', the file says 'gpt2'"):
        bert.BertConfig.from_dict({"model_type": "gpt2"})
    with pytest.raises(ConfigError, match=r"pad_token_id must lie in \[0, vocab_size\)"):
        bert.BertConfig.from_dict({"vocab_size": 30, "pad_token_id": 30})
    with pytest.raises(ConfigError, match=r"pruned_heads must map layers in \[0, 12\)"):
        bert.BertConfig.from_dict({"pruned_heads": {"0": [12]}})
    with pytest.raises(ConfigTypeError, match="pruned_heads expects"):
        bert.BertConfig.from_dict({"pruned_heads": {"first": [1]}})
    with pytest.raises(ConfigError, match="d_head"):
        xlnet.XLNetConfig.from_dict({"d_head": 7})
    with pytest.raises(ConfigError, match=r"cutoffs\[0\] must be >= 1"):
        transfo_xl.TransfoXLConfig.from_dict({"cutoffs": [0, 10]})
    with pytest.raises(ConfigError, match="cutoffs must increase strictly"):
        transfo_xl.TransfoXLConfig.from_dict({"cutoffs": [20, 10]})
    with pytest.raises(ConfigError, match="mem_len must be None or >= 0"):
        xlnet.XLNetConfig.from_dict({"mem_len": -5})
    with pytest.raises(ConfigError, match="attn_type must be 'bi' or 'uni', got 'causal'"):
        xlnet.XLNetConfig.from_dict({"attn_type": "causal"})
    with pytest.raises(ConfigTypeError, match="lang2id"):
        xlm.XLMConfig.from_dict({"id2lang": {"en": "fr"}})


# -- what must keep loading --------------------------------------------------------------------
def _reference_configs():
    import pytorch_transformers
    import transformers

    for arch, (cls, _, _) in ARCHS.items():
        for lib in (pytorch_transformers, transformers):
            ref = getattr(lib, cls.__name__, None)
            if ref is not None:
                yield pytest.param(
                    cls, json.loads(ref().to_json_string()), id=f"{arch}-{lib.__name__}"
                )


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("cls, d", list(_reference_configs()))
def test_the_defaults_of_1_0_and_of_transformers_still_load(cls, d):
    config = cls.from_dict(d)
    assert cls.from_dict(config.to_dict()) == config


def test_real_config_files_still_load():
    files = {
        "tests/data/checkpoints/bert/bert_config.json": bert.BertConfig,
        "tests/data/checkpoints/xlnet/xlnet_config.json": xlnet.XLNetConfig,
        "tests/data/checkpoints/xlnet_squad/xlnet_config.json": xlnet.XLNetConfig,
        "tests/data/checkpoints/transfo_xl/config.json": transfo_xl.TransfoXLConfig,
        "tests/data/checkpoints/transfo_xl_div1/config.json": transfo_xl.TransfoXLConfig,
        "tests/data/checkpoints/transfo_xl_nocutoff/config.json": transfo_xl.TransfoXLConfig,
        "../shared/fixtures/tiny-gpt2/config.json": gpt2.GPT2Config,
        "../shared/fixtures/xlnet-base-cased/config.json": xlnet.XLNetConfig,
    }
    loaded = 0
    for name, cls in files.items():
        path = REPO / name
        if path.is_file():
            cls.from_json_file(path)
            loaded += 1
    assert loaded >= 6


def test_the_largest_real_models_fit_the_caps():
    # gpt2-xl (1.5B), xlm-mlm-17-1280 (570M), transfo-xl-wt103 (285M): no override needed
    assert gpt2.GPT2Config(n_embd=1600, n_layer=48, n_head=25).estimated_num_params() < 2**31
    xlm.XLMConfig(vocab_size=200000, emb_dim=1280, n_layers=16, n_heads=16, n_langs=17)
    transfo_xl.TransfoXLConfig()


# -- fuzz --------------------------------------------------------------------------------------
_VALUES = st.one_of(
    st.sampled_from([0, -1, 3, 10**12, 2**24 + 1]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=-3, max_value=40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.text(max_size=8),
    st.sampled_from(["gelu", "relu", "tanh", "bi", "uni", "normal", "last", "cls_index"]),
    st.lists(st.integers(min_value=-5, max_value=50), max_size=4),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _fields(cls) -> list[str]:
    import dataclasses

    names = [f.name for f in dataclasses.fields(cls) if f.name != "extra"]
    return names + list(cls.aliases) + ["vocab_size_or_config_json_file", "model_type", "d_head"]


@pytest.mark.parametrize("arch", NAMES)
def test_fuzzed_config_dicts_give_a_config_or_a_config_error(arch):
    cls, small, fields = ARCHS[arch]
    keys = st.one_of(st.sampled_from(fields[:4]), st.sampled_from(_fields(cls)))

    @settings(
        max_examples=60,
        deadline=2000,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.dictionaries(keys, _VALUES, max_size=6), st.booleans())
    def check(d, start_small):
        try:
            config = cls.from_dict({**small, **d} if start_small else d)
        except (ConfigError, TypeError):
            return
        # a config that loads can be built without allocating more than the caps allow
        assert all(getattr(config, name) <= MAX_DIM for name in fields[:4])
        assert config.estimated_num_params() <= MAX_PARAMS
        assert cls.from_dict(config.to_dict()) == config
        for value in vars(config).values():
            if isinstance(value, float):
                assert math.isfinite(value) or value is None

    check()
