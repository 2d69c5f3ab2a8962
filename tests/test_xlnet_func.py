"""torch.func and torch.compile over XLNet, with memories carried across segments.

References: Python loops for ``vmap`` (an ensemble of 3 over stacked params; per-example
gradients over a batch), a central finite difference in float64 for ``jvp``, eager
for ``torch.compile(fullgraph=True)`` (backend ``aot_eager``: Inductor is slow on 2
cores), all within 1e-6 abs / 1e-5 rel. Also: keyed dropout is reproducible, and
half precision stays finite where the float32 mask value would overflow.
"""

from __future__ import annotations

import pytest
import torch
from torch.func import grad, jvp, vmap

import ptfunc
from ptfunc import tree
from ptfunc.archs import xlnet

CONFIG = xlnet.XLNetConfig(
    vocab_size=40,
    d_model=16,
    n_layer=2,
    n_head=2,
    d_inner=24,
    mem_len=4,
    reuse_len=3,
    start_n_top=3,
    end_n_top=2,
)
GEN = torch.Generator().manual_seed(0)
SEG1 = torch.randint(0, 40, (3, 5), generator=GEN)
SEG2 = torch.randint(0, 40, (3, 4), generator=GEN)
TYPES2 = torch.tensor([[0, 0, 1, 1]] * 3)
PERM = torch.zeros(3, 4, 4)
PERM[:, :, -2:] = 1.0
PERM[:, 3, 2] = 0.0
TARGET = torch.zeros(3, 2, 4)
TARGET[:, 0, 2] = TARGET[:, 1, 3] = 1.0
LABELS = SEG2[:, -2:]
CLOSE = dict(atol=1e-6, rtol=1e-5)


def _two_segments(model, params, seg1, seg2, extra):
    """Segment 1 gives memories; segment 2 uses them (with the permutation-LM inputs)."""
    first = model.apply(params, seg1)
    return model.apply(params, seg2, mems=first.mems, **extra)


def _extra(name):
    """Labels (and the permutation-LM inputs) of the second segment."""
    if name == "XLNetLMHeadModel":
        return {
            "perm_mask": PERM,
            "target_mapping": TARGET,
            "labels": LABELS,
            "token_type_ids": TYPES2,
        }
    if name == "XLNetForQuestionAnswering":
        return {
            "start_positions": torch.tensor([0, 1, 2]),
            "end_positions": torch.tensor([2, 3, 3]),
        }
    return {"labels": torch.tensor([0, 1, 1]), "token_type_ids": TYPES2}


NAMES = ["XLNetLMHeadModel", "XLNetForSequenceClassification", "XLNetForQuestionAnswering"]


@pytest.mark.parametrize("name", NAMES)
def test_vmap_ensemble_over_params_with_memories(name):
    model = getattr(xlnet, name)(CONFIG)
    members = [model.init(k) for k in ptfunc.random.split(ptfunc.random.key(0), 3)]
    extra = {k: v for k, v in _extra(name).items() if "positions" not in k and k != "labels"}

    def run(p):
        out = _two_segments(model, p, SEG1, SEG2, extra)
        return out[0], out.mems

    batched = vmap(run)(tree.stack(members))
    for i, p in enumerate(members):
        first, mems = run(p)
        torch.testing.assert_close(batched[0][i], first, **CLOSE)
        for a, b in zip(batched[1], mems, strict=True):
            torch.testing.assert_close(a[i], b, **CLOSE)


def test_per_example_grads_with_memories_in_time_major_layout():
    """vmap(grad) over examples: memories (mem_len, b, d) are mapped over their axis 1."""
    model = xlnet.XLNetLMHeadModel(CONFIG)
    params = model.init(ptfunc.random.key(1))
    mems = model.apply(params, SEG1).mems

    def loss(p, ids, m, perm, target, labels, types):
        one = lambda t: t[None]  # noqa: E731
        out = model.apply(
            p,
            one(ids),
            mems=tuple(x[:, None] for x in m),
            perm_mask=one(perm),
            target_mapping=one(target),
            labels=one(labels),
            token_type_ids=one(types),
        )
        return out.loss

    inputs = (SEG2, mems, PERM, TARGET, LABELS, TYPES2)
    dims = (0, 1, 0, 0, 0, 0)
    per_example = tree.to_flat_dict(vmap(grad(loss), in_dims=(None, *dims))(params, *inputs))
    for i in range(3):
        row = [tree.map(lambda t, d=d, i=i: t.select(d, i), x) for x, d in zip(inputs, dims)]
        one = tree.to_flat_dict(grad(loss)(params, *row))
        for n, g in one.items():
            torch.testing.assert_close(per_example[n][i], g, **CLOSE, msg=n)


@pytest.mark.parametrize("name", NAMES)
def test_jvp_matches_finite_difference_in_float64(name):
    """Memories are detached (no gradient into earlier segments, as in the seed), so
    the tangent is taken through one segment given fixed memories."""
    model = getattr(xlnet, name)(CONFIG)
    p64 = tree.astype(model.init(ptfunc.random.key(2)), torch.float64)
    mems = model.apply(p64, SEG1).mems
    extra = _extra(name)
    f = lambda p: model.apply(p, SEG2, mems=mems, **extra).loss  # noqa: E731
    gen = torch.Generator().manual_seed(3)
    tangent = tree.map(lambda p: torch.randn(p.shape, generator=gen, dtype=p.dtype), p64)
    _, directional = jvp(f, (p64,), (tangent,))
    eps = 1e-6
    fd = (
        f(tree.map(lambda p, t: p + eps * t, p64, tangent))
        - f(tree.map(lambda p, t: p - eps * t, p64, tangent))
    ) / (2 * eps)
    torch.testing.assert_close(directional, fd, atol=1e-6, rtol=1e-5)


def test_compiled_segment_step_with_dropout_equals_eager():
    # one layer: tracing the keyed dropout of every site dominates the compile time
    model = xlnet.XLNetLMHeadModel(CONFIG.replace(attn_type="uni", same_length=True, n_layer=1))
    params = model.init(ptfunc.random.key(4))
    mems = model.apply(params, SEG1).mems

    def step(p, ids, m, k):
        out = model.apply(
            p,
            ids,
            mems=m,
            perm_mask=PERM,
            target_mapping=TARGET,
            labels=LABELS,
            train=True,
            key=k,
            use_mems=True,
        )
        return out.loss, out.logits, out.mems

    torch._dynamo.reset()
    compiled = torch.compile(step, fullgraph=True, backend="aot_eager")
    key = ptfunc.random.key(5)
    for a, b in zip(
        tree.leaves(compiled(params, SEG2, mems, key)),
        tree.leaves(step(params, SEG2, mems, key)),
        strict=True,
    ):
        torch.testing.assert_close(a, b, **CLOSE)


def test_dropout_is_a_function_of_the_key():
    model = xlnet.XLNetForQuestionAnswering(CONFIG)
    params = model.init(ptfunc.random.key(6))
    extra = _extra("XLNetForQuestionAnswering")
    a = model.apply(params, SEG2, train=True, key=ptfunc.random.key(1), **extra).loss
    b = model.apply(params, SEG2, train=True, key=ptfunc.random.key(1), **extra).loss
    c = model.apply(params, SEG2, train=True, key=ptfunc.random.key(2), **extra).loss
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert model.apply(params, SEG2, train=True, key=ptfunc.random.key(1)).mems == ()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_with_a_fully_masked_query_row(dtype):
    """1e30 masks overflow float16; the row that sees nothing must stay finite there."""
    model = xlnet.XLNetLMHeadModel(CONFIG)
    params = model.init(ptfunc.random.key(7))
    perm = PERM.clone()
    perm[:, 2, :] = 1.0
    options = dict(perm_mask=perm, target_mapping=TARGET, token_type_ids=TYPES2)
    ref = model.apply(params, SEG2, **options).logits
    out = model.apply(tree.astype(params, dtype), SEG2, **options).logits
    assert out.dtype == dtype and torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), ref, atol=0.05, rtol=0.05)
