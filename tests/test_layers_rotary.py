"""ptfunc.layers.rotary against transformers 5, the independent oracle.

References: ``transformers.modeling_rope_utils.ROPE_INIT_FUNCTIONS`` and the models'
``compute_default_rope_parameters`` (inv_freq, attention scaling), ``LlamaRotaryEmbedding``
and ``GPTNeoXRotaryEmbedding`` (cos/sin; a fresh module per call), and the Llama and
GPT-NeoX ``apply_rotary_pos_emb`` (rotated q/k). Tolerance: float32 max-abs <= 1e-6
(``TOL``); in practice the eager results are bit-identical. bfloat16 tables are compared
exactly, since they are casts of the same float32 values.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jvp, vmap

from ptfunc.layers import rotary

pytest.importorskip("transformers")
from transformers import GPTNeoXConfig, LlamaConfig, Phi3Config  # noqa: E402
from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS  # noqa: E402
from transformers.models.gpt_neox import modeling_gpt_neox  # noqa: E402
from transformers.models.llama import modeling_llama  # noqa: E402
from transformers.models.phi3 import modeling_phi3  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

hf_logging.set_verbosity_error()

TOL = 1e-6
HEAD_DIM = 16
SHORT = [1.0 + 0.1 * i for i in range(8)]
LONG = [2.0 + 0.5 * i for i in range(8)]

# name -> (rope_parameters as in a transformers 5 config.json, max_position_embeddings)
CASES = {
    "default": ({"rope_type": "default", "rope_theta": 10000.0}, 32),
    "default_theta_500k": ({"rope_type": "default", "rope_theta": 500000.0}, 32),
    "linear": ({"rope_type": "linear", "factor": 4.0, "rope_theta": 10000.0}, 32),
    "dynamic": ({"rope_type": "dynamic", "factor": 2.0, "rope_theta": 10000.0}, 32),
    # Llama 3.1's factors, with the 8192-token original context scaled down to 64 so that
    # head_dim 16 has frequencies in all three bands (kept, blended, divided).
    "llama3": (
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
            "rope_theta": 10000.0,
        },
        256,
    ),
    "yarn": ({"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 4096}, 16384),
    "yarn_mscale": (  # DeepSeek style: attention factor from mscale / mscale_all_dim
        {
            "rope_type": "yarn",
            "factor": 40.0,
            "original_max_position_embeddings": 4096,
            "mscale": 1.0,
            "mscale_all_dim": 0.8,
            "beta_fast": 32,
            "beta_slow": 1,
        },
        163840,
    ),
    "yarn_attention_factor_betas": (
        {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 4096,
            "attention_factor": 0.9,
            "beta_fast": 16.0,
            "beta_slow": 2.0,
        },
        16384,
    ),
    "yarn_no_truncate": (
        {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 4096,
            "truncate": False,
        },
        16384,
    ),
    "yarn_factor_none": (  # factor derived as max_position_embeddings / original
        {"rope_type": "yarn", "factor": None, "original_max_position_embeddings": 2048},
        16384,
    ),
    "longrope": (
        {
            "rope_type": "longrope",
            "short_factor": SHORT,
            "long_factor": LONG,
            "original_max_position_embeddings": 32,
        },
        128,
    ),
    "longrope_factor_attention": (
        {
            "rope_type": "longrope",
            "short_factor": SHORT,
            "long_factor": LONG,
            "original_max_position_embeddings": 32,
            "factor": 3.0,
            "attention_factor": 1.25,
        },
        128,
    ),
    "linear_partial_0.25": (
        {"rope_type": "linear", "factor": 2.0, "partial_rotary_factor": 0.25},
        32,
    ),
    "dynamic_partial_0.5": (
        {"rope_type": "dynamic", "factor": 3.0, "partial_rotary_factor": 0.5},
        32,
    ),
    "llama3_partial_0.5": (
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
            "partial_rotary_factor": 0.5,
        },
        256,
    ),
    "yarn_partial_0.5": (
        {
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 4096,
            "partial_rotary_factor": 0.5,
        },
        16384,
    ),
    "longrope_partial_0.5": (
        {
            "rope_type": "longrope",
            "short_factor": SHORT[:4],
            "long_factor": LONG[:4],
            "original_max_position_embeddings": 32,
            "partial_rotary_factor": 0.5,
        },
        128,
    ),
    "default_partial_0.25": ({"rope_type": "default", "partial_rotary_factor": 0.25}, 32),
    "default_partial_0.5": ({"rope_type": "default", "partial_rotary_factor": 0.5}, 32),
}


def llama_config(rope_parameters: dict, max_position_embeddings: int, **kwargs) -> LlamaConfig:
    """A tiny LlamaConfig (head_dim 16); the dict is copied (transformers edits it in place)."""
    return LlamaConfig(
        hidden_size=4 * HEAD_DIM,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_hidden_layers=1,
        intermediate_size=8,
        vocab_size=16,
        max_position_embeddings=max_position_embeddings,
        rope_parameters=None if rope_parameters is None else dict(rope_parameters),
        **kwargs,
    )


def ours_from(config) -> rotary.Rope:
    """Our Rope read from a transformers config's (standardised) rope_parameters."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return rotary.from_config(
        config.rope_parameters,
        head_dim=head_dim,
        max_position_embeddings=config.max_position_embeddings,
    )


def reference_frequencies(config, **kwargs) -> tuple[torch.Tensor, float]:
    rope_type = config.rope_parameters["rope_type"]
    if rope_type == "default":
        # Llama's default ignores partial_rotary_factor; GPT-NeoX's honours it (and equals
        # Llama's when the factor is 1).
        return modeling_gpt_neox.GPTNeoXRotaryEmbedding.compute_default_rope_parameters(config)
    return ROPE_INIT_FUNCTIONS[rope_type](config, None, **kwargs)


def reference_module(config):
    """A fresh transformers rotary module: GPT-NeoX's for a partial default rope (Llama's
    default ignores partial_rotary_factor), Llama's otherwise."""
    partial = config.rope_parameters.get("partial_rotary_factor", 1.0) != 1.0
    if config.rope_parameters["rope_type"] == "default" and partial:
        return modeling_gpt_neox.GPTNeoXRotaryEmbedding(config)
    return modeling_llama.LlamaRotaryEmbedding(config)


def assert_max_abs(ours: torch.Tensor, theirs: torch.Tensor, tol: float = TOL) -> None:
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    err = (ours.double() - theirs.double()).abs().max().item() if ours.numel() else 0.0
    assert err <= tol, f"max-abs error {err} > {tol}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_frequencies_match_rope_init_functions(name):
    rope_parameters, max_pos = CASES[name]
    config = llama_config(rope_parameters, max_pos)
    rope = ours_from(config)
    partial = rope_parameters.get("partial_rotary_factor", 1.0)
    assert rope.rotary_dim == int(HEAD_DIM * partial)
    inv_freq, scaling = rotary.frequencies(rope)
    ref_inv_freq, ref_scaling = reference_frequencies(config)
    assert inv_freq.shape == (rope.rotary_dim // 2,)
    assert_max_abs(inv_freq, ref_inv_freq)
    assert scaling == pytest.approx(ref_scaling, rel=1e-15)


def test_llama3_case_exercises_all_three_bands():
    rope = ours_from(llama_config(*CASES["llama3"]))
    wavelength = 2 * torch.pi / rotary.frequencies(rotary.Rope(16, 16, rope.theta))[0]
    context = rope.original_max_position_embeddings
    kept = wavelength < context / rope.high_freq_factor
    divided = wavelength > context / rope.low_freq_factor
    assert kept.any() and divided.any() and (~kept & ~divided).any()


@pytest.mark.parametrize("name", ["dynamic", "dynamic_partial_0.5"])
@pytest.mark.parametrize("seq_len", [1, 20, 32, 33, 64, 1000])
def test_dynamic_frequencies_follow_seq_len(name, seq_len):
    config = llama_config(*CASES[name])
    rope = ours_from(config)
    ours, _ = rotary.frequencies(rope, seq_len=torch.tensor(seq_len))
    theirs, _ = reference_frequencies(config, seq_len=torch.tensor(seq_len))
    assert_max_abs(ours, theirs)
    default, _ = rotary.frequencies(rope)
    assert torch.equal(ours, default) == (seq_len <= rope.max_position_embeddings)
    assert_max_abs(rotary.frequencies(rope, seq_len=seq_len)[0], ours)  # a Python int works too


@pytest.mark.parametrize("seq_len", [1, 32, 33, 100])
def test_longrope_frequencies_switch_past_original_length(seq_len):
    config = llama_config(*CASES["longrope"])
    rope = ours_from(config)
    ours, scale = rotary.frequencies(rope, seq_len=torch.tensor(seq_len))
    theirs, ref_scale = reference_frequencies(config, seq_len=seq_len)
    assert_max_abs(ours, theirs)
    assert scale == pytest.approx(ref_scale, rel=1e-15)


def positions(kind: str, seq: int = 10) -> torch.Tensor:
    """(batch, seq) position_ids: batch 1; left-padded rows; rows past 32 (the dynamic and
    longrope thresholds of the tiny configs); rows far past them."""
    base = torch.arange(seq)
    if kind == "batch1":
        return base[None]
    if kind == "left_padded":
        padded = (base - 4).clamp(min=0)
        return torch.stack([base, padded, (base - 7).clamp(min=0)])
    if kind == "past_threshold":
        return torch.stack([base + 30, base])
    return torch.stack([base + 300, base + 5])


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("kind", ["batch1", "left_padded", "past_threshold", "far"])
def test_cos_sin_match_rotary_embedding_module(name, kind):
    rope_parameters, max_pos = CASES[name]
    rope = ours_from(llama_config(rope_parameters, max_pos))
    position_ids = positions(kind)
    for dtype in (torch.float32, torch.bfloat16):
        module = reference_module(llama_config(rope_parameters, max_pos))  # fresh per call
        ref_cos, ref_sin = module(torch.zeros(1, dtype=dtype), position_ids)
        cos, sin = rotary.cos_sin(rope, position_ids, dtype)
        assert cos.shape == (*position_ids.shape, rope.rotary_dim)
        tol = TOL if dtype == torch.float32 else 0.0
        assert_max_abs(cos, ref_cos, tol)
        assert_max_abs(sin, ref_sin, tol)


@pytest.mark.parametrize("name", ["default", "llama3", "yarn_mscale", "dynamic"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_apply_matches_llama_apply_rotary_pos_emb(name, dtype):
    rope = ours_from(llama_config(*CASES[name]))
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(2, 4, 10, HEAD_DIM, generator=gen).to(dtype)
    k = torch.randn(2, 2, 10, HEAD_DIM, generator=gen).to(dtype)  # grouped-query keys
    for position_ids in (positions("batch1"), positions("left_padded")[:2]):
        cos, sin = rotary.cos_sin(rope, position_ids, dtype)  # batch 1 broadcasts
        ref_q, ref_k = modeling_llama.apply_rotary_pos_emb(q, k, cos, sin)
        tol = TOL if dtype == torch.float32 else 0.0
        assert_max_abs(rotary.apply(q, cos, sin), ref_q, tol)
        assert_max_abs(rotary.apply(k, cos, sin), ref_k, tol)


@pytest.mark.parametrize("rotary_pct", [0.25, 0.5, 1.0])
@pytest.mark.parametrize("rope_scaling", [None, {"type": "linear", "factor": 2.0}])
def test_partial_rotary_matches_gpt_neox(rotary_pct, rope_scaling):
    config = GPTNeoXConfig(
        hidden_size=4 * HEAD_DIM,
        num_attention_heads=4,
        num_hidden_layers=1,
        intermediate_size=8,
        vocab_size=16,
        max_position_embeddings=64,
        rotary_pct=rotary_pct,
        rotary_emb_base=500.0,
        rope_scaling=None if rope_scaling is None else dict(rope_scaling),
    )
    # transformers 5 moves rotary_pct / rotary_emb_base into rope_parameters.
    assert config.rope_parameters["partial_rotary_factor"] == rotary_pct
    rope = ours_from(config)
    # An old GPT-NeoX config.json keeps them at the top level instead.
    assert rope == rotary.from_config(
        rope_scaling,
        head_dim=HEAD_DIM,
        max_position_embeddings=64,
        rope_theta=500.0,
        partial_rotary_factor=rotary_pct,
    )
    assert rope.rotary_dim == int(HEAD_DIM * rotary_pct)
    position_ids = positions("left_padded")
    ref_cos, ref_sin = modeling_gpt_neox.GPTNeoXRotaryEmbedding(config)(
        torch.zeros(1), position_ids
    )
    cos, sin = rotary.cos_sin(rope, position_ids, torch.float32)
    assert_max_abs(cos, ref_cos)
    assert_max_abs(sin, ref_sin)
    gen = torch.Generator().manual_seed(1)
    q = torch.randn(3, 4, 10, HEAD_DIM, generator=gen)
    k = torch.randn(3, 4, 10, HEAD_DIM, generator=gen)
    ref_q, ref_k = modeling_gpt_neox.apply_rotary_pos_emb(q, k, cos, sin)
    out_q = rotary.apply(q, cos, sin)
    assert_max_abs(out_q, ref_q)
    assert_max_abs(rotary.apply(k, cos, sin), ref_k)
    assert torch.equal(out_q[..., rope.rotary_dim :], q[..., rope.rotary_dim :])


def test_phi3_su_with_top_level_original_length():
    """Phi-3: rope_scaling type "su" (now "longrope"), original length outside the dict."""
    rope_scaling = {"type": "su", "short_factor": SHORT, "long_factor": LONG}
    config = Phi3Config(
        hidden_size=4 * HEAD_DIM,
        num_attention_heads=4,
        num_hidden_layers=1,
        intermediate_size=8,
        vocab_size=16,
        max_position_embeddings=128,
        original_max_position_embeddings=32,
        rope_scaling=dict(rope_scaling),
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    rope = rotary.from_config(
        rope_scaling,
        head_dim=HEAD_DIM,
        max_position_embeddings=128,
        original_max_position_embeddings=32,
    )
    assert (rope.rope_type, rope.original_max_position_embeddings) == ("longrope", 32)
    assert rope.factor == 4.0  # max_position_embeddings / original, as transformers derives it
    for position_ids in (positions("batch1"), positions("past_threshold")):
        ref_cos, ref_sin = modeling_phi3.Phi3RotaryEmbedding(config)(torch.zeros(1), position_ids)
        cos, sin = rotary.cos_sin(rope, position_ids, torch.float32)
        assert_max_abs(cos, ref_cos)
        assert_max_abs(sin, ref_sin)


OLD_SPELLINGS = [
    ({"type": "linear", "factor": 2.0}, 500.0, 32),
    ({"type": "dynamic", "factor": 2.0}, 10000.0, 32),
    ({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32}, 1e6, 128),
    (
        {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64,
        },
        500000.0,
        256,
    ),
]


@pytest.mark.parametrize("rope_scaling,theta,max_pos", OLD_SPELLINGS)
def test_from_config_reads_rope_scaling_like_transformers(rope_scaling, theta, max_pos):
    # transformers 5 folds rope_scaling + rope_theta into rope_parameters.
    config = llama_config(None, max_pos, rope_scaling=dict(rope_scaling), rope_theta=theta)
    assert config.rope_parameters["rope_theta"] == theta
    old = rotary.from_config(
        rope_scaling, head_dim=HEAD_DIM, max_position_embeddings=max_pos, rope_theta=theta
    )
    assert old == ours_from(config)
    assert old.rope_type == config.rope_parameters["rope_type"]
    assert_max_abs(rotary.frequencies(old)[0], reference_frequencies(config)[0])


def test_from_config_values_inside_the_dict_win():
    rope = rotary.from_config(
        {"rope_type": "default", "rope_theta": 500.0, "partial_rotary_factor": 0.5},
        head_dim=16,
        max_position_embeddings=32,
        rope_theta=10000.0,
        partial_rotary_factor=1.0,
    )
    assert (rope.theta, rope.rotary_dim) == (500.0, 8)


@pytest.mark.parametrize("empty", [None, {}])
def test_from_config_no_rope_dict_is_default(empty):
    rope = rotary.from_config(
        empty, head_dim=8, max_position_embeddings=64, rope_theta=1e4, partial_rotary_factor=0.5
    )
    assert rope == rotary.Rope(8, 4, 1e4, "default", 64)
    hash(rope)


def test_yarn_defaults_and_softmax_scale():
    rope = rotary.from_config(
        {"rope_type": "yarn", "factor": 40.0, "beta_fast": None, "beta_slow": 0, "truncate": None},
        head_dim=16,
        max_position_embeddings=4096,
    )
    # A missing original length falls back to max_position_embeddings; None / 0 betas to
    # 32 / 1; an explicit truncate None means no truncation (transformers reads it so).
    assert rope.original_max_position_embeddings == 4096
    assert (rope.beta_fast, rope.beta_slow, rope.truncate) == (32.0, 1.0, False)
    from transformers.modeling_rope_utils import yarn_apply_mscale

    params = dict(CASES["yarn_mscale"][0])
    deepseek = rotary.from_config(params, head_dim=16, max_position_embeddings=163840)
    assert rotary.softmax_scale(deepseek, 0.125) == yarn_apply_mscale(params, 0.125)
    assert rotary.softmax_scale(rope, 0.125) == 0.125


LLAMA3 = dict(CASES["llama3"][0])
ERRORS = [
    ({"rope_type": "ntk"}, {}, r"'ntk' is not supported; expected one of default"),
    ({"type": "linear"}, {}, r"missing 'factor', required for rope_type 'linear'"),
    ({"rope_type": "dynamic"}, {}, r"missing 'factor', required for rope_type 'dynamic'"),
    ({"rope_type": "yarn"}, {}, r"missing 'factor', required for rope_type 'yarn'"),
    *[
        ({k: v for k, v in LLAMA3.items() if k != key}, {}, rf"missing '{key}'.*'llama3'")
        for key in ("factor", "low_freq_factor", "high_freq_factor")
    ],
    (
        {k: v for k, v in LLAMA3.items() if k != "original_max_position_embeddings"},
        {},
        r"missing 'original_max_position_embeddings'.*'llama3'",
    ),
    ({"type": "linear", "factor": 0}, {}, r"\['factor'\] must be a positive number.*got 0"),
    ({"type": "dynamic", "factor": -2.0}, {}, r"\['factor'\] must be a positive.*got -2.0"),
    ({"type": "linear", "factor": "2"}, {}, r"\['factor'\] must be a positive.*got '2'"),
    ({"type": "linear", "factor": None}, {}, r"\['factor'\] must be a positive.*got None"),
    (
        {"rope_type": "default", "partial_rotary_factor": 0.3},
        {"head_dim": 10},
        r"'partial_rotary_factor'\] = 0.3 with head_dim=10 gives rotary_dim=3; expected a "
        r"positive even",
    ),
    (None, {"head_dim": 9}, r"head_dim=9 gives rotary_dim=9; expected a positive even"),
    (
        None,
        {"partial_rotary_factor": 1.5},
        r"'partial_rotary_factor'\] must be in \(0, 1\], got 1.5",
    ),
    (None, {"rope_theta": -1.0}, r"\['rope_theta'\] must be a positive number.*got -1.0"),
    (
        {**LLAMA3, "high_freq_factor": 1.0},
        {},
        r"'high_freq_factor'\] must be greater than low_freq_factor=1.0.*got 1.0",
    ),
    (
        {**LLAMA3, "original_max_position_embeddings": None},
        {},
        r"'original_max_position_embeddings'\] must be a positive integer.*got None",
    ),
    (
        {**LLAMA3, "original_max_position_embeddings": 0},
        {},
        r"'original_max_position_embeddings'\] must be a positive integer.*got 0",
    ),
    (
        {"rope_type": "longrope", "short_factor": [1.0] * 3, "long_factor": [1.0] * 8},
        {},
        r"'short_factor'\] must hold rotary_dim // 2 = 8 numbers.*got 3",
    ),
    (
        {"rope_type": "longrope", "long_factor": [1.0] * 8},
        {},
        r"missing 'short_factor', required for rope_type 'longrope'",
    ),
    (
        {"rope_type": "dynamic", "factor": 2.0},
        {"head_dim": 2},
        r"'dynamic' needs rotary_dim > 2",
    ),
]


@pytest.mark.parametrize("params,kwargs,match", ERRORS)
def test_from_config_errors(params, kwargs, match):
    kwargs = {"head_dim": 16, "max_position_embeddings": 256, **kwargs}
    with pytest.raises(ValueError, match=match):
        rotary.from_config(params, **kwargs)


def test_apply_rejects_mismatched_tables():
    cos = torch.ones(1, 4, 6)
    with pytest.raises(ValueError, match=r"even last dimension <= head_dim=4"):
        rotary.apply(torch.ones(1, 2, 4, 4), cos, cos)


TRANSFORM_CASES = ["default", "dynamic", "yarn_partial_0.5", "longrope"]


@pytest.mark.parametrize("name", TRANSFORM_CASES)
def test_vmap_over_stacked_position_ids_and_x(name):
    rope = ours_from(llama_config(*CASES[name]))
    # Stacked (batch 2) position_ids whose maxima fall on both sides of the thresholds.
    stack = torch.stack([positions("left_padded")[:2], positions("past_threshold")])
    stack = torch.cat([stack, stack + 100])
    cos, sin = vmap(lambda p: rotary.cos_sin(rope, p, torch.float32))(stack)
    for i, p in enumerate(stack):  # vmap is per example: dynamic reads each slice's max
        ref_cos, ref_sin = rotary.cos_sin(rope, p, torch.float32)
        assert_max_abs(cos[i], ref_cos)
        assert_max_abs(sin[i], ref_sin)
    x = torch.randn(4, 2, 3, 10, HEAD_DIM)
    out = vmap(rotary.apply)(x, cos, sin)
    for i in range(4):
        assert_max_abs(out[i], rotary.apply(x[i], cos[i], sin[i]))
    shared = vmap(rotary.apply, in_dims=(0, None, None))(x, cos[0], sin[0])
    assert_max_abs(shared[1], rotary.apply(x[1], cos[0], sin[0]))


@pytest.mark.parametrize("name", ["default", "linear_partial_0.25", "dynamic"])
def test_jvp_and_grad_through_apply(name):
    rope = ours_from(llama_config(*CASES[name]))
    cos, sin = rotary.cos_sin(rope, positions("past_threshold"), torch.float32)
    x, t = torch.randn(2, 3, 10, HEAD_DIM), torch.randn(2, 3, 10, HEAD_DIM)
    out, tangent = jvp(lambda v: rotary.apply(v, cos, sin), (x,), (t,))
    assert_max_abs(out, rotary.apply(x, cos, sin))
    assert_max_abs(tangent, rotary.apply(t, cos, sin))  # apply is linear in x
    # A rotation keeps norms, so the gradient of half the squared norm is x itself.
    g = grad(lambda v: 0.5 * rotary.apply(v, cos, sin).square().sum())(x)
    torch.testing.assert_close(g, x, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", ["dynamic", "yarn_mscale", "longrope"])
def test_compile_fullgraph_no_recompile_when_positions_change(name):
    from torch._dynamo.testing import CompileCounter

    rope = ours_from(llama_config(*CASES[name]))
    x = torch.randn(2, 4, 10, HEAD_DIM)

    def rotate(x, position_ids):
        cos, sin = rotary.cos_sin(rope, position_ids, x.dtype)
        return rotary.apply(x, cos, sin)

    torch._dynamo.reset()
    counter = CompileCounter()
    compiled = torch.compile(rotate, backend=counter, fullgraph=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        # Same shapes, values below and above the dynamic / longrope thresholds.
        for kind in ("left_padded", "past_threshold", "far", "left_padded"):
            position_ids = positions(kind)[:2]
            assert_max_abs(compiled(x, position_ids), rotate(x, position_ids))
    assert counter.frame_count == 1


def test_compile_inductor_dynamic_rope():
    """The default backend (inductor) too: one graph, eager's values to float32 rounding."""
    rope = ours_from(llama_config(*CASES["dynamic"]))
    x = torch.randn(2, 4, 10, HEAD_DIM)

    def rotate(x, position_ids):
        cos, sin = rotary.cos_sin(rope, position_ids, x.dtype)
        return rotary.apply(x, cos, sin)

    torch._dynamo.reset()
    compiled = torch.compile(rotate, fullgraph=True)
    with torch._dynamo.config.patch(error_on_recompile=True):
        for kind in ("left_padded", "far"):
            position_ids = positions(kind)[:2]
            torch.testing.assert_close(
                compiled(x, position_ids), rotate(x, position_ids), atol=1e-4, rtol=1e-4
            )
