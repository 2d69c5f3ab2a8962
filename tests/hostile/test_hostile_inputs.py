"""Hostile model inputs get one clear ValueError at the ``apply`` boundary, with the same
words in all six architectures (issue 17, point 12; ``ptfunc.archs.inputs``).

Reference: the messages are ptfunc's own contract (``ptfunc/archs/inputs.py``); no numeric
tolerance is involved except where ``validate=False`` and ``torch.compile`` outputs are
compared with eager ones (``torch.testing.assert_close`` defaults, float32).
"""

from __future__ import annotations

import re

import pytest
import torch

import ptfunc
from ptfunc.archs import bert, gpt2, openai_gpt, transfo_xl, xlm, xlnet

V, POSITIONS = 30, 10
CONFIGS = {
    "bert": bert.BertConfig(
        vocab_size=V,
        hidden_size=8,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=16,
        max_position_embeddings=POSITIONS,
    ),
    "openai_gpt": openai_gpt.OpenAIGPTConfig(
        vocab_size=V, n_positions=POSITIONS, n_ctx=POSITIONS, n_embd=8, n_layer=1, n_head=2
    ),
    "gpt2": gpt2.GPT2Config(
        vocab_size=V, n_positions=POSITIONS, n_ctx=POSITIONS, n_embd=8, n_layer=1, n_head=2
    ),
    "transfo_xl": transfo_xl.TransfoXLConfig(
        vocab_size=V,
        cutoffs=[10],
        d_model=8,
        d_embed=8,
        n_head=2,
        d_head=4,
        d_inner=16,
        div_val=1,
        n_layer=1,
        mem_len=3,
    ),
    "xlnet": xlnet.XLNetConfig(vocab_size=V, d_model=8, n_layer=1, n_head=2, d_inner=16),
    "xlm": xlm.XLMConfig(
        vocab_size=V, emb_dim=8, n_layers=1, n_heads=2, n_langs=1, max_position_embeddings=10
    ),
}
BASE = {
    "bert": bert.BertModel,
    "openai_gpt": openai_gpt.OpenAIGPTModel,
    "gpt2": gpt2.GPT2Model,
    "transfo_xl": transfo_xl.TransfoXLModel,
    "xlnet": xlnet.XLNetModel,
    "xlm": xlm.XLMModel,
}
HEADS = {
    "bert": bert.BertForMaskedLM,
    "openai_gpt": openai_gpt.OpenAIGPTLMHeadModel,
    "gpt2": gpt2.GPT2LMHeadModel,
    "transfo_xl": transfo_xl.TransfoXLLMHeadModel,
    "xlnet": xlnet.XLNetLMHeadModel,
    "xlm": xlm.XLMWithLMHeadModel,
}
ARCHS = list(CONFIGS)
WITH_MASK = [a for a in ARCHS if a != "transfo_xl"]  # Transformer-XL takes no attention mask
LEARNED_POSITIONS = ["bert", "openai_gpt", "gpt2", "xlm"]  # the others' are relative
# where token types index a table, and its size (XLNet's only say "same segment or not")
TOKEN_TYPES = {"bert": 2, "openai_gpt": V, "gpt2": V, "xlm": V}
IDS = torch.tensor([[1, 2, 3, 4], [5, 6, 7, 8]])

_CACHE: dict = {}


def built(arch: str, head: bool = False):
    """(model, params) of a tiny model of ``arch``, built once per test session."""
    name = (arch, head)
    if name not in _CACHE:
        model = (HEADS if head else BASE)[arch](CONFIGS[arch])
        _CACHE[name] = model, model.init(ptfunc.random.key(0))
    return _CACHE[name]


def message(arch: str, ids, head: bool = False, **options) -> str:
    model, params = built(arch, head)
    with pytest.raises(ValueError) as info:
        model.apply(params, ids, **options)
    return str(info.value)


def first_output(out):
    return out[0]


# -- input_ids ---------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
def test_an_empty_sequence_is_refused(arch):
    got = message(arch, torch.zeros(2, 0, dtype=torch.long))
    assert got == "input_ids must hold at least one token per sequence; got shape (2, 0)"


@pytest.mark.parametrize("dtype", [torch.float32, torch.uint8, torch.bool, torch.int16])
@pytest.mark.parametrize("arch", ARCHS)
def test_ids_of_another_dtype_are_refused(arch, dtype):
    got = message(arch, IDS.to(dtype))
    assert got.startswith(f"input_ids must be an integer tensor (int64 or int32), got {dtype}")


def test_a_dtype_error_is_both_a_value_error_and_a_type_error():
    model, params = built("bert")
    with pytest.raises(TypeError, match="integer tensor"):
        model.apply(params, IDS.float())


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("head", [False, True])
def test_ids_outside_the_vocabulary_are_refused(arch, head):
    pattern = rf"input_ids must lie in \[0, {V}\) \(the vocabulary size\), got values in "
    assert re.fullmatch(pattern + rf"\[23, {V}\]", message(arch, IDS + 22, head))
    assert re.fullmatch(pattern + r"\[-1, 6\]", message(arch, IDS - 2, head))


@pytest.mark.parametrize("arch", ARCHS)
def test_int32_ids_are_accepted(arch):
    model, params = built(arch)
    torch.testing.assert_close(
        first_output(model.apply(params, IDS.int())), first_output(model.apply(params, IDS))
    )


@pytest.mark.parametrize("arch", LEARNED_POSITIONS)
def test_a_sequence_longer_than_the_positions_is_refused(arch):
    got = message(arch, torch.ones(1, POSITIONS + 1, dtype=torch.long))
    assert re.fullmatch(
        r"sequence length 11 exceeds (max_position_embeddings|n_positions) \(10\), "
        r"the number of learned positions",
        got,
    )


@pytest.mark.parametrize("arch", ["transfo_xl", "xlnet"])
def test_relative_positions_take_any_length(arch):
    model, params = built(arch)
    model.apply(params, torch.ones(1, POSITIONS + 1, dtype=torch.long))


# -- per-token options -------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(2, 5), (2,), (1, 4), (2, 4, 1)])
@pytest.mark.parametrize("arch", WITH_MASK)
def test_an_attention_mask_of_the_wrong_shape_is_refused(arch, shape):
    got = message(arch, IDS, attention_mask=torch.ones(shape))
    assert re.search(
        r"attention_mask must have shape \(batch, (past \+ )?seq\) = \(2, 4\), "
        rf"got {re.escape(str(shape))}$",
        got,
    ), got


@pytest.mark.parametrize("shape", [(3,), (1,), (2, 2), (1, 2, 1)])
@pytest.mark.parametrize("arch", ARCHS)
def test_a_head_mask_of_the_wrong_shape_is_refused(arch, shape):
    got = message(arch, IDS, head_mask=torch.ones(shape))
    assert got == (
        "head_mask must have shape (num_heads,) = (2,) or (num_layers, num_heads) = (1, 2), "
        f"got {shape}"
    )


@pytest.mark.parametrize("arch", list(TOKEN_TYPES))
def test_token_types_out_of_range_are_refused(arch):
    upper = TOKEN_TYPES[arch]
    got = message(arch, IDS, token_type_ids=torch.full_like(IDS, upper))
    assert got.startswith(f"token_type_ids must lie in [0, {upper}) (")
    assert got.endswith(f"got values in [{upper}, {upper}]")
    with pytest.raises(ValueError, match=r"token_type_ids must have shape \(batch, seq\)"):
        built(arch)[0].apply(
            built(arch)[1], IDS, token_type_ids=torch.zeros(2, 5, dtype=torch.long)
        )
    with pytest.raises(ValueError, match="token_type_ids must be an integer tensor"):
        built(arch)[0].apply(built(arch)[1], IDS, token_type_ids=torch.zeros(2, 4))


def test_xlnet_token_types_may_be_any_integers():
    model, params = built("xlnet")
    model.apply(params, IDS, token_type_ids=torch.full_like(IDS, 1000))


@pytest.mark.parametrize("arch", LEARNED_POSITIONS)
def test_position_ids_beyond_the_positions_are_refused(arch):
    got = message(arch, IDS, position_ids=torch.tensor([[0, 1, 2, POSITIONS]] * 2))
    assert re.fullmatch(
        r"position_ids must lie in \[0, 10\) \((max_position_embeddings|n_positions)\), "
        r"got values in \[0, 10\]",
        got,
    )


@pytest.mark.parametrize("arch", ["bert", "gpt2", "openai_gpt"])
def test_position_ids_may_be_one_row_for_the_batch(arch):
    model, params = built(arch)
    one = model.apply(params, IDS, position_ids=torch.arange(4)[None])
    torch.testing.assert_close(first_output(one), first_output(model.apply(params, IDS)))


# -- the same words everywhere -----------------------------------------------------------------
DEFECTS = {
    "empty": (torch.zeros(2, 0, dtype=torch.long), {}),
    "uint8": (IDS.to(torch.uint8), {}),
    "float": (IDS.float(), {}),
    "rank": (IDS[0], {}),
    "vocabulary": (IDS + 22, {}),
    "head_mask": (IDS, {"head_mask": torch.ones(3)}),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_every_architecture_says_the_same(defect):
    ids, options = DEFECTS[defect]
    got = {arch: message(arch, ids, **options) for arch in ARCHS}
    got.update({f"{arch} head": message(arch, ids, True, **options) for arch in ARCHS})
    assert len(set(got.values())) == 1, got


# -- validate=False, vmap, torch.compile -------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("head", [False, True])
def test_validate_false_skips_only_the_value_checks(arch, head):
    model, params = built(arch, head)
    torch.testing.assert_close(
        first_output(model.apply(params, IDS, validate=False)),
        first_output(model.apply(params, IDS)),
    )
    try:
        model.apply(params, IDS + 22, validate=False)
    except Exception as error:  # the lookup may fail on its own, not with our check
        assert "must lie in" not in str(error)
    with pytest.raises(ValueError, match="at least one token"):
        model.apply(params, torch.zeros(2, 0, dtype=torch.long), validate=False)
    with pytest.raises(ValueError, match="integer tensor"):
        model.apply(params, IDS.float(), validate=False)


@pytest.mark.parametrize("arch", ["bert", "gpt2", "xlm"])
def test_value_checks_step_aside_under_vmap_and_shapes_still_hold(arch):
    model, params = built(arch)

    def one(ids):  # a single example: give the model its batch axis back
        return first_output(model.apply(params, ids[None]))[0]

    got = torch.func.vmap(one)(IDS)
    torch.testing.assert_close(got, first_output(model.apply(params, IDS)))
    with pytest.raises(ValueError, match=re.escape("add the batch axis with input_ids[None]")):
        torch.func.vmap(lambda ids: first_output(model.apply(params, ids)))(IDS)


@pytest.mark.parametrize("arch", ARCHS)
def test_compile_fullgraph_runs_through_the_checks(arch):
    torch._dynamo.reset()
    model, params = built(arch)
    options = {"head_mask": torch.ones(2)}
    if arch in WITH_MASK:
        options["attention_mask"] = torch.ones(2, 4)
    if arch in TOKEN_TYPES:
        options["token_type_ids"] = torch.zeros_like(IDS)
    if arch in LEARNED_POSITIONS:
        options["position_ids"] = torch.arange(4)[None].expand(2, 4)

    def run(p, ids):
        return first_output(model.apply(p, ids, **options))

    compiled = torch.compile(run, fullgraph=True, backend="eager")  # fails on a graph break
    torch.testing.assert_close(compiled(params, IDS), run(params, IDS))


def test_compiled_code_still_refuses_bad_shapes():
    torch._dynamo.reset()
    model, params = built("bert")

    def run(p, ids, mask):
        return model.apply(p, ids, attention_mask=mask).last_hidden_state

    compiled = torch.compile(run, backend="eager")
    compiled(params, IDS, torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(batch, seq\)"):
        compiled(params, IDS, torch.ones(1, 4))
